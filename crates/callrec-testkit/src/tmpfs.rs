//! A small tmpfs mounted for one test: a disk that fills up (ingest on a full disk, a store
//! writer whose index cannot grow) or a read-only filesystem (a data dir or spool callrec
//! cannot write in).
//!
//! Mounting needs root (the tests run as root in CI). Where it is refused, [`Tmpfs::mount`]
//! says why and the test decides: skip with a message, or carry on without the mount. The
//! mount is detached when the [`Tmpfs`] is dropped, however the test ends, so a failed test
//! leaves no mount behind; its source is `callrec-test`, which names any leftover in
//! `/proc/mounts`.

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};

/// A tmpfs mounted for one test, unmounted when dropped.
#[derive(Debug)]
pub struct Tmpfs {
    path: PathBuf,
}

/// Why a tmpfs could not be mounted (most often: the test does not run as root).
#[derive(Debug)]
pub struct MountError {
    path: PathBuf,
    options: String,
    cause: String,
}

impl fmt::Display for MountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot mount a tmpfs ({}) at {}: {}",
            self.options,
            self.path.display(),
            self.cause
        )
    }
}

impl std::error::Error for MountError {}

impl Tmpfs {
    /// Mounts a writable tmpfs of `size` (tmpfs syntax: `1m`, `64m`) at `at`, creating the
    /// directory first.
    pub fn mount(at: &Path, size: &str) -> Result<Tmpfs, MountError> {
        Tmpfs::mount_with(at, MsFlags::empty(), size)
    }

    /// Mounts a read-only tmpfs of `size` at `at`, as after a disk error remount.
    pub fn mount_read_only(at: &Path, size: &str) -> Result<Tmpfs, MountError> {
        Tmpfs::mount_with(at, MsFlags::MS_RDONLY, size)
    }

    fn mount_with(at: &Path, flags: MsFlags, size: &str) -> Result<Tmpfs, MountError> {
        let options = format!("size={size}");
        let error = |cause: String| MountError {
            path: at.to_path_buf(),
            options: if flags.contains(MsFlags::MS_RDONLY) {
                format!("ro,{options}")
            } else {
                options.clone()
            },
            cause,
        };
        std::fs::create_dir_all(at).map_err(|e| error(format!("creating the directory: {e}")))?;
        nix::mount::mount(
            Some("callrec-test"),
            at,
            Some("tmpfs"),
            flags,
            Some(options.as_str()),
        )
        .map_err(|e| error(e.to_string()))?;
        Ok(Tmpfs {
            path: at.to_path_buf(),
        })
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Changes its size in place (files stay): space returns to a full disk.
    pub fn resize(&self, size: &str) {
        let options = format!("size={size}");
        nix::mount::mount(
            None::<&str>,
            &self.path,
            None::<&str>,
            MsFlags::MS_REMOUNT,
            Some(options.as_str()),
        )
        .unwrap_or_else(|e| {
            panic!(
                "cannot resize the tmpfs at {} to {size}: {e}",
                self.path.display()
            )
        });
    }

    /// Writes zeros into `filler` at its root until not one more byte fits; returns the
    /// file's path (removing it gives the space back).
    pub fn fill(&self) -> PathBuf {
        let path = self.path.join("filler");
        let mut file = std::fs::File::create(&path)
            .unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
        // Large writes first, then smaller ones for the last partial blocks.
        for chunk in [64 << 10, 512, 1] {
            let zeros = vec![0u8; chunk];
            loop {
                match file.write(&zeros) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) if e.raw_os_error() == Some(nix::libc::ENOSPC) => break,
                    Err(e) => panic!("filling {}: {e}", path.display()),
                }
            }
        }
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Detached, so a file still open elsewhere cannot keep the mount alive.
        let _ = nix::mount::umount2(&self.path, MntFlags::MNT_DETACH);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Mounting needs root; elsewhere these tests say so and check nothing.
    fn mounted(dir: &Path, size: &str) -> Option<Tmpfs> {
        Tmpfs::mount(dir, size)
            .inspect_err(|e| println!("SKIPPED: {e}; mounting needs root"))
            .ok()
    }

    fn on_a_tmpfs(path: &Path) -> bool {
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
        mounts.lines().any(|l| {
            let mut fields = l.split(' ');
            fields.next() == Some("callrec-test") && fields.next() == Some(path.to_str().unwrap())
        })
    }

    #[test]
    fn a_tmpfs_fills_up_grows_and_is_unmounted_when_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("disk");
        let Some(fs) = mounted(&dir, "1m") else {
            return;
        };
        assert!(on_a_tmpfs(&dir));
        let filler = fs.fill();
        let full = std::fs::metadata(&filler).unwrap().len();
        assert!(full > 900 << 10 && full <= 1 << 20, "{full}");
        let err = std::fs::write(dir.join("more"), b"x").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(nix::libc::ENOSPC));

        fs.resize("2m");
        std::fs::write(dir.join("more"), b"x").unwrap();
        drop(fs);
        assert!(!on_a_tmpfs(&dir));
    }

    #[test]
    fn a_read_only_tmpfs_refuses_writes() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ro");
        let fs = match Tmpfs::mount_read_only(&dir, "1m") {
            Ok(fs) => fs,
            Err(e) => {
                assert!(
                    e.to_string()
                        .starts_with("cannot mount a tmpfs (ro,size=1m) at ")
                );
                println!("SKIPPED: {e}; mounting needs root");
                return;
            }
        };
        let err = std::fs::write(fs.path().join("x"), b"x").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(nix::libc::EROFS));
    }
}

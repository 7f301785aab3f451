//! Every file operation of the store: hashing, durable moves, durable removals, walking the
//! store. The index module never touches files and this one never touches the index, so a
//! later object-store backend (SPEC §10) replaces this module alone.
//!
//! Durability rules, in the order ingest applies them (SPEC §4.1):
//! 1. the file's data is fsynced before the index says `stored`;
//! 2. a rename is durable only once both directories are fsynced; directories created on the
//!    way are made durable by fsyncing their parents;
//! 3. across filesystems the file is copied to a temporary name next to its destination,
//!    fsynced, renamed into place, and the spool file is removed only after the index
//!    committed (the caller does that), so a failure at any step leaves the spool file intact;
//! 4. a file whose bytes must change on the way in (a WAV header the switch never finished,
//!    see [`Rewrite`]) takes the copy path on any filesystem: the spool file, the only copy
//!    of the recording, is never written to, and stays until the index has committed.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::StoreError;
use crate::wav::HEADER_WINDOW;

/// What reading a whole file gave.
#[derive(Debug, Clone)]
pub(crate) struct Hashed {
    /// SHA-256, hex.
    pub sha256: String,
    /// Bytes read.
    pub size: u64,
    /// The first bytes, up to [`HEADER_WINDOW`], for the WAV header.
    pub head: Vec<u8>,
}

/// A file now in the store, not yet durable until `dirs_to_sync` are fsynced.
#[derive(Debug, Clone)]
pub(crate) struct Placed {
    /// What was read.
    pub hashed: Hashed,
    /// Directories whose entries changed.
    pub dirs_to_sync: BTreeSet<PathBuf>,
    /// Whether the spool file is still there (a copy across filesystems): remove it after the
    /// commit.
    pub spool_left: bool,
}

/// Changes made to a file's bytes as it is copied into the store: bytes written over at given
/// offsets, and the length to cut it to. The store keeps the result, hashed as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rewrite {
    /// (offset, bytes) to write over what the file holds there; inside the first `len` bytes.
    pub patches: Vec<(u64, Vec<u8>)>,
    /// The copy's length: at most the file's.
    pub len: u64,
}

impl Rewrite {
    /// Apply to `chunk`, read at `offset`: patch it and return how much of it to keep.
    fn apply(&self, offset: u64, chunk: &mut [u8]) -> usize {
        let end = offset + chunk.len() as u64;
        for (at, bytes) in &self.patches {
            for (i, b) in bytes.iter().enumerate() {
                let pos = at + i as u64;
                if (offset..end).contains(&pos) {
                    chunk[(pos - offset) as usize] = *b;
                }
            }
        }
        usize::try_from(self.len.saturating_sub(offset))
            .map_or(chunk.len(), |keep| keep.min(chunk.len()))
    }
}

const BUF: usize = 256 * 1024;

/// Read `file` to its end, hashing it and keeping its first bytes; optionally copy it to
/// `copy_to` on the way, rewritten by `rewrite` (which then applies to what is hashed too).
fn read_hashing(
    file: &mut File,
    path: &Path,
    mut copy_to: Option<(&mut File, &Path)>,
    rewrite: Option<&Rewrite>,
) -> Result<Hashed, StoreError> {
    let mut hasher = Sha256::new();
    let mut head = Vec::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; BUF];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(StoreError::io("read", path)(e)),
        };
        let n = match rewrite {
            Some(r) => r.apply(size, &mut buf[..n]),
            None => n,
        };
        if n == 0 {
            break;
        }
        let chunk = &buf[..n];
        hasher.update(chunk);
        if head.len() < HEADER_WINDOW {
            let take = (HEADER_WINDOW - head.len()).min(n);
            head.extend_from_slice(&chunk[..take]);
        }
        if let Some((out, out_path)) = copy_to.as_mut() {
            out.write_all(chunk)
                .map_err(StoreError::io("write a copy into the store", *out_path))?;
        }
        size += n as u64;
    }
    Ok(Hashed {
        sha256: hex::encode(hasher.finalize()),
        size,
        head,
    })
}

/// Hash a file and make its data durable.
pub(crate) fn hash_and_sync(path: &Path) -> Result<Hashed, StoreError> {
    let mut file = File::open(path).map_err(StoreError::io("open", path))?;
    let hashed = read_hashing(&mut file, path, None, None)?;
    file.sync_all().map_err(StoreError::io("fsync", path))?;
    Ok(hashed)
}

/// The first bytes of a file (up to [`HEADER_WINDOW`]) and its length, read from one open
/// file.
pub(crate) fn read_head(path: &Path) -> Result<(Vec<u8>, u64), StoreError> {
    let file = File::open(path).map_err(StoreError::io("open", path))?;
    let len = file.metadata().map_err(StoreError::io("stat", path))?.len();
    let mut head =
        Vec::with_capacity(HEADER_WINDOW.min(usize::try_from(len).unwrap_or(HEADER_WINDOW)));
    file.take(HEADER_WINDOW as u64)
        .read_to_end(&mut head)
        .map_err(StoreError::io("read", path))?;
    Ok((head, len))
}

/// Hash a file without changing anything (verify).
pub(crate) fn hash_file(path: &Path) -> Result<Hashed, StoreError> {
    let mut file = File::open(path).map_err(StoreError::io("open", path))?;
    read_hashing(&mut file, path, None, None)
}

/// Create `dir` and any missing parents; returns the parents whose entries changed (to fsync).
fn ensure_dir(dir: &Path, dirs_to_sync: &mut BTreeSet<PathBuf>) -> Result<(), StoreError> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        ensure_dir(parent, dirs_to_sync)?;
        match fs::create_dir(dir) {
            Ok(()) => {
                dirs_to_sync.insert(parent.to_path_buf());
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(StoreError::io("create directory", dir)(e)),
        }
    }
    Ok(())
}

/// The temporary name a cross-filesystem copy is written under, next to its destination.
/// Reconciliation removes leftovers: any file whose name starts with `.` and ends in `.tmp`.
pub(crate) fn temp_name(dest: &Path) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dest.with_file_name(format!(".{name}.tmp"))
}

/// Whether a store file name is a temporary copy.
pub(crate) fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".tmp")
}

/// Move `spool` to `dest` in the store: rename on one filesystem, copy + fsync + rename across
/// filesystems (the spool file is then left for the caller to remove after the commit).
/// Nothing is durable until the caller fsyncs `dirs_to_sync`.
pub(crate) fn place(spool: &Path, dest: &Path) -> Result<Placed, StoreError> {
    let mut dirs_to_sync = BTreeSet::new();
    let dest_dir = dest.parent().ok_or_else(|| {
        StoreError::Corrupt(format!("store path {} has no parent", dest.display()))
    })?;
    ensure_dir(dest_dir, &mut dirs_to_sync)?;
    dirs_to_sync.insert(dest_dir.to_path_buf());

    let spool_dev = fs::metadata(spool)
        .map_err(StoreError::io("stat", spool))?
        .dev();
    let dest_dev = fs::metadata(dest_dir)
        .map_err(StoreError::io("stat", dest_dir))?
        .dev();
    if spool_dev == dest_dev {
        let hashed = hash_and_sync(spool)?;
        match fs::rename(spool, dest) {
            Ok(()) => {
                if let Some(spool_dir) = spool.parent() {
                    dirs_to_sync.insert(spool_dir.to_path_buf());
                }
                return Ok(Placed {
                    hashed,
                    dirs_to_sync,
                    spool_left: false,
                });
            }
            // Same device, different mounts (a bind mount): copy instead.
            Err(e) if e.kind() == io::ErrorKind::CrossesDevices => {}
            Err(e) => return Err(StoreError::io("rename into the store", spool)(e)),
        }
    }
    let hashed = copy_durable(spool, dest, None)?;
    Ok(Placed {
        hashed,
        dirs_to_sync,
        spool_left: true,
    })
}

/// Put a rewritten copy of `spool` at `dest` in the store (the copy path of [`place`], on any
/// filesystem): the spool file is left as it was, for the caller to remove after the commit.
/// Run again after a crash, it writes the same copy over the one already there.
pub(crate) fn place_rewritten(
    spool: &Path,
    dest: &Path,
    rewrite: &Rewrite,
) -> Result<Placed, StoreError> {
    let mut dirs_to_sync = BTreeSet::new();
    let dest_dir = dest.parent().ok_or_else(|| {
        StoreError::Corrupt(format!("store path {} has no parent", dest.display()))
    })?;
    ensure_dir(dest_dir, &mut dirs_to_sync)?;
    dirs_to_sync.insert(dest_dir.to_path_buf());
    let hashed = copy_durable(spool, dest, Some(rewrite))?;
    Ok(Placed {
        hashed,
        dirs_to_sync,
        spool_left: true,
    })
}

/// Copy `src` (rewritten, if asked) to `dest` through a temporary file; the copy is fsynced
/// and renamed into place.
fn copy_durable(src: &Path, dest: &Path, rewrite: Option<&Rewrite>) -> Result<Hashed, StoreError> {
    let mut input = File::open(src).map_err(StoreError::io("open", src))?;
    let tmp = temp_name(dest);
    let result = (|| {
        let mut out = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(StoreError::io("create", &tmp))?;
        let hashed = read_hashing(&mut input, src, Some((&mut out, &tmp)), rewrite)?;
        if let Some(r) = rewrite
            && hashed.size != r.len
        {
            // The file shrank since its header was read: the rewrite would be a lie.
            return Err(StoreError::io("copy a repaired file into the store", src)(
                io::Error::other(format!(
                    "{} bytes read, {} expected: the file changed while it was copied",
                    hashed.size, r.len
                )),
            ));
        }
        out.sync_all().map_err(StoreError::io("fsync", &tmp))?;
        fs::rename(&tmp, dest).map_err(StoreError::io("rename into the store", &tmp))?;
        Ok(hashed)
    })();
    if result.is_err() {
        // Give the space back now; a leftover would also be removed by reconciliation.
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Fsync a directory so the entries created, renamed or removed in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(StoreError::io("fsync directory", dir))
}

/// Fsync each directory once.
pub(crate) fn sync_dirs<'a>(dirs: impl IntoIterator<Item = &'a PathBuf>) -> Result<(), StoreError> {
    for dir in dirs {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Remove a file; a file already gone is fine. Returns its directory (to fsync) if it was
/// removed.
pub(crate) fn remove(path: &Path) -> Result<Option<PathBuf>, StoreError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(path.parent().map(Path::to_path_buf)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::io("remove", path)(e)),
    }
}

/// Whether a path exists (errors other than "not found" count as existing, so nothing is
/// ever treated as lost because of, say, a permission problem).
pub(crate) fn exists(path: &Path) -> bool {
    match fs::symlink_metadata(path) {
        Ok(_) => true,
        Err(e) => e.kind() != io::ErrorKind::NotFound,
    }
}

/// Check that `dir` can be created and written: make it, write and remove a probe file.
pub(crate) fn probe_writable(dir: &Path) -> Result<(), StoreError> {
    let not_writable = |source| StoreError::DataDirNotWritable {
        path: dir.to_path_buf(),
        source,
    };
    fs::create_dir_all(dir).map_err(not_writable)?;
    let probe = dir.join(format!(".callrec-write-probe-{}", std::process::id()));
    let written = File::create(&probe).and_then(|mut f| f.write_all(b"probe"));
    let _ = fs::remove_file(&probe);
    written.map_err(not_writable)
}

/// Call `visit(relative path, absolute path)` for every regular file under `root`, depth
/// first. Directories that vanish meanwhile are skipped.
pub(crate) fn walk(
    root: &Path,
    visit: &mut dyn FnMut(&str, &Path) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    fn go(
        root: &Path,
        dir: &Path,
        visit: &mut dyn FnMut(&str, &Path) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(StoreError::io("list", dir)(e)),
        };
        let mut names: Vec<_> = entries
            .collect::<Result<Vec<_>, _>>()
            .map_err(StoreError::io("list", dir))?;
        names.sort_by_key(|e| e.file_name());
        for entry in names {
            let path = entry.path();
            let ty = entry.file_type().map_err(StoreError::io("stat", &path))?;
            if ty.is_dir() {
                go(root, &path, visit)?;
            } else if ty.is_file() {
                let rel = path
                    .strip_prefix(root)
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_default();
                visit(&rel, &path)?;
            }
        }
        Ok(())
    }
    go(root, root, visit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placing_a_file_moves_it_and_hashes_it() {
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("spool.wav");
        fs::write(&spool, b"abc").unwrap();
        let dest = dir.path().join("store/default/2024/01/02/x.wav");
        let placed = place(&spool, &dest).unwrap();
        assert!(!spool.exists());
        assert_eq!(fs::read(&dest).unwrap(), b"abc");
        assert!(!placed.spool_left);
        assert_eq!(
            placed.hashed.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // The new directories' parents and both directories of the rename get fsynced.
        assert!(
            placed
                .dirs_to_sync
                .contains(&dir.path().join("store/default/2024/01"))
        );
        assert!(
            placed
                .dirs_to_sync
                .contains(&dir.path().join("store/default/2024/01/02"))
        );
        assert!(placed.dirs_to_sync.contains(dir.path()));
        sync_dirs(&placed.dirs_to_sync).unwrap();
    }

    #[test]
    fn a_rewrite_patches_bytes_across_reads_and_cuts_the_copy() {
        let rewrite = Rewrite {
            patches: vec![(2, b"XY".to_vec()), (9, b"abc".to_vec())],
            len: 11,
        };
        // Read in chunks of 5 bytes: the second patch straddles two of them.
        let mut file = b"0123456789ABCDEF".to_vec();
        let mut out = Vec::new();
        for (i, chunk) in file.chunks_mut(5).enumerate() {
            let keep = rewrite.apply(i as u64 * 5, chunk);
            out.extend_from_slice(&chunk[..keep]);
        }
        assert_eq!(out, b"01XY45678ab");
    }

    #[test]
    fn a_rewritten_copy_leaves_the_spool_file_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("spool.wav");
        let original: Vec<u8> = (0..BUF * 2 + 7).map(|i| (i % 251) as u8).collect();
        fs::write(&spool, &original).unwrap();
        let dest = dir.path().join("store/default/2024/01/02/x.wav");
        let rewrite = Rewrite {
            patches: vec![(4, vec![0xAA; 4]), (BUF as u64 - 2, vec![0xBB; 4])],
            len: original.len() as u64 - 1,
        };
        let placed = place_rewritten(&spool, &dest, &rewrite).unwrap();
        assert!(placed.spool_left);
        assert_eq!(
            fs::read(&spool).unwrap(),
            original,
            "the only copy is untouched"
        );
        let mut expected = original[..original.len() - 1].to_vec();
        expected[4..8].fill(0xAA);
        expected[BUF - 2..BUF + 2].fill(0xBB);
        let stored = fs::read(&dest).unwrap();
        assert!(stored == expected, "the copy is the rewritten file");
        assert_eq!(placed.hashed.sha256, hex::encode(Sha256::digest(&stored)));
        assert_eq!(placed.hashed.size, stored.len() as u64);
        assert_eq!(placed.hashed.head, stored[..HEADER_WINDOW]);
        assert!(!temp_name(&dest).exists());
        // Again (a retry after a crash before the commit): the same copy over the first.
        let again = place_rewritten(&spool, &dest, &rewrite).unwrap();
        assert_eq!(again.hashed.sha256, placed.hashed.sha256);

        // A file that shrank since its header was read is not passed off as repaired.
        let short = Rewrite {
            patches: Vec::new(),
            len: original.len() as u64 + 10,
        };
        assert!(place_rewritten(&spool, &dest, &short).is_err());
        assert!(!temp_name(&dest).exists());
    }

    #[test]
    fn temporary_names_are_recognised() {
        let t = temp_name(Path::new("/s/a/b.wav"));
        assert_eq!(t, Path::new("/s/a/.b.wav.tmp"));
        assert!(is_temp_name(".b.wav.tmp"));
        assert!(!is_temp_name("b.wav"));
    }
}

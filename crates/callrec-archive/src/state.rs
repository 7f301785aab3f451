//! What an archive keeps about itself, in `DEST/.callrec-archive/`: `state.json` (where in
//! the change feed the archive is, and which recordings to try again) and one manifest per
//! run under `runs/`.
//!
//! The state file is replaced atomically (written beside, synced, renamed), so a crash or a
//! full disk leaves the previous state, which is always safe to resume from: the client
//! rechecks what it finds on disk rather than trusting the state alone.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::ArchiveError;

/// The folder in DEST that holds the client's own files.
pub const STATE_DIR: &str = ".callrec-archive";

/// The archive's place in the change feed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveState {
    /// The server this archive follows.
    pub server: String,
    /// Whose recordings (`extension@site` of the token).
    pub owner: String,
    /// Every change up to this sequence number has been handled.
    pub last_seq: i64,
    /// Recordings that failed in an earlier run (a hash that never matched, a name taken),
    /// tried again at the start of the next.
    #[serde(default)]
    pub pending: BTreeSet<String>,
}

impl ArchiveState {
    /// A new archive of `owner`'s recordings on `server`.
    pub fn new(server: &str, owner: &str) -> Self {
        ArchiveState {
            server: server.to_owned(),
            owner: owner.to_owned(),
            last_seq: 0,
            pending: BTreeSet::new(),
        }
    }

    /// Whether this state belongs to an archive of `owner` on `server`; if not, why.
    pub fn check_matches(&self, server: &str, owner: &str) -> Result<(), String> {
        if self.server.trim_end_matches('/') != server.trim_end_matches('/') {
            return Err(format!(
                "this folder archives {}, not {server}; use another --dest",
                self.server
            ));
        }
        if self.owner != owner {
            return Err(format!(
                "this folder archives the recordings of {}, and the token is {owner}'s; use \
                 another --dest",
                self.owner
            ));
        }
        Ok(())
    }
}

/// Where the state file of `dest` is.
pub fn state_path(dest: &Path) -> PathBuf {
    dest.join(STATE_DIR).join("state.json")
}

/// Read the state of `dest`; `None` for an archive never run.
pub fn load(dest: &Path) -> Result<Option<ArchiveState>, ArchiveError> {
    let path = state_path(dest);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            ArchiveError::Config(format!(
                "{} is not a state file this client wrote ({e}); move it away to start over",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ArchiveError::io("read the state file", &path, e)),
    }
}

/// Replace the state of `dest` atomically.
pub fn save(dest: &Path, state: &ArchiveState) -> Result<(), ArchiveError> {
    let path = state_path(dest);
    let bytes = serde_json::to_vec_pretty(state)
        .map_err(|e| ArchiveError::Protocol(format!("cannot encode the state: {e}")))?;
    write_atomically(&path, &bytes)
}

/// Write `bytes` to `path` so that a reader sees the old content or the new, never a part:
/// a temporary file beside it, synced, then renamed over it, and the folder synced.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ArchiveError> {
    write_replacing(path, bytes)?;
    sync_dir(path.parent().unwrap_or(Path::new(".")));
    Ok(())
}

/// [`write_atomically`] without the folder's sync: the caller syncs the folder later (the
/// run syncs every folder it wrote in before it saves the state that counts on them).
pub fn write_replacing(path: &Path, bytes: &[u8]) -> Result<(), ArchiveError> {
    stage(path, bytes)?.commit()
}

/// New content for a file, written and synced beside it (`.NAME.tmp`) but not yet in
/// place: [`Staged::commit`] renames it over the file, [`Staged::discard`] removes it. A
/// sidecar is staged while its audio downloads, and put in place once the audio is.
#[derive(Debug)]
#[must_use = "a staged file is committed or discarded"]
pub struct Staged {
    tmp: PathBuf,
    path: PathBuf,
}

/// Write `bytes` beside `path`, synced, to be renamed over it by [`Staged::commit`].
pub fn stage(path: &Path, bytes: &[u8]) -> Result<Staged, ArchiveError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| ArchiveError::io("create the folder", dir, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(ArchiveError::io("write", path, e));
    }
    Ok(Staged {
        tmp,
        path: path.to_path_buf(),
    })
}

impl Staged {
    /// Rename the new content over the file (atomically; the folder is synced by the caller).
    pub fn commit(self) -> Result<(), ArchiveError> {
        std::fs::rename(&self.tmp, &self.path).map_err(|e| {
            let _ = std::fs::remove_file(&self.tmp);
            ArchiveError::io("rename into place", &self.path, e)
        })
    }

    /// Remove the new content, leaving the file as it was.
    pub fn discard(self) {
        if let Err(e) = std::fs::remove_file(&self.tmp)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.tmp.display(), error = %e, "cannot remove a staged file");
        }
    }
}

/// Make a rename in `dir` durable where the platform allows it (Unix: fsync the folder;
/// Windows has no such call and its renames are journaled by NTFS).
pub fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Err(e) = std::fs::File::open(dir).and_then(|d| d.sync_all()) {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot sync the folder");
    }
    #[cfg(not(unix))]
    let _ = dir;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_state_reads_back_and_replaces_the_old_one_whole() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()).unwrap(), None);
        let mut s = ArchiveState::new("http://h:8080", "1001@default");
        s.last_seq = 41;
        s.pending.insert("abc".into());
        save(dir.path(), &s).unwrap();
        s.last_seq = 42;
        save(dir.path(), &s).unwrap();
        assert_eq!(load(dir.path()).unwrap(), Some(s));
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join(STATE_DIR))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, ["state.json"]);
    }

    #[test]
    fn a_folder_of_another_server_or_owner_is_refused() {
        let s = ArchiveState::new("http://h:8080/", "1001@default");
        assert!(s.check_matches("http://h:8080", "1001@default").is_ok());
        assert!(
            s.check_matches("http://other:8080", "1001@default")
                .unwrap_err()
                .contains("use another --dest")
        );
        assert!(
            s.check_matches("http://h:8080", "1002@default")
                .unwrap_err()
                .contains("1002@default")
        );
    }

    #[test]
    fn a_damaged_state_file_is_a_configuration_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(STATE_DIR)).unwrap();
        std::fs::write(state_path(dir.path()), b"{not json").unwrap();
        let e = load(dir.path()).unwrap_err();
        assert!(e.is_config());
        assert!(e.to_string().contains("state.json"), "{e}");
    }
}

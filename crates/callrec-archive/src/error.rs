//! What can stop an archive run, with what it was doing and where.

use std::path::{Path, PathBuf};

/// An error that stops a run. Problems with one recording (a hash that never matches) do
/// not stop it: they are counted, reported and retried next run.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// A setting cannot work: a bad template or server URL, no token, a folder that archives
    /// another server. Exit 78.
    #[error("{0}")]
    Config(String),
    /// The server refused the token (401). Exit 78: retrying will not help.
    #[error("the server at {server} refused the token (401): {message}")]
    Unauthorized {
        /// The server.
        server: String,
        /// What it said.
        message: String,
    },
    /// The destination is full. The state is kept: the next run resumes.
    #[error(
        "the destination is full: cannot write {}; free some space and run again (the \
         archive resumes where it stopped)",
        path.display()
    )]
    DiskFull {
        /// The file that could not be written.
        path: PathBuf,
    },
    /// A file could not be read or written.
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// To which file.
        path: PathBuf,
        /// Why not.
        source: std::io::Error,
    },
    /// The server could not be reached, even after retries.
    #[error("cannot {op} at {url} (after {attempts} attempts): {source}")]
    Network {
        /// What was being done.
        op: &'static str,
        /// The URL.
        url: String,
        /// How many times it was tried.
        attempts: u32,
        /// The last error.
        source: reqwest::Error,
    },
    /// The server answered with an error.
    #[error("{op}: the server answered {status}: {message}")]
    Server {
        /// What was being done.
        op: &'static str,
        /// The HTTP status.
        status: u16,
        /// Its error message.
        message: String,
    },
    /// The server's answer is not what the API promises.
    #[error("unexpected answer from the server: {0}")]
    Protocol(String),
}

/// What kind of error, for exit codes and retry decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A configuration error.
    Config,
    /// The destination is full.
    DiskFull,
    /// Another file error.
    Io,
    /// The server is unreachable.
    Network,
    /// The server answered with an error, or with something unexpected.
    Server,
}

impl ArchiveError {
    /// A file error; a full disk (ENOSPC, a quota) becomes [`ArchiveError::DiskFull`].
    pub fn io(op: &'static str, path: &Path, source: std::io::Error) -> Self {
        if is_disk_full(&source) {
            ArchiveError::DiskFull {
                path: path.to_path_buf(),
            }
        } else {
            ArchiveError::Io {
                op,
                path: path.to_path_buf(),
                source,
            }
        }
    }

    /// Its kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ArchiveError::Config(_) | ArchiveError::Unauthorized { .. } => ErrorKind::Config,
            ArchiveError::DiskFull { .. } => ErrorKind::DiskFull,
            ArchiveError::Io { .. } => ErrorKind::Io,
            ArchiveError::Network { .. } => ErrorKind::Network,
            ArchiveError::Server { .. } | ArchiveError::Protocol(_) => ErrorKind::Server,
        }
    }

    /// Whether it is a configuration error (exit 78).
    pub fn is_config(&self) -> bool {
        self.kind() == ErrorKind::Config
    }
}

/// Whether an I/O error means the disk (or the user's quota) is full.
pub fn is_disk_full(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

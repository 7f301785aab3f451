//! Every way the store can fail, with the context an operator needs to act on it.
//!
//! Callers branch on [`StoreError::kind`] (is this worth retrying? is it the caller's fault?)
//! rather than on message text. The API maps kinds to HTTP statuses; the ingest worker retries
//! the transient kinds with capped backoff.

use std::io;
use std::path::PathBuf;

use callrec_model::{RecordingId, RecordingState};
use callrec_model::{TokenId, UserId};

/// An error of the recording store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The data directory cannot be created or written to.
    #[error("data dir {} is not writable: {source}", path.display())]
    DataDirNotWritable {
        /// The data directory.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },

    /// A file operation failed.
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        /// What was being done, e.g. `fsync`, `rename into the store`.
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },

    /// The index refused or failed an operation.
    #[error("index: cannot {op}: {source}")]
    Sql {
        /// What was being done, e.g. `insert recording`.
        op: &'static str,
        /// What SQLite said.
        source: rusqlite::Error,
    },

    /// The index was written by a newer callrec than this one.
    #[error(
        "index {} has schema version {found}, newer than this callrec knows ({known}); upgrade callrec",
        path.display()
    )]
    SchemaTooNew {
        /// The index file.
        path: PathBuf,
        /// Its `user_version`.
        found: u32,
        /// The newest version this build knows.
        known: u32,
    },

    /// Something in the index does not make sense (a bad enum spelling, an impossible time).
    #[error("index holds bad data: {0}")]
    Corrupt(String),

    /// No site has this name.
    #[error("unknown site {0}")]
    UnknownSite(String),

    /// A site of this name already exists.
    #[error("site {0} already exists")]
    DuplicateSite(String),

    /// No user has this extension in this site.
    #[error("unknown user {extension} in site {site}")]
    UnknownUser {
        /// The site searched.
        site: String,
        /// The extension asked for.
        extension: String,
    },

    /// No user has this id.
    #[error("unknown user id {0}")]
    UnknownUserId(UserId),

    /// The extension is taken in this site.
    #[error("extension {extension} already exists in site {site}")]
    DuplicateExtension {
        /// The site.
        site: String,
        /// The extension.
        extension: String,
    },

    /// The number already belongs to a user of this site.
    #[error("number {number} already belongs to user {owner} in site {site}")]
    DuplicateNumber {
        /// The site.
        site: String,
        /// The number, normalised.
        number: String,
        /// The extension of the user who has it.
        owner: String,
    },

    /// No recording has this id, or the caller may not see it (the two are not told apart, so
    /// a user cannot probe for other users' recordings).
    #[error("unknown recording {0}")]
    UnknownRecording(RecordingId),

    /// The change would leave a site that has an admin with none (the last admin demoted).
    #[error("user {extension} is the last admin of site {site}; make another user admin first")]
    LastAdmin {
        /// The site.
        site: String,
        /// The admin's extension.
        extension: String,
    },

    /// The user still has recordings: removing them would orphan what a regulator may ask
    /// for.
    #[error(
        "user {extension} of site {site} has {recordings} recording(s) in the index; they are \
         kept for their retention, so the user is too (set the mode to never and revoke the \
         tokens instead)"
    )]
    UserHasRecordings {
        /// The site.
        site: String,
        /// The extension.
        extension: String,
        /// How many (any state, tombstones included).
        recordings: i64,
    },

    /// The recording is on hold and may not be deleted.
    #[error("recording {0} is on hold and cannot be deleted")]
    OnHold(RecordingId),

    /// The recording's site is under legal hold, which keeps it until `until` (SPEC §1).
    #[error(
        "recording {id} is kept by the legal hold of site {site} until {until}; cannot be deleted"
    )]
    UnderLegalHold {
        /// The recording.
        id: RecordingId,
        /// Its site.
        site: String,
        /// When the legal hold lets it go (its expiry).
        until: chrono::DateTime<chrono::Utc>,
    },

    /// The recording is not in a state that allows the operation.
    #[error("recording {id} is {state}; cannot {op}")]
    WrongState {
        /// The recording.
        id: RecordingId,
        /// Its state.
        state: RecordingState,
        /// What was attempted.
        op: &'static str,
    },

    /// The caller's role does not allow the operation.
    #[error("{actor} may not {op}: admin only")]
    Forbidden {
        /// Who asked.
        actor: String,
        /// What was attempted.
        op: &'static str,
    },

    /// No API token has this id.
    #[error("unknown token {0}")]
    UnknownToken(TokenId),

    /// No webhook endpoint the caller may see has this id.
    #[error("unknown webhook {0}")]
    UnknownWebhook(i64),

    /// An endpoint with this URL exists already.
    #[error("a webhook for {0} exists already")]
    DuplicateWebhook(String),

    /// The endpoint comes from the config file, which is where it is changed.
    #[error("webhook {0} is configured in the config file ([webhooks] urls); remove it there")]
    ConfigWebhook(i64),

    /// A value given by a user or a config file is not acceptable.
    #[error("invalid {field} `{value}`: {reason}")]
    Invalid {
        /// Which field, e.g. `timezone`, `extension`.
        field: &'static str,
        /// The value given.
        value: String,
        /// Why it is refused.
        reason: String,
    },

    /// A search cursor that this store did not hand out.
    #[error("invalid cursor `{0}`")]
    BadCursor(String),

    /// The ingest worker has stopped and takes no more jobs.
    #[error("the ingest worker has stopped")]
    WorkerStopped,

    /// A blocking task of the async wrapper panicked or was cancelled.
    #[error("store task failed: {0}")]
    Task(String),
}

/// What kind of failure an error is: what a caller should do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorKind {
    /// No space left (ENOSPC, EDQUOT, SQLITE_FULL). Transient: retry once space returns.
    DiskFull,
    /// The database is busy or locked by another connection. Transient.
    Busy,
    /// Another I/O failure (EIO, permission denied on the store…). Transient: an operator
    /// can fix it and the retry then succeeds.
    Io,
    /// The caller asked for something that does not exist.
    NotFound,
    /// The request conflicts with the current state (hold, wrong state, duplicate).
    Conflict,
    /// The caller gave a bad value.
    Invalid,
    /// The caller may not do this.
    Forbidden,
    /// A bug, bad data in the index, or a stopped worker. Not worth retrying.
    Internal,
}

impl ErrorKind {
    /// Whether retrying the same operation later may succeed without anyone changing the
    /// request.
    pub fn is_transient(self) -> bool {
        match self {
            ErrorKind::DiskFull | ErrorKind::Busy | ErrorKind::Io => true,
            ErrorKind::NotFound
            | ErrorKind::Conflict
            | ErrorKind::Invalid
            | ErrorKind::Forbidden
            | ErrorKind::Internal => false,
        }
    }

    /// A short stable name, for metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::DiskFull => "disk_full",
            ErrorKind::Busy => "busy",
            ErrorKind::Io => "io",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Invalid => "invalid",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::Internal => "internal",
        }
    }
}

impl StoreError {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            StoreError::DataDirNotWritable { source, .. } => io_kind(source),
            StoreError::Io { source, .. } => io_kind(source),
            StoreError::Sql { source, .. } => sql_kind(source),
            StoreError::SchemaTooNew { .. } | StoreError::Corrupt(_) => ErrorKind::Internal,
            StoreError::UnknownSite(_)
            | StoreError::UnknownUser { .. }
            | StoreError::UnknownUserId(_)
            | StoreError::UnknownRecording(_)
            | StoreError::UnknownToken(_)
            | StoreError::UnknownWebhook(_) => ErrorKind::NotFound,
            StoreError::DuplicateSite(_)
            | StoreError::DuplicateExtension { .. }
            | StoreError::DuplicateNumber { .. }
            | StoreError::OnHold(_)
            | StoreError::DuplicateWebhook(_)
            | StoreError::ConfigWebhook(_)
            | StoreError::LastAdmin { .. }
            | StoreError::UserHasRecordings { .. }
            | StoreError::UnderLegalHold { .. }
            | StoreError::WrongState { .. } => ErrorKind::Conflict,
            StoreError::Forbidden { .. } => ErrorKind::Forbidden,
            StoreError::Invalid { .. } | StoreError::BadCursor(_) => ErrorKind::Invalid,
            StoreError::WorkerStopped | StoreError::Task(_) => ErrorKind::Internal,
        }
    }

    pub(crate) fn sql(op: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
        move |source| StoreError::Sql { op, source }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| StoreError::Io { op, path, source }
    }

    pub(crate) fn invalid(
        field: &'static str,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        StoreError::Invalid {
            field,
            value: callrec_model::names::excerpt(&value.into()),
            reason: reason.into(),
        }
    }
}

impl From<callrec_numbers::BadPlan> for StoreError {
    fn from(e: callrec_numbers::BadPlan) -> Self {
        StoreError::invalid(e.key, e.value, e.reason)
    }
}

fn io_kind(e: &io::Error) -> ErrorKind {
    match e.raw_os_error() {
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => return ErrorKind::DiskFull,
        Some(libc::EBUSY) | Some(libc::EAGAIN) | Some(libc::EINTR) => return ErrorKind::Busy,
        _ => {}
    }
    match e.kind() {
        io::ErrorKind::NotFound => ErrorKind::NotFound,
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => ErrorKind::DiskFull,
        io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput => ErrorKind::Invalid,
        _ => ErrorKind::Io,
    }
}

fn sql_kind(e: &rusqlite::Error) -> ErrorKind {
    use rusqlite::ErrorCode as C;
    match e.sqlite_error_code() {
        Some(C::DiskFull) => ErrorKind::DiskFull,
        Some(C::DatabaseBusy) | Some(C::DatabaseLocked) => ErrorKind::Busy,
        Some(C::SystemIoFailure) | Some(C::CannotOpen) | Some(C::PermissionDenied) => ErrorKind::Io,
        Some(C::ConstraintViolation) => ErrorKind::Conflict,
        _ => ErrorKind::Internal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enospc_is_a_transient_disk_full() {
        let err = StoreError::Io {
            op: "copy into the store",
            path: "/x".into(),
            source: io::Error::from_raw_os_error(libc::ENOSPC),
        };
        assert_eq!(err.kind(), ErrorKind::DiskFull);
        assert!(err.kind().is_transient());
        assert!(
            err.to_string()
                .starts_with("cannot copy into the store /x: ")
        );
    }

    #[test]
    fn a_missing_file_is_not_retried() {
        let err = StoreError::Io {
            op: "open",
            path: "/x".into(),
            source: io::Error::from_raw_os_error(libc::ENOENT),
        };
        assert!(!err.kind().is_transient());
    }
}

//! A recording as the daemon decides to start it: the row the store creates, in state
//! `recording`, before the switch has written a byte.

use std::path::PathBuf;

use chrono::{DateTime, Utc};

use crate::{Direction, RecordingId, UserId};

/// A recording the daemon starts (the row is created in state `recording`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRecording {
    /// Its id; the daemon picks it so it can put it in the spool file name first.
    pub id: RecordingId,
    /// Whose recording it is.
    pub user: UserId,
    /// The switch's channel uuid.
    pub call_uuid: String,
    /// The call's direction from the user's side.
    pub direction: Direction,
    /// The calling party as presented by the switch.
    pub from: String,
    /// The called party as presented by the switch.
    pub to: String,
    /// When recording started.
    pub started_at: DateTime<Utc>,
    /// The audio format, the file extension: `wav`, `mp3`… (lowercase letters and digits).
    pub format: String,
    /// The absolute path the switch was told to write.
    pub spool_path: PathBuf,
}

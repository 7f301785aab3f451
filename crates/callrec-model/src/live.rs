//! A call in progress as a user sees it: what the daemon reports and `GET /calls` lists.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::names::{Direction, RecordingId};

/// A call's recording as `GET /calls` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallRecording {
    /// Not being recorded.
    Off,
    /// Being recorded.
    Recording,
    /// Recording, paused.
    Paused,
}

impl CallRecording {
    /// `off`, `recording` or `paused`.
    pub fn as_str(self) -> &'static str {
        match self {
            CallRecording::Off => "off",
            CallRecording::Recording => "recording",
            CallRecording::Paused => "paused",
        }
    }
}

/// One user's view of one call in progress: what `GET /calls` lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveCall {
    /// The user's leg: the uuid `POST /calls/{uuid}/recording/{action}` and the feature codes
    /// act on.
    pub call_uuid: String,
    /// The owner's site.
    pub site: String,
    /// The owner's extension.
    pub user: String,
    /// Direction from the owner's side.
    pub direction: Direction,
    /// The calling party, as presented by the switch.
    pub from: String,
    /// The called party, as presented by the switch.
    pub to: String,
    /// When the owner's leg was answered.
    pub answered_at: DateTime<Utc>,
    /// The owner's leg is on hold.
    pub on_hold: bool,
    /// `off`, `recording` or `paused`.
    pub recording: CallRecording,
    /// The recording's id while there is one.
    pub recording_id: Option<RecordingId>,
}

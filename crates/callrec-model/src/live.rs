//! A call in progress as a user sees it, and the seam through which the API asks the daemon
//! about calls: [`LiveCalls`]. The daemon implements it for its handle, the API's tests with a
//! scripted double, so neither crate depends on the other.

use std::future::Future;
use std::pin::Pin;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::action::ActionError;
use crate::names::{Direction, RecordingAction, RecordingId};

/// A boxed future, so [`LiveCalls`] can be used as a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The state of a call's recording, as the daemon reports it to whoever shows calls in
/// progress.
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

/// One user's view of one call in progress, as the daemon reports it (the API shows it as
/// its own reply type).
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

/// A recording action as the API hands it to the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionRequest {
    /// The call (the owner's leg), already checked to be visible to the caller.
    pub call_uuid: String,
    /// What to do.
    pub action: RecordingAction,
    /// Who asked, as the audit log and the segment's actor name them (`1001@default`).
    pub actor: String,
}

/// Whether the daemon is ready to record (SPEC §5 `/readyz`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DaemonStatus {
    /// The Event Socket session is up.
    pub esl_connected: bool,
}

/// The daemon as the API sees it.
pub trait LiveCalls: Send + Sync + 'static {
    /// Every call in progress that has an owner, newest first is not required: the API
    /// filters by caller and sorts.
    fn calls(&self) -> Vec<LiveCall>;

    /// Carry out a recording action on a call, with the mode rules of the feature codes.
    /// Returns the call as it is after the action. The implementation writes the action's
    /// audit entry, naming `request.actor` (the daemon does it with the recording's segment);
    /// the API writes none for it.
    fn recording_action(
        &self,
        request: ActionRequest,
    ) -> BoxFuture<'_, Result<LiveCall, ActionError>>;

    /// The daemon's state, for `/readyz`.
    fn status(&self) -> DaemonStatus;

    /// The daemon's metrics in OpenMetrics text (ESL state, live calls, ingest latency,
    /// command failures…), to be served with the API's own at `/metrics`. Empty when it has
    /// none.
    fn metrics_text(&self) -> String;
}

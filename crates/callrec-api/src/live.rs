//! What the API needs from the daemon: calls in progress, recording actions, readiness and
//! the daemon's metrics.
//!
//! The daemon owns the live call table and the ESL session; the API only shows and forwards.
//! [`LiveCalls`] is the seam: the daemon implements it for its handle, tests implement it with
//! a scripted double, and [`NoDaemon`] stands in where no daemon runs (a read-only API over
//! an index, or the moments before the daemon is up).
//!
//! Who may see or act on which call is decided here in the API ([`LiveCall::visible_to`]),
//! from the owner the daemon reports, so the daemon never needs to know about tokens.

use std::future::Future;
use std::pin::Pin;

pub use callrec_store::RecordingAction;
use callrec_store::{Caller, Direction, RecordingId, Role};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A boxed future, so [`LiveCalls`] can be used as a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

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

/// One user's view of one call in progress: what `GET /calls` lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveCall {
    /// The user's leg: the uuid `POST /calls/{uuid}/recording/{action}` acts on.
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

impl LiveCall {
    /// Whether `caller` may see and act on this call: its owner, or an admin of its site.
    pub fn visible_to(&self, caller: &Caller) -> bool {
        self.site == caller.site
            && match caller.role {
                Role::Admin => true,
                Role::User => self.user == caller.extension,
            }
    }
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

/// Why the daemon did not carry out an action. The API maps each to a status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    /// No such call in progress (it may just have ended).
    #[error("no call {0} in progress")]
    UnknownCall(String),
    /// The owner's recording mode forbids it (pause in `always`, start in `never`…), or the
    /// site has recording turned off.
    #[error("not allowed: {0}")]
    NotAllowed(String),
    /// The recording is not in a state the action applies to (resume while not paused…).
    #[error("{0}")]
    WrongState(String),
    /// The daemon is not connected to the switch just now.
    #[error("the switch is not connected: {0}")]
    Unavailable(String),
    /// The switch refused or did not answer the command.
    #[error("the switch refused: {0}")]
    Switch(String),
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

/// A stand-in for a daemon that is not there: no calls, never ready, every action refused
/// with [`ActionError::Unavailable`].
#[derive(Debug, Clone, Copy, Default)]
pub struct NoDaemon;

impl LiveCalls for NoDaemon {
    fn calls(&self) -> Vec<LiveCall> {
        Vec::new()
    }

    fn recording_action(
        &self,
        request: ActionRequest,
    ) -> BoxFuture<'_, Result<LiveCall, ActionError>> {
        Box::pin(async move {
            Err(ActionError::Unavailable(format!(
                "no daemon runs to {} call {}",
                request.action, request.call_uuid
            )))
        })
    }

    fn status(&self) -> DaemonStatus {
        DaemonStatus {
            esl_connected: false,
        }
    }

    fn metrics_text(&self) -> String {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use callrec_store::{SiteId, TokenId, UserId};

    fn caller(ext: &str, site: &str, role: Role) -> Caller {
        Caller {
            token_id: TokenId(1),
            user_id: UserId(1),
            site_id: SiteId(1),
            site: site.to_owned(),
            extension: ext.to_owned(),
            role,
        }
    }

    fn call(user: &str, site: &str) -> LiveCall {
        LiveCall {
            call_uuid: "c".into(),
            site: site.into(),
            user: user.into(),
            direction: Direction::Outbound,
            from: "1001".into(),
            to: "02079460000".into(),
            answered_at: DateTime::<Utc>::UNIX_EPOCH,
            on_hold: false,
            recording: CallRecording::Recording,
            recording_id: None,
        }
    }

    #[test]
    fn a_user_sees_only_their_own_calls_and_an_admin_only_their_site() {
        let mine = call("1001", "default");
        let theirs = call("1002", "default");
        let elsewhere = call("1001", "other");
        let user = caller("1001", "default", Role::User);
        let admin = caller("9000", "default", Role::Admin);
        assert!(mine.visible_to(&user));
        assert!(!theirs.visible_to(&user));
        assert!(!elsewhere.visible_to(&user));
        assert!(mine.visible_to(&admin) && theirs.visible_to(&admin));
        assert!(!elsewhere.visible_to(&admin));
    }

    #[test]
    fn actions_parse_from_their_url_spelling_only() {
        for a in RecordingAction::ALL {
            assert_eq!(a.as_str().parse::<RecordingAction>(), Ok(*a));
        }
        assert!("Pause".parse::<RecordingAction>().is_err());
        assert!("../stop".parse::<RecordingAction>().is_err());
    }
}

//! What the API needs from the daemon: calls in progress, recording actions, readiness and
//! the daemon's metrics.
//!
//! The daemon owns the live call table and the ESL session; the API only shows and forwards.
//! [`LiveCalls`] is the seam: the daemon implements it for its handle, tests implement it with
//! a scripted double, and [`NoDaemon`] stands in where no daemon runs (a read-only API over
//! an index, or the moments before the daemon is up).
//!
//! Who may see or act on which call is decided here in the API ([`visible_to`]),
//! from the owner the daemon reports, so the daemon never needs to know about tokens.

use std::future::Future;
use std::pin::Pin;

use callrec_model::{ActionError, LiveCall, RecordingAction, Role};
use callrec_store::Caller;
use serde::Serialize;

/// A boxed future, so [`LiveCalls`] can be used as a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Whether `caller` may see and act on `call`: its owner, or an admin of its site.
pub fn visible_to(call: &LiveCall, caller: &Caller) -> bool {
    call.site == caller.site
        && match caller.role {
            Role::Admin => true,
            Role::User => call.user == caller.extension,
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
/// with [`ActionError::SwitchUnavailable`].
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
            Err(ActionError::SwitchUnavailable {
                action: request.action.as_str(),
            })
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
    use callrec_model::{CallRecording, Direction};
    use callrec_model::{SiteId, TokenId, UserId};
    use chrono::{DateTime, Utc};

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
        assert!(visible_to(&mine, &user));
        assert!(!visible_to(&theirs, &user));
        assert!(!visible_to(&elsewhere, &user));
        assert!(visible_to(&mine, &admin) && visible_to(&theirs, &admin));
        assert!(!visible_to(&elsewhere, &admin));
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

//! The API's side of the seam with the daemon ([`callrec_model::LiveCalls`]): who may see a
//! call, and [`NoDaemon`], which stands in where no daemon runs (a read-only API over an
//! index, or the moments before the daemon is up).
//!
//! Who may see or act on which call is decided here in the API ([`visible_to`]),
//! from the owner the daemon reports, so the daemon never needs to know about tokens.

use callrec_model::{
    ActionError, ActionRequest, BoxFuture, DaemonStatus, LiveCall, LiveCalls, Role,
};
use callrec_store::Caller;

/// Whether `caller` may see and act on `call`: its owner, or an admin of its site.
pub fn visible_to(call: &LiveCall, caller: &Caller) -> bool {
    visible(call, &caller.site, &caller.extension, caller.role)
}

/// Whether the person `extension` of `site` with `role` may see and act on `call` (a token's
/// caller or a portal session alike).
pub(crate) fn visible(call: &LiveCall, site: &str, extension: &str, role: Role) -> bool {
    call.site == site
        && match role {
            Role::Admin => true,
            Role::User => call.user == extension,
        }
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
    use callrec_model::{CallRecording, Direction, RecordingAction};
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

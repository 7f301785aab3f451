//! The daemon as the REST API sees it: [`callrec_api::LiveCalls`] for [`DaemonHandle`].
//!
//! A thin translation, nothing decided here: the daemon's call snapshot and typed action
//! errors become the API's, and actions asked through the API are recorded with source
//! `api` and the caller as actor. Who may see or act on which call is the API's to check.

use callrec_api::{ActionRequest, BoxFuture, CallRecording, DaemonStatus, LiveCalls};
use callrec_store::SegmentSource;
use chrono::DateTime;

use crate::calls::{LiveCall, RecordingStatus};
use crate::daemon::DaemonHandle;
use callrec_store::RecordingAction;

use crate::decide::ActionError;

/// The API's view of a call.
pub fn to_api_call(call: &LiveCall) -> callrec_api::LiveCall {
    callrec_api::LiveCall {
        call_uuid: call.call_uuid.clone(),
        site: call.site.clone(),
        user: call.user.clone(),
        direction: call.direction,
        from: call.from.clone(),
        to: call.to.clone(),
        answered_at: DateTime::from_timestamp_micros(call.answered_at_us)
            .unwrap_or(DateTime::UNIX_EPOCH),
        on_hold: call.on_hold,
        recording: match call.recording {
            RecordingStatus::Off => CallRecording::Off,
            RecordingStatus::Recording => CallRecording::Recording,
            RecordingStatus::Paused => CallRecording::Paused,
        },
        recording_id: call.recording_id.clone(),
    }
}

/// The API's error for a daemon's refusal.
pub fn to_api_error(e: ActionError) -> callrec_api::ActionError {
    let message = e.to_string();
    match e {
        ActionError::UnknownCall(uuid) => callrec_api::ActionError::UnknownCall(uuid),
        ActionError::NoOwner(_) | ActionError::Refused { .. } => {
            callrec_api::ActionError::NotAllowed(message)
        }
        ActionError::Conflict { .. } => callrec_api::ActionError::WrongState(message),
        ActionError::SwitchRefused { .. } => callrec_api::ActionError::Switch(message),
        ActionError::SwitchUnavailable { .. } => callrec_api::ActionError::Unavailable(message),
    }
}

/// What a call looks like once `action` took effect, for when it ended meanwhile.
fn after(mut call: callrec_api::LiveCall, action: RecordingAction) -> callrec_api::LiveCall {
    call.recording = match action {
        RecordingAction::Start | RecordingAction::Resume => CallRecording::Recording,
        RecordingAction::Pause => CallRecording::Paused,
        RecordingAction::Stop => CallRecording::Off,
    };
    call
}

impl LiveCalls for DaemonHandle {
    fn calls(&self) -> Vec<callrec_api::LiveCall> {
        self.live_calls().iter().map(to_api_call).collect()
    }

    fn recording_action(
        &self,
        request: ActionRequest,
    ) -> BoxFuture<'_, Result<callrec_api::LiveCall, callrec_api::ActionError>> {
        Box::pin(async move {
            let find = |this: &DaemonHandle| {
                this.live_calls()
                    .iter()
                    .find(|c| c.call_uuid == request.call_uuid)
                    .map(to_api_call)
            };
            let before = find(self);
            let done = DaemonHandle::recording_action(
                self,
                &request.call_uuid,
                request.action,
                &request.actor,
                SegmentSource::Api,
            )
            .await
            .map_err(to_api_error)?;
            match find(self).or(before) {
                Some(call) => {
                    let mut call = after(call, request.action);
                    call.recording_id = Some(done.recording);
                    Ok(call)
                }
                None => Err(callrec_api::ActionError::UnknownCall(request.call_uuid)),
            }
        })
    }

    fn status(&self) -> DaemonStatus {
        DaemonStatus {
            esl_connected: self.readiness().esl_connected,
        }
    }

    fn metrics_text(&self) -> String {
        DaemonHandle::metrics_text(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use callrec_store::RecordingMode;

    #[test]
    fn refusals_by_mode_are_not_allowed_and_state_clashes_are_wrong_state() {
        let e = to_api_error(ActionError::Refused {
            action: "pause",
            mode: RecordingMode::Always,
        });
        assert!(matches!(e, callrec_api::ActionError::NotAllowed(_)));
        let e = to_api_error(ActionError::Conflict {
            action: "resume",
            reason: "not paused",
        });
        assert!(matches!(e, callrec_api::ActionError::WrongState(_)));
        let e = to_api_error(ActionError::SwitchUnavailable { action: "pause" });
        assert!(matches!(e, callrec_api::ActionError::Unavailable(_)));
        let e = to_api_error(ActionError::UnknownCall("x".into()));
        assert_eq!(e, callrec_api::ActionError::UnknownCall("x".into()));
    }
}

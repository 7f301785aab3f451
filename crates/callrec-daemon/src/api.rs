//! The daemon as the REST API sees it: [`callrec_model::LiveCalls`] for [`DaemonHandle`].
//!
//! Nothing decided or translated here: the daemon's calls and its typed action errors are
//! the API's too (`callrec-model`); actions asked through the API are recorded with source
//! `api` and the caller as actor. Who may see or act on which call is the API's to check.

use callrec_model::{ActionError, CallRecording, LiveCall, RecordingAction, SegmentSource};
use callrec_model::{ActionRequest, BoxFuture, DaemonStatus, LiveCalls};

use crate::daemon::DaemonHandle;

/// What a call looks like once `action` took effect, for when it ended meanwhile.
fn after(mut call: LiveCall, action: RecordingAction) -> LiveCall {
    call.recording = match action {
        RecordingAction::Start | RecordingAction::Resume => CallRecording::Recording,
        RecordingAction::Pause => CallRecording::Paused,
        RecordingAction::Stop => CallRecording::Off,
    };
    call
}

impl LiveCalls for DaemonHandle {
    fn calls(&self) -> Vec<LiveCall> {
        self.live_calls()
    }

    fn recording_action(
        &self,
        request: ActionRequest,
    ) -> BoxFuture<'_, Result<LiveCall, ActionError>> {
        Box::pin(async move {
            let find = |this: &DaemonHandle| {
                this.live_calls()
                    .into_iter()
                    .find(|c| c.call_uuid == request.call_uuid)
            };
            let before = find(self);
            let done = DaemonHandle::recording_action(
                self,
                &request.call_uuid,
                request.action,
                &request.actor,
                SegmentSource::Api,
            )
            .await?;
            match find(self).or(before) {
                Some(call) => {
                    let mut call = after(call, request.action);
                    call.recording_id = Some(done.recording);
                    Ok(call)
                }
                None => Err(ActionError::UnknownCall(request.call_uuid)),
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

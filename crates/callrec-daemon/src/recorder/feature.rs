//! A feature-code call (SPEC §3.5): which of the user's calls it acts on, the action its
//! code names, and what the handset hears.

use callrec_model::{ActionError, CallRecording, LiveCall, Prompt, RecordingAction, SegmentSource};

use super::{ActionPlan, Recorder, confirming};
use crate::calls::{CallTable, UserCall};
use crate::directory::UserKey;
use crate::event::ChannelEvent;

/// How a feature-code call is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeatureDecision {
    /// Play this prompt now; nothing to do on the switch.
    Play(Prompt),
    /// Carry out the plan; play `on_success` if it succeeds, `not_allowed` otherwise.
    Act {
        /// The accepted action.
        plan: ActionPlan,
        /// The prompt once the switch confirmed.
        on_success: Prompt,
    },
}

impl Recorder {
    /// Decides how to answer a feature-code call (SPEC §3.5): `call` is the feature call's
    /// channel data (the reply to `connect`).
    pub fn feature_code(&mut self, call: &ChannelEvent) -> FeatureDecision {
        let Some(action) = call
            .destination
            .as_deref()
            .and_then(|d| self.settings.feature_codes.action(d))
        else {
            return FeatureDecision::Play(Prompt::NotAllowed);
        };
        // Only a name the switch or the dialplan set (`user_name` once the phone
        // authenticated, `callrec_user`) says who dials: a caller ID is whatever the phone
        // sends, and would let any phone pause or resume another user's recording.
        let Some(owner) = self.owner_of(call).filter(|o| !o.by_number) else {
            return FeatureDecision::Play(Prompt::NotAllowed);
        };
        let Some(user) = self.owners.user(&owner.user).cloned() else {
            return FeatureDecision::Play(Prompt::NotAllowed);
        };
        let Some(target) = select_target(&self.table, &owner.user, call) else {
            return FeatureDecision::Play(Prompt::NoCall);
        };
        // From the handset, *44 on a paused recording means "record again".
        let action = match (action, target.recording) {
            (RecordingAction::Start, CallRecording::Paused) => RecordingAction::Resume,
            (action, _) => action,
        };
        // The same spelling as an API caller (`1001@default`), so one person reads one way in
        // the audit log whichever way they acted.
        let actor = UserKey::of(&user).to_string();
        match self.recording_action(
            &target.call_uuid,
            action,
            SegmentSource::Handset,
            &actor,
            call.at,
        ) {
            Ok(plan) => FeatureDecision::Act {
                plan,
                on_success: confirming(action),
            },
            Err(err) => FeatureDecision::Play(prompt_for_refusal(action, &err)),
        }
    }
}

/// What the handset hears when an action is not carried out.
fn prompt_for_refusal(action: RecordingAction, err: &ActionError) -> Prompt {
    match err {
        // Asking for the state the recording is already in: confirm it.
        ActionError::Conflict { reason, .. }
            if matches!(
                (action, *reason),
                (RecordingAction::Pause, "already paused")
                    | (RecordingAction::Resume, "not paused")
                    | (RecordingAction::Start, "already recording")
            ) =>
        {
            confirming(action)
        }
        ActionError::UnknownCall(_) => Prompt::NoCall,
        _ => Prompt::NotAllowed,
    }
}

/// The call a feature code acts on (SPEC §3.5): the user's other call on hold, most recently
/// held first; else their single other call; else none.
pub fn select_target(
    table: &CallTable,
    user: &UserKey,
    feature_call: &ChannelEvent,
) -> Option<LiveCall> {
    let excluded_group: Option<u64> = table.channel(&feature_call.uuid).map(|c| c.group);
    let mut calls: Vec<UserCall> = table
        .user_calls()
        .into_iter()
        .filter(|c| c.call.site == user.site && c.call.user == user.extension)
        .filter(|c| Some(c.group) != excluded_group && c.call.call_uuid != feature_call.uuid)
        .filter(|c| feature_call.peers().all(|p| p != c.call.call_uuid))
        .collect();
    if let Some(held) = calls
        .iter()
        .filter(|c| c.held_since.is_some())
        .max_by_key(|c| c.held_since)
    {
        return Some(held.call.clone());
    }
    if calls.len() == 1 {
        return calls.pop().map(|c| c.call);
    }
    None
}

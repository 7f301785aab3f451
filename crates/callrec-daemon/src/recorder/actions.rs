//! Pause, resume, start and stop asked for by the API or the handset: checked against the
//! call's recording and the owner's mode, then planned as switch commands with a ticket.

use callrec_model::{
    ActionError, PauseBehavior, Prompt, RecordingAction, RecordingMode, SegmentSource,
};

use super::{ActionPlan, Effect, POLICY_ACTOR, RecordOp, Recorder, SwitchCommand};
use crate::calls::StopRequest;
use crate::event::Micros;

/// The prompt confirming an action carried out from the handset.
pub fn confirming(action: RecordingAction) -> Prompt {
    match action {
        RecordingAction::Start => Prompt::Started,
        RecordingAction::Pause => Prompt::Paused,
        RecordingAction::Resume => Prompt::Resumed,
        // The handset has no stop code; a stop is confirmed like a pause would be.
        RecordingAction::Stop => Prompt::Paused,
    }
}

impl Recorder {
    /// Recordings paused for their site's `max_pause_seconds` or longer are resumed by the
    /// policy (issue 13: PCI DSS auditors ask for it, because a forgotten *49 otherwise
    /// leaves the rest of a call unrecorded), and the user hears the "resumed" prompt. The
    /// daemon calls this every second; the resume's segment says `policy`. A recording
    /// whose pause or resume still awaits the switch, or that is stopping, is left alone.
    /// Returns the effects and the legs resumed.
    pub fn auto_resume(&mut self, now: Micros) -> (Vec<Effect>, Vec<String>) {
        let due: Vec<String> = self
            .table
            .channels()
            .filter_map(|c| {
                let rec = c.recording.as_ref()?;
                let since = rec.paused_since?;
                if rec.changing || rec.stop_requested.is_some() {
                    return None;
                }
                let max = self
                    .owners
                    .site(&rec.user.site)
                    .map_or(0, |s| s.settings.max_pause_seconds);
                (max > 0 && now.saturating_sub(since) >= i64::from(max) * 1_000_000)
                    .then(|| c.uuid.clone())
            })
            .collect();
        let mut effects = Vec::new();
        let mut resumed = Vec::new();
        for leg in due {
            let Ok(plan) = self.recording_action(
                &leg,
                RecordingAction::Resume,
                SegmentSource::Policy,
                POLICY_ACTOR,
                now,
            ) else {
                continue;
            };
            effects.extend(plan.effects);
            effects.push(Effect::Announce {
                channel: leg.clone(),
                file: self.settings.resumed_prompt.clone(),
            });
            resumed.push(leg);
        }
        (effects, resumed)
    }

    /// Starts, stops, pauses or resumes the recording of a call in progress, under the
    /// owner's mode rules (SPEC §1, §3.4). `call_uuid` is a leg as [`callrec_model::LiveCall`] lists it.
    pub fn recording_action(
        &mut self,
        call_uuid: &str,
        action: RecordingAction,
        source: SegmentSource,
        actor: &str,
        at: Micros,
    ) -> Result<ActionPlan, ActionError> {
        let ch = self
            .table
            .channel(call_uuid)
            .filter(|c| c.seen_answered())
            .ok_or_else(|| ActionError::UnknownCall(call_uuid.to_owned()))?;
        if ch.feature_call {
            return Err(ActionError::NoOwner(call_uuid.to_owned()));
        }
        let user = ch
            .user()
            .cloned()
            .ok_or_else(|| ActionError::NoOwner(call_uuid.to_owned()))?;
        let mode = self
            .owners
            .user(&user)
            .map(|u| u.mode)
            .ok_or_else(|| ActionError::NoOwner(call_uuid.to_owned()))?;
        let group = ch.group;
        // The user's recording may be on another leg of the same call (a loopback pair).
        let recorded_leg = self
            .table
            .user_recording_in_group(group, &user)
            .map(|c| c.uuid.clone());
        let name = action.as_str();
        let refused = || ActionError::Refused { action: name, mode };
        let conflict = |reason| ActionError::Conflict {
            action: name,
            reason,
        };
        match action {
            RecordingAction::Start => {
                if mode == RecordingMode::Never {
                    return Err(refused());
                }
                if let Some(rec) = recorded_leg
                    .as_deref()
                    .and_then(|leg| self.table.channel(leg))
                    .and_then(|c| c.recording.as_ref())
                {
                    // "Already recording" is confirmed to the handset as "started": only
                    // true once the switch said so (RECORD_START), and while no stop is
                    // on its way.
                    if rec.stop_requested.is_some() {
                        return Err(conflict("the recording is stopping"));
                    }
                    if !rec.confirmed {
                        return Err(conflict("the recording is not started yet"));
                    }
                    return Err(conflict("already recording"));
                }
                if recorded_leg.is_some() {
                    return Err(conflict("already recording"));
                }
                // Whichever leg the caller named, the recording goes on the user's own leg.
                let leg = self
                    .table
                    .user_leg(group, &user)
                    .map_or_else(|| call_uuid.to_owned(), |c| c.uuid.clone());
                let ticket = self.ticket();
                let effects = self.start_recording(&leg, at, source, actor, Some(ticket));
                Ok(ActionPlan { effects, ticket })
            }
            RecordingAction::Stop | RecordingAction::Pause | RecordingAction::Resume => {
                if mode == RecordingMode::Always {
                    return Err(refused());
                }
                let leg = recorded_leg.ok_or_else(|| conflict("not recording"))?;
                let ticket = self.ticket();
                let rec = self
                    .table
                    .channel_mut(&leg)
                    .and_then(|c| c.recording.as_mut())
                    .ok_or_else(|| conflict("not recording"))?;
                if rec.stop_requested.is_some() {
                    return Err(conflict("the recording is stopping"));
                }
                // Checked before "already paused": that state is only asked for so far, and
                // the switch may still refuse it.
                if rec.changing && action != RecordingAction::Stop {
                    return Err(conflict("a pause or resume awaits the switch"));
                }
                let paused_before = rec.paused_since;
                let op = match (action, rec.pause_behavior, rec.paused_since) {
                    (RecordingAction::Stop, _, _) => RecordOp::Stop,
                    (RecordingAction::Pause, _, Some(_)) => return Err(conflict("already paused")),
                    (RecordingAction::Resume, _, None) => return Err(conflict("not paused")),
                    (RecordingAction::Pause, PauseBehavior::Silence, None) => RecordOp::Mask,
                    (RecordingAction::Pause, PauseBehavior::Skip, None) => RecordOp::Pause,
                    (RecordingAction::Resume, PauseBehavior::Silence, Some(_)) => RecordOp::Unmask,
                    (RecordingAction::Resume, PauseBehavior::Skip, Some(_)) => RecordOp::Resume,
                    (RecordingAction::Start, _, _) => unreachable!("handled above"),
                };
                match op {
                    RecordOp::Stop => {
                        rec.stop_requested = Some(StopRequest {
                            source,
                            actor: actor.to_owned(),
                        })
                    }
                    RecordOp::Mask | RecordOp::Pause => rec.paused_since = Some(at),
                    _ => rec.paused_since = None,
                }
                if !matches!(op, RecordOp::Stop) {
                    rec.changing = true;
                }
                let cmd = SwitchCommand {
                    channel: leg,
                    op,
                    recording: rec.id.clone(),
                    path: rec.path.clone(),
                    attempt: 1,
                    ticket: Some(ticket),
                    at,
                    source,
                    actor: actor.to_owned(),
                    paused_before,
                };
                Ok(ActionPlan {
                    effects: vec![Effect::Command(cmd)],
                    ticket,
                })
            }
        }
    }
}

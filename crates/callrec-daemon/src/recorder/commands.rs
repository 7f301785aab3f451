//! The switch's reply to a command: a start, pause or resume it confirmed, or one it refused,
//! in which case what the table assumed is undone and whoever asked is answered.

use callrec_model::{ActionError, RecordingAction, SegmentKind};

use super::{ActionDone, CommandOutcome, Effect, RecordOp, Recorder, StoreOp, SwitchCommand};

impl Recorder {
    /// Applies the switch's answer to a command.
    pub fn on_command_result(
        &mut self,
        cmd: &SwitchCommand,
        outcome: CommandOutcome,
    ) -> Vec<Effect> {
        if let Some(effects) = self.arming_refused(cmd, &outcome) {
            return effects;
        }
        let still_ours = self
            .table
            .channel(&cmd.channel)
            .and_then(|c| c.recording.as_ref())
            .is_some_and(|r| r.id == cmd.recording);
        let action = match cmd.op {
            RecordOp::Start { .. } | RecordOp::ArmOnAnswer { .. } => RecordingAction::Start,
            RecordOp::Mask | RecordOp::Pause => RecordingAction::Pause,
            RecordOp::Unmask | RecordOp::Resume => RecordingAction::Resume,
            RecordOp::Stop | RecordOp::Unarm => RecordingAction::Stop,
        };
        // The command's final answer (a first refusal is retried below). A lost one: whether
        // it ran is unknown, and reconciliation after the reconnect asks the switch which
        // recordings run, rather than guessing here. A pause nobody confirmed is not taken as
        // done, though: the recording is held as not paused, so the next pause (*48 again,
        // say before a card number) is sent to the switch again (masking twice is harmless)
        // instead of being confirmed on the strength of this one. A resume is already held as
        // done, so a later pause is sent too. A stop nobody confirmed no longer blocks every
        // later action as "stopping": if the switch still records, a pause must still reach
        // it.
        let lost = matches!(outcome, CommandOutcome::Lost);
        let last_answer = match &outcome {
            CommandOutcome::Refused(_) => cmd.attempt >= 2,
            CommandOutcome::Ok | CommandOutcome::Lost => true,
        };
        if still_ours
            && last_answer
            && let Some(rec) = self
                .table
                .channel_mut(&cmd.channel)
                .and_then(|c| c.recording.as_mut())
        {
            match cmd.op {
                RecordOp::Start { .. } | RecordOp::ArmOnAnswer { .. } | RecordOp::Unarm => {}
                RecordOp::Stop => {
                    if lost {
                        rec.stop_requested = None;
                    }
                }
                RecordOp::Mask | RecordOp::Pause => {
                    rec.changing = false;
                    if lost {
                        rec.paused_since = None;
                    }
                }
                RecordOp::Unmask | RecordOp::Resume => rec.changing = false,
            }
        }
        let mut effects = Vec::new();
        match outcome {
            CommandOutcome::Ok => {
                match cmd.op {
                    RecordOp::Mask | RecordOp::Pause => {
                        effects.push(self.segment(cmd, SegmentKind::Pause));
                    }
                    RecordOp::Unmask | RecordOp::Resume => {
                        effects.push(self.segment(cmd, SegmentKind::Resume));
                    }
                    RecordOp::Start { .. }
                    | RecordOp::ArmOnAnswer { .. }
                    | RecordOp::Unarm
                    | RecordOp::Stop => {}
                }
                if let Some(ticket) = cmd.ticket {
                    effects.push(Effect::Resolve {
                        ticket,
                        outcome: Ok(ActionDone {
                            action,
                            recording: cmd.recording.clone(),
                        }),
                    });
                }
            }
            CommandOutcome::Refused(reply) if cmd.attempt < 2 && still_ours => {
                let _ = reply;
                let mut retry = cmd.clone();
                retry.attempt += 1;
                effects.push(Effect::Command(retry));
            }
            CommandOutcome::Refused(reply) => {
                if still_ours {
                    effects.extend(self.undo(cmd, &reply));
                }
                if let Some(ticket) = cmd.ticket {
                    effects.push(Effect::Resolve {
                        ticket,
                        outcome: Err(ActionError::SwitchRefused {
                            action: action.as_str(),
                            reply,
                        }),
                    });
                }
            }
            CommandOutcome::Lost => {
                if let Some(ticket) = cmd.ticket {
                    effects.push(Effect::Resolve {
                        ticket,
                        outcome: Err(ActionError::SwitchUnavailable {
                            action: action.as_str(),
                        }),
                    });
                }
            }
        }
        effects
    }

    /// The switch refused to arm a recording before answer (the leg hung up meanwhile, say):
    /// the armed recording is forgotten, so the answer, if it comes, starts one the usual way.
    /// `None` when the command is anything else.
    fn arming_refused(
        &mut self,
        cmd: &SwitchCommand,
        outcome: &CommandOutcome,
    ) -> Option<Vec<Effect>> {
        let arming = matches!(
            cmd.op,
            RecordOp::Start {
                before_answer: true,
                ..
            } | RecordOp::ArmOnAnswer { .. }
        );
        if !arming || !matches!(outcome, CommandOutcome::Refused(_)) {
            return None;
        }
        let ch = self.table.channel_mut(&cmd.channel)?;
        if ch.armed.as_ref().is_none_or(|r| r.id != cmd.recording) {
            return None;
        }
        let armed = ch.armed.take()?;
        Some(vec![Effect::Store(StoreOp::Disarmed {
            id: armed.id,
            spool_path: armed.path,
        })])
    }

    pub(super) fn segment(&self, cmd: &SwitchCommand, kind: SegmentKind) -> Effect {
        Effect::Store(StoreOp::Segment {
            id: cmd.recording.clone(),
            kind,
            at: cmd.at,
            source: cmd.source,
            actor: cmd.actor.clone(),
        })
    }

    /// Puts the table back as it was before a command the switch finally refused.
    pub(super) fn undo(&mut self, cmd: &SwitchCommand, reply: &str) -> Vec<Effect> {
        match cmd.op {
            RecordOp::Start { .. } => {
                self.table.set_recording(&cmd.channel, None);
                vec![Effect::Store(StoreOp::Fail {
                    id: cmd.recording.clone(),
                    reason: format!("the switch refused to start recording: {reply}"),
                    at: cmd.at,
                })]
            }
            RecordOp::Mask | RecordOp::Pause | RecordOp::Unmask | RecordOp::Resume => {
                if let Some(rec) = self
                    .table
                    .channel_mut(&cmd.channel)
                    .and_then(|c| c.recording.as_mut())
                {
                    rec.paused_since = cmd.paused_before;
                }
                Vec::new()
            }
            RecordOp::ArmOnAnswer { .. } | RecordOp::Unarm => Vec::new(),
            RecordOp::Stop => {
                if let Some(rec) = self
                    .table
                    .channel_mut(&cmd.channel)
                    .and_then(|c| c.recording.as_mut())
                {
                    rec.stop_requested = None;
                }
                Vec::new()
            }
        }
    }
}

//! What a decision asks for: commands for the switch, operations for the store, answers for
//! whoever waits on an action. The daemon carries them out; the decisions never do.

use callrec_model::{
    ActionError, NewRecording, RecordingAction, RecordingId, SegmentKind, SegmentSource,
};

use crate::calls::LiveRecording;
use crate::event::Micros;

/// Identifies an action whose caller waits for the switch's answer.
pub type Ticket = u64;

/// What `uuid_record` is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordOp {
    /// `start <path> 0 {callrec_id=…,RECORD_MIN_SEC=…}`.
    Start {
        /// Passed as `RECORD_MIN_SEC`.
        min_seconds: u32,
        /// Armed before answer: `RECORD_ANSWER_REQ=true`, so the switch writes nothing until
        /// the leg answers, and starts writing in the channel's own thread at its first
        /// answered frame.
        before_answer: bool,
    },
    /// Armed on a leg that rings without media: not `uuid_record` but `uuid_setvar <leg>
    /// api_on_answer_callrec uuid_record <leg> start <path> 0 {…}`, so the switch starts
    /// the recording itself in the channel's thread as the leg answers (the variable prefix
    /// `api_on_answer` is run by `switch_channel_perform_mark_answered`), without asking for
    /// media first (which would pre-answer the leg) and without the Event Socket's round
    /// trip after the answer.
    ArmOnAnswer {
        /// Passed as `RECORD_MIN_SEC`.
        min_seconds: u32,
    },
    /// Takes such an arming back before the answer: `uuid_setvar <leg>
    /// api_on_answer_callrec` (no value: unset).
    Unarm,
    /// `mask` (pause as silence).
    Mask,
    /// `unmask`.
    Unmask,
    /// `pause` (pause as skip).
    Pause,
    /// `resume`.
    Resume,
    /// `stop`.
    Stop,
}

impl RecordOp {
    fn verb(self) -> &'static str {
        match self {
            RecordOp::Start { .. } | RecordOp::ArmOnAnswer { .. } => "start",
            RecordOp::Unarm => "unarm",
            RecordOp::Mask => "mask",
            RecordOp::Unmask => "unmask",
            RecordOp::Pause => "pause",
            RecordOp::Resume => "resume",
            RecordOp::Stop => "stop",
        }
    }

    /// A metric label for failures of this command.
    pub fn kind(self) -> &'static str {
        match self {
            RecordOp::Start { .. } => "record_start",
            RecordOp::ArmOnAnswer { .. } => "record_arm",
            RecordOp::Unarm => "record_unarm",
            RecordOp::Mask => "record_mask",
            RecordOp::Unmask => "record_unmask",
            RecordOp::Pause => "record_pause",
            RecordOp::Resume => "record_resume",
            RecordOp::Stop => "record_stop",
        }
    }
}

/// The channel variable a leg ringing without media is armed with ([`RecordOp::ArmOnAnswer`]):
/// any variable whose name starts with `api_on_answer` is run at answer, so this one leaves a
/// dialplan's own `api_on_answer` alone.
pub const ARM_VARIABLE: &str = "api_on_answer_callrec";

/// A `uuid_record` command for the switch, with what to do once it answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchCommand {
    /// The channel.
    pub channel: String,
    /// What to do.
    pub op: RecordOp,
    /// The recording.
    pub recording: RecordingId,
    /// Its spool path.
    pub path: String,
    /// 1 for the first try, 2 for the one retry.
    pub attempt: u8,
    /// Who waits for the outcome, if anyone.
    pub ticket: Option<Ticket>,
    /// When it was decided (segment time on success).
    pub at: Micros,
    /// Segment source on success.
    pub source: SegmentSource,
    /// Segment actor on success.
    pub actor: String,
    /// The pause state to restore if the command finally fails.
    pub paused_before: Option<Micros>,
}

impl SwitchCommand {
    /// A first try of `op` on `rec` that the daemon decided on its own (no one waits for
    /// it; its segment, if any, is the policy's).
    pub fn policy(channel: &str, op: RecordOp, rec: &LiveRecording, at: Micros) -> SwitchCommand {
        SwitchCommand {
            channel: channel.to_owned(),
            op,
            recording: rec.id.clone(),
            path: rec.path.clone(),
            attempt: 1,
            ticket: None,
            at,
            source: SegmentSource::Policy,
            actor: super::POLICY_ACTOR.to_owned(),
            paused_before: None,
        }
    }

    /// The API command text, exactly as the switch expects it.
    pub fn api_text(&self) -> String {
        match self.op {
            RecordOp::Start {
                min_seconds,
                before_answer,
            } => format!(
                "uuid_record {} start {} 0 {{callrec_id={},RECORD_MIN_SEC={}{}}}",
                self.channel,
                self.path,
                self.recording,
                min_seconds,
                if before_answer {
                    ",RECORD_ANSWER_REQ=true"
                } else {
                    ""
                }
            ),
            RecordOp::ArmOnAnswer { min_seconds } => format!(
                "uuid_setvar {ch} {ARM_VARIABLE} uuid_record {ch} start {} 0 \
                 {{callrec_id={},RECORD_MIN_SEC={min_seconds}}}",
                self.path,
                self.recording,
                ch = self.channel,
            ),
            RecordOp::Unarm => format!("uuid_setvar {} {ARM_VARIABLE}", self.channel),
            op => format!("uuid_record {} {} {}", self.channel, op.verb(), self.path),
        }
    }
}

/// An operation for the store, applied in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreOp {
    /// Create the row (state `recording`).
    Create(NewRecording),
    /// Append a segment.
    Segment {
        /// Recording.
        id: RecordingId,
        /// Start, pause, resume or stop.
        kind: SegmentKind,
        /// When.
        at: Micros,
        /// Handset, API or policy.
        source: SegmentSource,
        /// Who.
        actor: String,
    },
    /// The switch closed the file: move it into the store.
    Ingest {
        /// Recording.
        id: RecordingId,
        /// Where the switch wrote it.
        spool_path: String,
        /// When it ended.
        ended_at: Micros,
    },
    /// The switch discarded the file (shorter than `min_seconds`).
    Discard {
        /// Recording.
        id: RecordingId,
        /// Why, e.g. `input-too-short`.
        reason: String,
        /// When.
        at: Micros,
        /// Where the file would be, in case the switch kept it after all.
        spool_path: String,
    },
    /// A recording armed before answer whose leg was not the one recorded (it hung up
    /// unanswered, or another leg carries the user's recording): it has no row; whatever
    /// file the switch left is removed.
    Disarmed {
        /// The armed recording's id (never indexed).
        id: RecordingId,
        /// Where the switch was told to write.
        spool_path: String,
    },
    /// A recording armed before answer ended (RECORD_STOP, hangup, or its channel found gone
    /// by reconciliation) without the leg's answer having been seen: the answer may have been
    /// lost with a dropped connection or dropped events while the switch wrote the whole
    /// call. If the file holds audio it is indexed from `new` (a start segment at the arming
    /// time) and ingested; if not (the leg never answered), it is removed.
    ArmedEnded {
        /// The row it gets if it holds audio.
        new: NewRecording,
        /// When it ended.
        ended_at: Micros,
    },
    /// The recording could not be made.
    Fail {
        /// Recording.
        id: RecordingId,
        /// Why.
        reason: String,
        /// When.
        at: Micros,
    },
}

/// What an action achieved, once the switch confirmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionDone {
    /// The action carried out.
    pub action: RecordingAction,
    /// The recording acted on.
    pub recording: RecordingId,
}

/// Something to carry out after a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Send to the switch.
    Command(SwitchCommand),
    /// Apply to the store.
    Store(StoreOp),
    /// Play a prompt to a call (`uuid_broadcast <channel> <file> aleg`); only logged if the
    /// switch refuses it.
    Announce {
        /// The leg.
        channel: String,
        /// The file, as the switch reads it.
        file: String,
    },
    /// Tell whoever holds the ticket how their action ended.
    Resolve {
        /// The waiter.
        ticket: Ticket,
        /// How it ended.
        outcome: Result<ActionDone, ActionError>,
    },
}

/// How the switch answered a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandOutcome {
    /// `+OK`.
    Ok,
    /// `-ERR …` / `-USAGE …`: the reply text.
    Refused(String),
    /// No answer: the connection went away. The command may or may not have run.
    Lost,
}

/// An accepted action: effects to carry out, and the ticket its answer will come on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionPlan {
    /// Effects to carry out now.
    pub effects: Vec<Effect>,
    /// Resolved by a later [`Effect::Resolve`].
    pub ticket: Ticket,
}

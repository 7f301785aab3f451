//! Recording decisions: `(state, input) -> effects`, as plain functions.
//!
//! [`Recorder`] owns the call table and the directory (an [`OwnerIndex`]). Each input — a
//! switch event, a command's result, an API or handset action — updates the table and returns
//! the [`Effect`]s to carry out: commands for the switch, operations for the store, and answers
//! for whoever asked. Nothing here does I/O or reads a clock; event timestamps give every
//! time, so tests drive it with events parsed from real captures and check the effects.

use std::collections::HashSet;
use std::path::PathBuf;

use callrec_config::FeatureCodesConfig;
use callrec_model::{
    ActionError, CallRecording, Direction, LiveCall, NewRecording, PauseBehavior, Prompt,
    RecordingAction, RecordingId, RecordingMode, SegmentKind, SegmentSource, to_utc,
};

use crate::calls::{CallTable, Channel, GroupId, LiveRecording, Owner, StopRequest, UserCall};
use crate::directory::{OwnerIndex, UserKey};
use crate::event::{ChannelEvent, EventKind, Micros};

/// The actor recorded for what the daemon does on its own (answer, hangup, reconcile).
pub const POLICY_ACTOR: &str = "callrec";

/// What the decisions need from the configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The spool directory as the switch sees it (recordings are written there).
    pub spool_dir: String,
    /// File format and extension, e.g. `wav`.
    pub format: String,
    /// Ownership headers in order (SPEC §3.2, `[match] headers`).
    pub owner_headers: Vec<String>,
    /// The handset codes.
    pub feature_codes: FeatureCodesConfig,
}

impl Settings {
    /// The default header list of SPEC §3.2.
    pub fn default_owner_headers() -> Vec<String> {
        [
            "variable_callrec_user",
            "variable_user_name",
            "variable_dialed_user",
            "Caller-Caller-ID-Number",
            "Caller-Destination-Number",
        ]
        .map(String::from)
        .to_vec()
    }

    /// The spool path of a recording: `<spool>/<id>.<ext>`.
    pub fn spool_path(&self, id: &RecordingId) -> String {
        format!(
            "{}/{}.{}",
            self.spool_dir.trim_end_matches('/'),
            id,
            self.format
        )
    }

    /// The recording id a spool path names, if it is one of ours.
    pub fn recording_id_of_path(&self, path: &str) -> Option<RecordingId> {
        let name = path.strip_prefix(self.spool_dir.trim_end_matches('/'))?;
        let name = name.strip_prefix('/')?;
        let stem = name.strip_suffix(&format!(".{}", self.format))?;
        stem.parse().ok()
    }
}

/// Identifies an action whose caller waits for the switch's answer.
pub type Ticket = u64;

/// What `uuid_record` is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordOp {
    /// `start <path> 0 {callrec_id=…,RECORD_MIN_SEC=…}`.
    Start {
        /// Passed as `RECORD_MIN_SEC`.
        min_seconds: u32,
    },
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
            RecordOp::Start { .. } => "start",
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
            RecordOp::Mask => "record_mask",
            RecordOp::Unmask => "record_unmask",
            RecordOp::Pause => "record_pause",
            RecordOp::Resume => "record_resume",
            RecordOp::Stop => "record_stop",
        }
    }
}

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
    /// The API command text, exactly as the switch expects it.
    pub fn api_text(&self) -> String {
        match self.op {
            RecordOp::Start { min_seconds } => format!(
                "uuid_record {} start {} 0 {{callrec_id={},RECORD_MIN_SEC={}}}",
                self.channel, self.path, self.recording, min_seconds
            ),
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

/// Source of new recording ids (UUIDv7 in production; predictable in tests).
pub type IdSource = Box<dyn FnMut() -> RecordingId + Send>;

/// The daemon's in-memory state and every decision taken on it.
pub struct Recorder {
    settings: Settings,
    owners: OwnerIndex,
    table: CallTable,
    next_id: IdSource,
    next_ticket: Ticket,
    event_seq: u64,
    /// Answered legs waiting for their user's own leg ([`Recorder::waits_for_own_leg`]).
    waiting: HashSet<String>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("settings", &self.settings)
            .field("channels", &self.table.len())
            .finish_non_exhaustive()
    }
}

/// Whose side a header puts the user on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Caller,
    Callee,
    Unknown,
}

fn side_of_header(name: &str) -> Side {
    match name.to_ascii_lowercase().as_str() {
        "variable_user_name" | "caller-caller-id-number" => Side::Caller,
        "variable_dialed_user" | "caller-destination-number" => Side::Callee,
        _ => Side::Unknown,
    }
}

impl Recorder {
    /// A recorder with an empty call table.
    pub fn new(settings: Settings, owners: OwnerIndex, next_id: IdSource) -> Recorder {
        Recorder {
            settings,
            owners,
            table: CallTable::new(),
            next_id,
            next_ticket: 1,
            event_seq: 0,
            waiting: HashSet::new(),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The call table.
    pub fn table(&self) -> &CallTable {
        &self.table
    }

    /// The directory in use, indexed for ownership lookups.
    pub fn owners(&self) -> &OwnerIndex {
        &self.owners
    }

    /// Replaces the index (users or sites changed). Calls in progress keep their owners.
    pub fn set_owners(&mut self, owners: OwnerIndex) {
        self.owners = owners;
    }

    /// Every user's calls in progress.
    pub fn live_calls(&self) -> Vec<LiveCall> {
        self.table.live_calls()
    }

    fn ticket(&mut self) -> Ticket {
        let t = self.next_ticket;
        self.next_ticket += 1;
        t
    }

    /// Applies one switch event.
    pub fn on_event(&mut self, ev: &ChannelEvent) -> Vec<Effect> {
        if !ev.kind.is_channel_event() {
            return Vec::new();
        }
        // A late event about a channel that already hung up must not resurrect it; only its
        // recording's RECORD_STOP still matters.
        if self.table.is_gone(&ev.uuid) {
            return match ev.kind {
                EventKind::RecordStop => self.finish_closing(ev),
                _ => Vec::new(),
            };
        }
        self.observe(ev);
        let group = self.table.channel(&ev.uuid).map(|c| c.group);
        let mut effects = self.apply_event(ev);
        if let Some(group) = group
            && !self.waiting.is_empty()
        {
            effects.extend(self.settle_waits(group, ev.at));
        }
        effects
    }

    /// What one event does to the table, and the decisions it calls for.
    fn apply_event(&mut self, ev: &ChannelEvent) -> Vec<Effect> {
        match ev.kind {
            EventKind::Answer => self.on_answer(ev),
            EventKind::Hold => {
                if let Some(ch) = self.table.channel_mut(&ev.uuid) {
                    ch.held_since.get_or_insert(ev.at);
                    ch.last_held_at = Some(ev.at);
                }
                Vec::new()
            }
            EventKind::Unhold => {
                if let Some(ch) = self.table.channel_mut(&ev.uuid) {
                    ch.held_since = None;
                }
                Vec::new()
            }
            EventKind::RecordStart => {
                if let Some(uuid) = self.recording_channel(ev)
                    && let Some(ch) = self.table.channel_mut(&uuid)
                    && let Some(rec) = ch.recording.as_mut()
                {
                    rec.confirmed = true;
                }
                Vec::new()
            }
            EventKind::RecordStop => match self.recording_channel(ev) {
                Some(uuid) => self.finish_recording(&uuid, ev),
                None => self.finish_closing(ev),
            },
            EventKind::HangupComplete => {
                // RECORD_STOP normally comes first (every capture shows it); if the hangup
                // comes first, the recording waits for it, since only RECORD_STOP says
                // whether the switch kept or discarded the file.
                self.table.remove(&ev.uuid, ev.at);
                self.waiting.remove(&ev.uuid);
                Vec::new()
            }
            EventKind::Bridge
            | EventKind::Heartbeat
            | EventKind::BackgroundJob
            | EventKind::Other => Vec::new(),
        }
    }

    /// Records what any channel event says about the channel and its peers.
    fn observe(&mut self, ev: &ChannelEvent) {
        let needs_owner = self.table.channel(&ev.uuid).is_none_or(|ch| !ch.seen);
        let (owner, feature_call) = if needs_owner {
            let feature_call = ev
                .destination
                .as_deref()
                .is_some_and(|d| self.settings.feature_codes.action(d).is_some());
            (self.owner_of(ev), feature_call)
        } else {
            (None, false)
        };
        self.event_seq += 1;
        let seq = self.event_seq;
        let ch = self.table.ensure(&ev.uuid);
        if needs_owner {
            ch.first_seq = seq;
            ch.seen = true;
            ch.owner = owner;
            ch.feature_call = feature_call;
        }
        let peers: Vec<String> = ev.peers().map(str::to_owned).collect();
        for peer in peers {
            self.table.link(&ev.uuid, &peer);
        }
    }

    /// The owner of the leg an event describes (SPEC §3.2), with direction and parties.
    pub fn owner_of(&self, ev: &ChannelEvent) -> Option<Owner> {
        let (index, user) = ev.owner_headers.iter().enumerate().find_map(|(i, value)| {
            value
                .as_deref()
                .and_then(|v| self.owners.find(v))
                .map(|u| (i, u))
        })?;
        let header = self
            .settings
            .owner_headers
            .get(index)
            .map_or("", String::as_str);
        let is_user = |number: Option<&str>| {
            number
                .and_then(|n| self.owners.find(n))
                .is_some_and(|u| UserKey::of(u) == UserKey::of(user))
        };
        let side = match side_of_header(header) {
            Side::Unknown if is_user(ev.caller_number.as_deref()) => Side::Caller,
            Side::Unknown if is_user(ev.destination.as_deref()) => Side::Callee,
            // The switch's view of the leg: an `inbound` leg called the switch, so its
            // party is calling out.
            Side::Unknown => match ev.call_direction.as_deref() {
                Some("inbound") => Side::Caller,
                _ => Side::Callee,
            },
            known => known,
        };
        let other_party = match side {
            Side::Caller => ev.destination.as_deref(),
            _ => ev.caller_number.as_deref(),
        };
        let other_is_user = other_party
            .and_then(|n| self.owners.find(n))
            .is_some_and(|u| UserKey::of(u) != UserKey::of(user));
        let direction = match (side, other_is_user) {
            (_, true) => Direction::Internal,
            (Side::Caller, false) => Direction::Outbound,
            _ => Direction::Inbound,
        };
        let from = ev.caller_number.clone().unwrap_or_default();
        // A leg to a registered phone can carry a registration contact as its destination
        // (`1000-0x56345d2322d0`); the dialled directory user names the party plainly.
        let to = ev
            .dialed_user
            .clone()
            .or_else(|| ev.destination.as_deref().map(dialled_number))
            .unwrap_or_default();
        Some(Owner {
            user: UserKey::of(user),
            direction,
            from,
            to,
            rank: index,
            by_number: !header.to_ascii_lowercase().starts_with("variable_"),
        })
    }

    fn on_answer(&mut self, ev: &ChannelEvent) -> Vec<Effect> {
        let Some(ch) = self.table.channel_mut(&ev.uuid) else {
            return Vec::new();
        };
        if ch.answered_at.is_some() {
            return Vec::new();
        }
        ch.answered_at = Some(ev.at);
        self.on_answer_decision(&ev.uuid, ev.at)
    }

    /// Whether an answered leg is recorded from now on (modes `always`, `always_pausable`).
    fn on_answer_decision(&mut self, uuid: &str, at: Micros) -> Vec<Effect> {
        if !self.records_on_answer(uuid) {
            return Vec::new();
        }
        if self.waits_for_own_leg(uuid) {
            self.waiting.insert(uuid.to_owned());
            return Vec::new();
        }
        if self.earlier_leg_waits(uuid) {
            // That leg is as much the user's and answered first: it is recorded now
            // ([`Recorder::settle_waits`]), this one is not.
            return Vec::new();
        }
        self.start_recording(uuid, at, SegmentSource::Policy, POLICY_ACTOR, None)
    }

    /// Whether the owner's mode records this answered leg, their recording not yet running
    /// on another leg of the call.
    fn records_on_answer(&self, uuid: &str) -> bool {
        let Some(ch) = self.table.channel(uuid) else {
            return false;
        };
        let Some(user) = ch.user().filter(|_| !ch.feature_call) else {
            return false;
        };
        self.owners
            .user(user)
            .is_some_and(|u| u.mode.records_on_answer())
            && self.table.user_recording_in_group(ch.group, user).is_none()
    }

    /// Legs that have waited more than `grace` for their user's own leg are recorded now: the
    /// bound on a wait, should the leg waited for never answer nor hang up (or its events be
    /// lost). The periodic spool scan calls it.
    pub fn expire_waits(&mut self, now: Micros, grace: Micros) -> Vec<Effect> {
        let due: Vec<String> = self
            .waiting
            .iter()
            .filter(|uuid| {
                self.table
                    .channel(uuid)
                    .and_then(|c| c.answered_at)
                    .is_none_or(|answered| answered.saturating_add(grace) <= now)
            })
            .cloned()
            .collect();
        let mut effects = Vec::new();
        for uuid in due {
            self.waiting.remove(&uuid);
            if self.records_on_answer(&uuid) {
                effects.extend(self.start_recording(
                    &uuid,
                    now,
                    SegmentSource::Policy,
                    POLICY_ACTOR,
                    None,
                ));
            }
        }
        effects
    }

    /// Whether a leg of the same user in the same call, matched at least as strongly,
    /// answered before this one and waits.
    fn earlier_leg_waits(&self, uuid: &str) -> bool {
        let Some(ch) = self.table.channel(uuid) else {
            return false;
        };
        let Some(owner) = ch.owner.as_ref() else {
            return false;
        };
        self.table.group_members(ch.group).any(|other| {
            other.uuid != uuid
                && self.waiting.contains(&other.uuid)
                && other
                    .owner
                    .as_ref()
                    .is_some_and(|o| o.user == owner.user && o.rank <= owner.rank)
        })
    }

    /// Which leg of a call carries the user's recording (one per user per call, SPEC §3.2)?
    /// Their own leg: the one a channel variable names them on (`callrec_user`, `user_name`,
    /// `dialed_user`), rather than the other party's leg that only carries their number. In a
    /// bridged call the far leg answers first, and on an outgoing call it carries the user's
    /// number as its caller ID (sofia's B leg of 1001's call in the `sip-hold` capture); the
    /// user's own leg answers a moment later (the same microsecond in the capture). So an
    /// answered leg waits, unrecorded, while its call has a leg that may still prove to be
    /// the user's own:
    ///
    /// - a leg of the same user matched by a stronger header (earlier in `[match] headers`)
    ///   that has not answered yet; or,
    /// - when this leg is the user's only by a number (`Caller-*` headers), a peer leg the
    ///   switch has told nothing about yet (the daemon does not subscribe to
    ///   CHANNEL_CREATE, so the user's own leg is first heard of at its answer).
    ///
    /// The wait ends at the next event that settles it ([`Recorder::settle_waits`]): the own
    /// leg answers and is recorded (the waiting leg then stays unrecorded), or it turns out
    /// to be someone else's, or it hangs up unanswered; either of the last two records the
    /// waiting leg. Should none of that come, the periodic spool scan records it
    /// ([`Recorder::expire_waits`]). A recording already running on a weaker leg is kept: never two
    /// recordings of one user in one call, never a stop and restart.
    fn waits_for_own_leg(&self, uuid: &str) -> bool {
        let Some(ch) = self.table.channel(uuid) else {
            return false;
        };
        let Some(owner) = ch.owner.as_ref() else {
            return false;
        };
        self.table.group_members(ch.group).any(|other| {
            if other.uuid == uuid || other.feature_call || other.answered_at.is_some() {
                return false;
            }
            match &other.owner {
                _ if !other.seen => owner.by_number,
                Some(o) => o.user == owner.user && o.rank < owner.rank,
                None => false,
            }
        })
    }

    /// Re-decides the legs of a call waiting for their user's own leg
    /// ([`Recorder::waits_for_own_leg`]) after an event about the call: a leg whose wait is
    /// over is recorded, unless its user's recording now runs on another leg of the call.
    fn settle_waits(&mut self, group: GroupId, at: Micros) -> Vec<Effect> {
        let waiting: Vec<String> = self
            .table
            .group_members(group)
            .filter(|c| self.waiting.contains(&c.uuid))
            .map(|c| c.uuid.clone())
            .collect();
        for uuid in &waiting {
            self.waiting.remove(uuid);
        }
        let mut effects = Vec::new();
        for uuid in waiting {
            let Some(ch) = self.table.channel(&uuid) else {
                continue;
            };
            let recorded = ch.recording.is_some()
                || ch
                    .user()
                    .is_some_and(|u| self.table.user_recording_in_group(ch.group, u).is_some());
            if recorded {
                continue;
            }
            // Waits again (and is put back) if the call still has an undecided leg.
            effects.extend(self.on_answer_decision(&uuid, at));
        }
        effects
    }

    /// Starts a recording on a leg whose owner is known; returns the effects.
    fn start_recording(
        &mut self,
        uuid: &str,
        at: Micros,
        source: SegmentSource,
        actor: &str,
        ticket: Option<Ticket>,
    ) -> Vec<Effect> {
        let Some(owner) = self.table.channel(uuid).and_then(|c| c.owner.clone()) else {
            return Vec::new();
        };
        // Both callers found the owner in the directory (for their mode) under this lock.
        let Some(user) = self.owners.user(&owner.user).map(|u| u.id) else {
            return Vec::new();
        };
        let (min_seconds, pause_behavior) = self
            .owners
            .site(&owner.user.site)
            .map_or((3, PauseBehavior::Silence), |s| {
                (s.settings.min_seconds, s.settings.pause_behavior)
            });
        let id = (self.next_id)();
        let path = self.settings.spool_path(&id);
        self.table.set_recording(
            uuid,
            Some(LiveRecording {
                id: id.clone(),
                user: owner.user.clone(),
                path: path.clone(),
                started_at: at,
                confirmed: false,
                paused_since: None,
                pause_behavior,
                stop_requested: None,
                changing: false,
            }),
        );
        vec![
            Effect::Store(StoreOp::Create(NewRecording {
                id: id.clone(),
                user,
                call_uuid: uuid.to_owned(),
                direction: owner.direction,
                from: owner.from.clone(),
                to: owner.to.clone(),
                started_at: to_utc(at),
                format: self.settings.format.clone(),
                spool_path: PathBuf::from(&path),
            })),
            Effect::Store(StoreOp::Segment {
                id: id.clone(),
                kind: SegmentKind::Start,
                at,
                source,
                actor: actor.to_owned(),
            }),
            Effect::Command(SwitchCommand {
                channel: uuid.to_owned(),
                op: RecordOp::Start { min_seconds },
                recording: id,
                path,
                attempt: 1,
                ticket,
                at,
                source,
                actor: actor.to_owned(),
                paused_before: None,
            }),
        ]
    }

    /// The channel carrying the recording a RECORD_START/STOP is about, if it is ours.
    fn recording_channel(&self, ev: &ChannelEvent) -> Option<String> {
        if let Some(id) = ev.callrec_id.as_deref().and_then(|s| s.parse().ok())
            && let Some(uuid) = self.table.channel_of_recording(&id)
        {
            return Some(uuid.to_owned());
        }
        let ch = self.table.channel(&ev.uuid)?;
        let rec = ch.recording.as_ref()?;
        (ev.record_path.as_deref() == Some(rec.path.as_str())).then(|| ch.uuid.clone())
    }

    /// RECORD_STOP of a recording whose channel already hung up.
    fn finish_closing(&mut self, ev: &ChannelEvent) -> Vec<Effect> {
        let id = ev
            .callrec_id
            .as_deref()
            .and_then(|s| s.parse::<RecordingId>().ok())
            .filter(|id| self.table.knows_recording(id))
            .or_else(|| {
                ev.record_path
                    .as_deref()
                    .and_then(|p| self.table.closing_by_path(p))
            });
        match id.and_then(|id| self.table.take_closing(&id)) {
            Some(closing) => self.finished(closing.recording, ev),
            None => Vec::new(),
        }
    }

    /// Recordings whose channel hung up more than `grace` before `now` and whose RECORD_STOP
    /// never came (it was lost): the file is closed, so it goes to the store, which keeps it
    /// or reports it missing.
    pub fn expire_closing(&mut self, now: Micros, grace: Micros) -> Vec<Effect> {
        let due: Vec<RecordingId> = self
            .table
            .closing()
            .filter(|c| c.since.saturating_add(grace) <= now)
            .map(|c| c.recording.id.clone())
            .collect();
        let mut effects = Vec::new();
        for id in due {
            if let Some(closing) = self.table.take_closing(&id) {
                let ev = ChannelEvent {
                    kind: EventKind::RecordStop,
                    uuid: closing.channel.clone(),
                    at: closing.since,
                    ..ChannelEvent::empty()
                };
                effects.extend(self.finished(closing.recording, &ev));
            }
        }
        effects
    }

    /// The switch closed a recording's file: stop segment, then ingest or discard.
    fn finish_recording(&mut self, uuid: &str, ev: &ChannelEvent) -> Vec<Effect> {
        let Some(rec) = self.table.channel(uuid).and_then(|c| c.recording.clone()) else {
            return Vec::new();
        };
        self.table.set_recording(uuid, None);
        self.finished(rec, ev)
    }

    fn finished(&mut self, rec: LiveRecording, ev: &ChannelEvent) -> Vec<Effect> {
        let (source, actor) = match &rec.stop_requested {
            Some(req) => (req.source, req.actor.clone()),
            None => (SegmentSource::Policy, POLICY_ACTOR.to_owned()),
        };
        let mut effects = vec![Effect::Store(StoreOp::Segment {
            id: rec.id.clone(),
            kind: SegmentKind::Stop,
            at: ev.at,
            source,
            actor,
        })];
        let too_short = ev.completion_cause.as_deref() == Some("input-too-short");
        if too_short || ev.record_discarded {
            effects.push(Effect::Store(StoreOp::Discard {
                id: rec.id,
                reason: ev
                    .completion_cause
                    .clone()
                    .unwrap_or_else(|| "input-too-short".to_owned()),
                at: ev.at,
                spool_path: rec.path,
            }));
        } else {
            effects.push(Effect::Store(StoreOp::Ingest {
                id: rec.id,
                spool_path: rec.path,
                ended_at: ev.at,
            }));
        }
        effects
    }

    /// Applies the switch's answer to a command.
    pub fn on_command_result(
        &mut self,
        cmd: &SwitchCommand,
        outcome: CommandOutcome,
    ) -> Vec<Effect> {
        let still_ours = self
            .table
            .channel(&cmd.channel)
            .and_then(|c| c.recording.as_ref())
            .is_some_and(|r| r.id == cmd.recording);
        let action = match cmd.op {
            RecordOp::Start { .. } => RecordingAction::Start,
            RecordOp::Mask | RecordOp::Pause => RecordingAction::Pause,
            RecordOp::Unmask | RecordOp::Resume => RecordingAction::Resume,
            RecordOp::Stop => RecordingAction::Stop,
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
                RecordOp::Start { .. } => {}
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
                    RecordOp::Start { .. } | RecordOp::Stop => {}
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

    fn segment(&self, cmd: &SwitchCommand, kind: SegmentKind) -> Effect {
        Effect::Store(StoreOp::Segment {
            id: cmd.recording.clone(),
            kind,
            at: cmd.at,
            source: cmd.source,
            actor: cmd.actor.clone(),
        })
    }

    /// Puts the table back as it was before a command the switch finally refused.
    fn undo(&mut self, cmd: &SwitchCommand, reply: &str) -> Vec<Effect> {
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

    /// Starts, stops, pauses or resumes the recording of a call in progress, under the
    /// owner's mode rules (SPEC §1, §3.4). `call_uuid` is a leg as [`LiveCall`] lists it.
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

/// A channel as `show channels as json` lists it, with what reconciliation fetched about it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SwitchChannel {
    /// `uuid`.
    pub uuid: String,
    /// `callstate` is `ACTIVE`, `HELD` or `UNHELD` (taken off hold, not yet ACTIVE again).
    pub answered: bool,
    /// `callstate` is `HELD`.
    pub held: bool,
    /// `direction` (the switch's view of the leg).
    pub direction: String,
    /// `cid_num`.
    pub cid_num: String,
    /// `dest`.
    pub dest: String,
    /// `call_uuid` when it names another channel.
    pub call_uuid: Option<String>,
}

/// What reconciliation must find out after `show channels`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReconcilePlan {
    /// Tracked channels the switch no longer has: they hung up while we were away.
    pub gone: Vec<String>,
    /// Answered channels we never saw answered: fetch their variables and media bugs.
    pub unknown: Vec<SwitchChannel>,
    /// Recordings whose start the switch never confirmed: check their media bugs.
    pub unconfirmed: Vec<String>,
}

/// A recording still `recording` in the index (from before a restart).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InProgressRow {
    /// Its id.
    pub id: RecordingId,
    /// Its owner, if still in the directory.
    pub user: Option<UserKey>,
    /// The leg it records.
    pub call_uuid: String,
    /// Where the switch writes it.
    pub spool_path: String,
    /// Paused since then, by the index's segments (the last pause has no resume after it).
    pub paused_since: Option<Micros>,
}

impl Recorder {
    /// A counter that moves with every event, so reconciliation can tell the channels it
    /// knew before asking the switch from those that appeared while it asked.
    pub fn event_seq(&self) -> u64 {
        self.event_seq
    }

    /// Compares the switch's channel list with the table (SPEC §3.6). `asked_at_seq` is
    /// [`Recorder::event_seq`] taken before the list was asked for.
    pub fn reconcile_plan(&self, switch: &[SwitchChannel], asked_at_seq: u64) -> ReconcilePlan {
        let listed: std::collections::HashSet<&str> =
            switch.iter().map(|c| c.uuid.as_str()).collect();
        let mut plan = ReconcilePlan::default();
        for ch in self.table.channels() {
            if !ch.seen || ch.first_seq > asked_at_seq {
                continue;
            }
            if !listed.contains(ch.uuid.as_str()) {
                plan.gone.push(ch.uuid.clone());
            } else if ch.recording.as_ref().is_some_and(|r| !r.confirmed) {
                plan.unconfirmed.push(ch.uuid.clone());
            }
        }
        for sc in switch {
            // A channel heard of but never seen answered (its CHANNEL_ANSWER was dropped, or
            // came before a restart) is taken in like an unknown one: otherwise its call goes
            // unrecorded, or its running recording is taken for an orphan and ingested while
            // the switch still writes it.
            let known = self
                .table
                .channel(&sc.uuid)
                .is_some_and(Channel::seen_answered);
            if sc.answered && !known && !self.table.is_gone(&sc.uuid) {
                plan.unknown.push(sc.clone());
            }
        }
        plan.gone.sort();
        plan
    }

    /// A tracked channel hung up unseen: its recording, if any, is closed and goes to the
    /// store (whether the switch kept or discarded the file is settled when it is ingested).
    pub fn channel_gone(&mut self, uuid: &str, at: Micros) -> Vec<Effect> {
        let id = self
            .table
            .channel(uuid)
            .and_then(|c| c.recording.as_ref())
            .map(|r| r.id.clone());
        let group = self.table.channel(uuid).map(|c| c.group);
        self.table.remove(uuid, at);
        self.waiting.remove(uuid);
        let mut effects = match id.and_then(|id| self.table.take_closing(&id)) {
            Some(closing) => {
                let ev = ChannelEvent {
                    kind: EventKind::RecordStop,
                    uuid: uuid.to_owned(),
                    at,
                    ..ChannelEvent::empty()
                };
                self.finished(closing.recording, &ev)
            }
            None => Vec::new(),
        };
        if let Some(group) = group
            && !self.waiting.is_empty()
        {
            effects.extend(self.settle_waits(group, at));
        }
        effects
    }

    /// Takes in a channel that was answered while we were away. `ev` carries what the switch
    /// said about it; `bug_targets` the files its media bugs write; `rows` the recordings the
    /// index holds as still running. A recording of ours is tracked again; an owner whose mode
    /// records every call gets one now.
    pub fn adopt_channel(
        &mut self,
        ev: &ChannelEvent,
        held: bool,
        bug_targets: &[String],
        rows: &[InProgressRow],
    ) -> Vec<Effect> {
        // A channel seen answered was decided by its own events; one only heard of (an event
        // other than its answer) is taken in here.
        if self.table.is_gone(&ev.uuid)
            || self
                .table
                .channel(&ev.uuid)
                .is_some_and(Channel::seen_answered)
        {
            return Vec::new();
        }
        self.observe(ev);
        let Some(ch) = self.table.channel_mut(&ev.uuid) else {
            return Vec::new();
        };
        ch.answered_at.get_or_insert(ev.at);
        if held {
            ch.held_since.get_or_insert(ev.at);
            ch.last_held_at = Some(ev.at);
        }
        let owner = ch.owner.clone();
        let recording = bug_targets.iter().find_map(|t| {
            self.settings
                .recording_id_of_path(t)
                .map(|id| (id, t.clone()))
        });
        if let Some((id, path)) = recording {
            let row = rows.iter().find(|r| r.id == id);
            let user = row
                .and_then(|r| r.user.clone())
                .or_else(|| owner.as_ref().map(|o| o.user.clone()));
            // Paused (masked) before the restart: the switch still holds it so, and a resume
            // must reach it.
            let paused_since = row.and_then(|r| r.paused_since);
            let Some(user) = user else {
                return Vec::new();
            };
            let pause_behavior = self
                .owners
                .site(&user.site)
                .map_or(PauseBehavior::Silence, |s| s.settings.pause_behavior);
            self.table.set_recording(
                &ev.uuid,
                Some(LiveRecording {
                    id,
                    user,
                    path,
                    started_at: ev.at,
                    confirmed: true,
                    paused_since,
                    pause_behavior,
                    stop_requested: None,
                    changing: false,
                }),
            );
            return Vec::new();
        }
        let mut effects = self.on_answer_decision(&ev.uuid, ev.at);
        if let Some(group) = self.table.channel(&ev.uuid).map(|c| c.group)
            && !self.waiting.is_empty()
        {
            effects.extend(self.settle_waits(group, ev.at));
        }
        effects
    }

    /// The switch's media bugs on a channel whose recording start was never confirmed: if
    /// ours is there it runs; if not, the start was lost and is sent again.
    pub fn check_recording(
        &mut self,
        uuid: &str,
        bug_targets: &[String],
        at: Micros,
    ) -> Vec<Effect> {
        let Some(rec) = self.table.channel(uuid).and_then(|c| c.recording.clone()) else {
            return Vec::new();
        };
        if rec.confirmed {
            return Vec::new();
        }
        if bug_targets.contains(&rec.path) {
            if let Some(r) = self
                .table
                .channel_mut(uuid)
                .and_then(|c| c.recording.as_mut())
            {
                r.confirmed = true;
            }
            return Vec::new();
        }
        let min_seconds = self
            .owners
            .site(&rec.user.site)
            .map_or(3, |s| s.settings.min_seconds);
        vec![Effect::Command(SwitchCommand {
            channel: uuid.to_owned(),
            op: RecordOp::Start { min_seconds },
            recording: rec.id,
            path: rec.path,
            attempt: 1,
            ticket: None,
            at,
            source: SegmentSource::Policy,
            actor: POLICY_ACTOR.to_owned(),
            paused_before: None,
        })]
    }

    /// Rows the index holds as `recording` that no live channel carries: the switch closed
    /// their files while we were away, so they go to the store. A row whose own channel is
    /// still up waits, even when its recording could not be taken back (its user left the
    /// directory): the switch is still writing that file.
    pub fn orphaned_rows(&self, rows: &[InProgressRow], at: Micros) -> Vec<Effect> {
        rows.iter()
            .filter(|r| !self.table.knows_recording(&r.id))
            .filter(|r| self.table.channel(&r.call_uuid).is_none_or(|c| !c.seen))
            .map(|r| {
                Effect::Store(StoreOp::Ingest {
                    id: r.id.clone(),
                    spool_path: r.spool_path.clone(),
                    ended_at: at,
                })
            })
            .collect()
    }
}

/// The number a leg's destination names: sofia gives the leg it dials out on the dialled
/// contact with a `-0x<session>` suffix (`1000-0x56345d2322d0` in the `sip-hold` capture).
fn dialled_number(destination: &str) -> String {
    match destination.rsplit_once("-0x") {
        Some((number, session))
            if !number.is_empty() && session.chars().all(|c| c.is_ascii_hexdigit()) =>
        {
            number.to_owned()
        }
        _ => destination.to_owned(),
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

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;

//! Recording decisions: `(state, input) -> effects`, as plain functions.
//!
//! [`Recorder`] owns the call table and the directory (an [`OwnerIndex`]). Each input — a
//! switch event, a command's result, an API or handset action — updates the table and returns
//! the [`Effect`]s to carry out: commands for the switch, operations for the store, and answers
//! for whoever asked. Nothing here does I/O or reads a clock; event timestamps give every
//! time, so tests drive it with events parsed from real captures and check the effects.
//!
//! # Map
//!
//! | module | what |
//! | --- | --- |
//! | this one | [`Recorder`] and its [`Settings`]; events applied to the call table |
//! | `effects` | what a decision asks for: [`Effect`], [`SwitchCommand`], [`StoreOp`], answers |
//! | `ownership` | whose leg an event describes (SPEC §3.2) |
//! | `answer` | a ringing leg armed (`RECORD_ANSWER_REQ`, or `api_on_answer` without media); answer → start recording; legs waiting for their user's own leg |
//! | `finish` | RECORD_STOP and hangup: a recording ends, stored or discarded |
//! | `commands` | the switch's reply to a command: confirm, or undo what was assumed |
//! | `actions` | pause, resume, start and stop asked by the API or the handset |
//! | `feature` | a feature-code call: which call it acts on, what the handset hears |
//! | `reconcile` | after a reconnect or restart: the table against the switch and the index |

mod actions;
mod answer;
mod commands;
mod effects;
mod feature;
mod finish;
mod ownership;
mod reconcile;

use std::collections::HashSet;

use callrec_config::FeatureCodesConfig;
use callrec_model::{LiveCall, RecordingId};

use crate::calls::CallTable;
use crate::directory::OwnerIndex;
use crate::event::{ChannelEvent, EventKind};

pub use actions::confirming;
pub use effects::{
    ARM_VARIABLE, ActionDone, ActionPlan, CommandOutcome, Effect, RecordOp, StoreOp, SwitchCommand,
    Ticket,
};
pub use feature::{FeatureDecision, select_target};
pub use reconcile::{InProgressRow, ReconcilePlan, SwitchChannel};

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
    /// The "resumed" prompt as the switch reads it: played to a call whose recording the
    /// policy resumed (`max_pause_seconds`).
    pub resumed_prompt: String,
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
    /// Legs whose recording, armed through `api_on_answer`, was still unconfirmed at the
    /// last [`Recorder::confirm_armed_starts`].
    unconfirmed_armed: HashSet<String>,
    /// Recordings armed through `api_on_answer` that were taken back on a leg that may be
    /// answering: the switch may still run the variable after the unset and the stop were
    /// sent (both race the channel's own thread), so a RECORD_START of one is stopped, and
    /// its file removed at its RECORD_STOP ([`Recorder::disarmed_event`]). By leg.
    disarmed: std::collections::HashMap<String, crate::calls::LiveRecording>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("settings", &self.settings)
            .field("channels", &self.table.len())
            .finish_non_exhaustive()
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
            unconfirmed_armed: HashSet::new(),
            disarmed: std::collections::HashMap::new(),
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
        let mut effects = self.take_switch_arming(ev);
        effects.extend(self.apply_event(ev));
        if let Some(group) = group
            && !self.waiting.is_empty()
        {
            effects.extend(self.settle_waits(group, ev.at));
        }
        effects
    }

    /// What one event does to the table, and the decisions it calls for.
    fn apply_event(&mut self, ev: &ChannelEvent) -> Vec<Effect> {
        if let Some(effects) = self.disarmed_event(ev) {
            return effects;
        }
        match ev.kind {
            // `uuid_record` only on a leg whose media is already up: it pre-answers a leg
            // that has none (a 183 to a calling phone, which then plays silence instead of
            // its ringback) or is refused on one the switch is calling (measured, README).
            // A leg without media is armed through `api_on_answer` instead.
            EventKind::Progress => self.arm(&ev.uuid, ev.at, ev.early_media),
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
                if let Some(armed) = self.armed_of(ev) {
                    armed.confirmed = true;
                } else if let Some(uuid) = self.recording_channel(ev)
                    && let Some(ch) = self.table.channel_mut(&uuid)
                    && let Some(rec) = ch.recording.as_mut()
                {
                    rec.confirmed = true;
                }
                Vec::new()
            }
            EventKind::RecordStop if self.armed_of(ev).is_some() => {
                self.armed_ended(&ev.uuid, ev.at)
            }
            EventKind::RecordStop => match self.recording_channel(ev) {
                Some(uuid) => self.finish_recording(&uuid, ev),
                None => self.finish_closing(ev),
            },
            EventKind::HangupComplete => {
                // RECORD_STOP normally comes first (every capture shows it); if the hangup
                // comes first, the recording waits for it, since only RECORD_STOP says
                // whether the switch kept or discarded the file.
                let effects = self.armed_ended(&ev.uuid, ev.at);
                self.table.remove(&ev.uuid, ev.at);
                self.waiting.remove(&ev.uuid);
                self.disarmed.remove(&ev.uuid);
                effects
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
            ch.loopback_a = ev.loopback_a;
        }
        let peers: Vec<String> = ev.peers().map(str::to_owned).collect();
        for peer in peers {
            self.table.link(&ev.uuid, &peer);
        }
    }
}

#[cfg(test)]
mod tests;

//! The live call table: every channel the switch told us about, the legs tied into calls,
//! who owns each leg, its hold state and its recording.
//!
//! Second step of the flow: [`crate::recorder::Recorder`] updates this table from each
//! [`crate::event::ChannelEvent`] and reads it to decide. Pure data and bookkeeping: no I/O,
//! no clock.

use std::collections::{HashMap, VecDeque};

use callrec_model::{
    CallRecording, Direction, LiveCall, PauseBehavior, RecordingId, SegmentSource,
};
use chrono::DateTime;

use crate::directory::UserKey;
use crate::event::Micros;

/// Identifies a call: a set of legs tied together (bridge, loopback pair, originator).
pub type GroupId = u64;

/// How many hung-up channel ids are remembered, so that a reconciliation answer that was
/// computed before a hangup cannot bring the channel back.
const GONE_MEMORY: usize = 4096;

/// A leg's owner and what the call looks like from their side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// The user.
    pub user: UserKey,
    /// Direction from the user's side.
    pub direction: Direction,
    /// The calling party, as presented by the switch.
    pub from: String,
    /// The called party, as presented by the switch.
    pub to: String,
    /// How strongly the leg is the user's: the place in `[match] headers` of the header that
    /// named them (0 is the strongest). The user's own leg (`callrec_user`, `user_name`,
    /// `dialed_user`) outranks the leg of the other party that only carries their number.
    pub rank: usize,
    /// The header was a number (`Caller-Caller-ID-Number`, `Caller-Destination-Number`),
    /// which the other party's leg carries too, not a channel variable naming the user.
    pub by_number: bool,
}

/// Who asked for a stop that the switch has not yet confirmed with RECORD_STOP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopRequest {
    /// Where the request came from.
    pub source: SegmentSource,
    /// Who made it.
    pub actor: String,
}

/// A recording the switch is writing (or was asked to write) on one leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveRecording {
    /// The recording's id (also its spool file name).
    pub id: RecordingId,
    /// The user it belongs to.
    pub user: UserKey,
    /// The spool path given to the switch.
    pub path: String,
    /// When the start was decided.
    pub started_at: Micros,
    /// The switch confirmed with RECORD_START (or a media-bug listing).
    pub confirmed: bool,
    /// Paused since this time, if paused.
    pub paused_since: Option<Micros>,
    /// How pauses are carried out for this recording (fixed when it starts).
    pub pause_behavior: PauseBehavior,
    /// A stop was asked for (API) and RECORD_STOP has not yet come.
    pub stop_requested: Option<StopRequest>,
    /// A pause or resume was sent and the switch has not answered it yet: until it does,
    /// `paused_since` is what was asked for, not what the switch does.
    pub changing: bool,
    /// Armed on a leg without media through `api_on_answer` ([`RecordOp::ArmOnAnswer`]):
    /// the switch starts it at the answer, if the variable was set in time.
    ///
    /// [`RecordOp::ArmOnAnswer`]: crate::recorder::RecordOp::ArmOnAnswer
    pub armed_by_variable: bool,
}

impl LiveRecording {
    /// Recording or paused.
    pub fn status(&self) -> CallRecording {
        if self.paused_since.is_some() {
            CallRecording::Paused
        } else {
            CallRecording::Recording
        }
    }
}

/// One leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    /// `Unique-ID`.
    pub uuid: String,
    /// The call it belongs to.
    pub group: GroupId,
    /// An event about this channel itself arrived (otherwise it is only known as a peer).
    pub seen: bool,
    /// The recorder's event counter when it was first seen.
    pub first_seq: u64,
    /// Owner, decided from the first event about this channel.
    pub owner: Option<Owner>,
    /// A feature-code call (*48, *49, *44): never recorded, never a target.
    pub feature_call: bool,
    /// The originated leg of a loopback pair (`variable_loopback_leg=A`).
    pub loopback_a: bool,
    /// When it was answered.
    pub answered_at: Option<Micros>,
    /// On hold since this time.
    pub held_since: Option<Micros>,
    /// Last time it was put on hold.
    pub last_held_at: Option<Micros>,
    /// Its recording, if any.
    pub recording: Option<LiveRecording>,
    /// A recording armed before answer (`RECORD_ANSWER_REQ`): the switch writes nothing to it
    /// until the leg answers, and it has no row. At answer it becomes [`Channel::recording`]
    /// if the leg is the one recorded, or is stopped and its file removed if not.
    pub armed: Option<LiveRecording>,
    /// The leg's events named a recording the shipped dialplan armed
    /// (`variable_callrec_armed`), and the recorder has decided about it.
    pub switch_arming_seen: bool,
}

impl Channel {
    fn placeholder(uuid: &str, group: GroupId) -> Channel {
        Channel {
            uuid: uuid.to_owned(),
            group,
            seen: false,
            first_seq: 0,
            owner: None,
            feature_call: false,
            loopback_a: false,
            answered_at: None,
            held_since: None,
            last_held_at: None,
            recording: None,
            armed: None,
            switch_arming_seen: false,
        }
    }

    /// Its own events said it was answered: its decisions were taken from them, not by
    /// reconciliation.
    pub fn seen_answered(&self) -> bool {
        self.seen && self.answered_at.is_some()
    }

    /// The owning user, if any.
    pub fn user(&self) -> Option<&UserKey> {
        self.owner.as_ref().map(|o| &o.user)
    }
}

/// One user's view of one call in progress, with what the feature codes choose a target
/// by: the call's group (a feature call never acts on its own call) and since when the user
/// holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserCall {
    /// What `GET /calls` lists.
    pub call: LiveCall,
    /// The call's group.
    pub group: GroupId,
    /// When the user's leg went on hold, if it is on hold.
    pub held_since: Option<Micros>,
}

/// A recording whose channel hung up before its RECORD_STOP came: the switch is closing the
/// file, and RECORD_STOP will say whether it kept it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closing {
    /// The recording.
    pub recording: LiveRecording,
    /// The channel it was on.
    pub channel: String,
    /// When the channel hung up.
    pub since: Micros,
}

/// Channels by id and the calls they form.
#[derive(Debug, Default)]
pub struct CallTable {
    channels: HashMap<String, Channel>,
    groups: HashMap<GroupId, Vec<String>>,
    next_group: GroupId,
    by_recording: HashMap<RecordingId, String>,
    closing: HashMap<RecordingId, Closing>,
    gone: HashMap<String, Micros>,
    gone_order: VecDeque<String>,
}

impl CallTable {
    /// An empty table.
    pub fn new() -> CallTable {
        CallTable::default()
    }

    /// A channel by id.
    pub fn channel(&self, uuid: &str) -> Option<&Channel> {
        self.channels.get(uuid)
    }

    /// A channel by id, to change it. Use [`CallTable::set_recording`] for its recording.
    pub fn channel_mut(&mut self, uuid: &str) -> Option<&mut Channel> {
        self.channels.get_mut(uuid)
    }

    /// Number of channels tracked (placeholders included).
    pub fn len(&self) -> usize {
        self.channels.len()
    }

    /// No channel tracked.
    pub fn is_empty(&self) -> bool {
        self.channels.is_empty()
    }

    /// Every channel.
    pub fn channels(&self) -> impl Iterator<Item = &Channel> {
        self.channels.values()
    }

    /// The legs of a call.
    pub fn group_members(&self, group: GroupId) -> impl Iterator<Item = &Channel> {
        self.groups
            .get(&group)
            .into_iter()
            .flatten()
            .filter_map(|uuid| self.channels.get(uuid))
    }

    /// The channel, created (alone in a new call) if unknown.
    pub fn ensure(&mut self, uuid: &str) -> &mut Channel {
        let next_group = &mut self.next_group;
        let groups = &mut self.groups;
        self.channels.entry(uuid.to_owned()).or_insert_with(|| {
            let group = *next_group;
            *next_group += 1;
            groups.insert(group, vec![uuid.to_owned()]);
            Channel::placeholder(uuid, group)
        })
    }

    /// Ties two legs into one call (merging their calls).
    pub fn link(&mut self, a: &str, b: &str) {
        if a == b || self.gone.contains_key(b) || self.gone.contains_key(a) {
            return;
        }
        let ga = self.ensure(a).group;
        let gb = self.ensure(b).group;
        if ga == gb {
            return;
        }
        let (keep, drop) = {
            let la = self.groups.get(&ga).map_or(0, Vec::len);
            let lb = self.groups.get(&gb).map_or(0, Vec::len);
            if la >= lb { (ga, gb) } else { (gb, ga) }
        };
        let moved = self.groups.remove(&drop).unwrap_or_default();
        for uuid in &moved {
            if let Some(ch) = self.channels.get_mut(uuid) {
                ch.group = keep;
            }
        }
        self.groups.entry(keep).or_default().extend(moved);
    }

    /// Sets or clears a channel's recording, keeping the id index right.
    pub fn set_recording(&mut self, uuid: &str, recording: Option<LiveRecording>) {
        let Some(ch) = self.channels.get_mut(uuid) else {
            return;
        };
        if let Some(old) = ch.recording.take() {
            self.by_recording.remove(&old.id);
        }
        if let Some(rec) = recording {
            self.by_recording.insert(rec.id.clone(), uuid.to_owned());
            ch.recording = Some(rec);
        }
    }

    /// The channel a recording is on.
    pub fn channel_of_recording(&self, id: &RecordingId) -> Option<&str> {
        self.by_recording.get(id).map(String::as_str)
    }

    /// Removes a hung-up channel; a recording still on it waits in
    /// [`CallTable::closing`] for its RECORD_STOP. Returns the channel.
    pub fn remove(&mut self, uuid: &str, at: Micros) -> Option<Channel> {
        let mut ch = self.channels.remove(uuid)?;
        if let Some(rec) = ch.recording.take() {
            self.by_recording.remove(&rec.id);
            self.closing.insert(
                rec.id.clone(),
                Closing {
                    recording: rec,
                    channel: uuid.to_owned(),
                    since: at,
                },
            );
        }
        if let Some(members) = self.groups.get_mut(&ch.group) {
            members.retain(|m| m != uuid);
            // Placeholders only ever seen as someone's peer go with the last real leg.
            let only_placeholders = members
                .iter()
                .all(|m| self.channels.get(m).is_none_or(|c| !c.seen));
            if only_placeholders {
                for m in std::mem::take(members) {
                    self.channels.remove(&m);
                }
                self.groups.remove(&ch.group);
            }
        }
        self.remember_gone(uuid, at);
        Some(ch)
    }

    /// Recordings waiting for their RECORD_STOP after a hangup.
    pub fn closing(&self) -> impl Iterator<Item = &Closing> {
        self.closing.values()
    }

    /// Takes a closing recording out (its RECORD_STOP came, or it waited long enough).
    pub fn take_closing(&mut self, id: &RecordingId) -> Option<Closing> {
        self.closing.remove(id)
    }

    /// The closing recording a RECORD_STOP names by path, if any.
    pub fn closing_by_path(&self, path: &str) -> Option<RecordingId> {
        self.closing
            .values()
            .find(|c| c.recording.path == path)
            .map(|c| c.recording.id.clone())
    }

    /// Whether a recording is live or closing (the switch still owes its RECORD_STOP).
    pub fn knows_recording(&self, id: &RecordingId) -> bool {
        self.by_recording.contains_key(id) || self.closing.contains_key(id)
    }

    /// Whether this channel hung up recently.
    pub fn is_gone(&self, uuid: &str) -> bool {
        self.gone.contains_key(uuid)
    }

    fn remember_gone(&mut self, uuid: &str, at: Micros) {
        if self.gone.insert(uuid.to_owned(), at).is_none() {
            self.gone_order.push_back(uuid.to_owned());
        }
        while self.gone_order.len() > GONE_MEMORY {
            if let Some(old) = self.gone_order.pop_front() {
                self.gone.remove(&old);
            }
        }
    }

    /// Whether `user` already has a recording on some leg of this call.
    pub fn user_recording_in_group(&self, group: GroupId, user: &UserKey) -> Option<&Channel> {
        self.group_members(group)
            .find(|ch| ch.recording.as_ref().is_some_and(|r| &r.user == user))
    }

    /// The user's own answered leg of a call: the strongest ownership match, the first
    /// answered among equals.
    pub fn user_leg(&self, group: GroupId, user: &UserKey) -> Option<&Channel> {
        self.group_members(group)
            .filter(|c| c.seen && !c.feature_call && c.answered_at.is_some())
            .filter(|c| c.user() == Some(user))
            .min_by_key(|c| {
                (
                    c.owner.as_ref().map_or(usize::MAX, |o| o.rank),
                    c.answered_at,
                )
            })
    }

    /// Every user's view of every answered call: one entry per user per call, on the leg
    /// that carries the user's recording, or else the user's own leg (the strongest
    /// ownership match), or else their first answered leg.
    pub fn user_calls(&self) -> Vec<UserCall> {
        let mut out = Vec::new();
        for (group, members) in &self.groups {
            let mut users: Vec<(&UserKey, &Channel, Option<Micros>)> = Vec::new();
            for ch in members.iter().filter_map(|m| self.channels.get(m)) {
                let (Some(owner), Some(_)) = (&ch.owner, ch.answered_at) else {
                    continue;
                };
                if ch.feature_call {
                    continue;
                }
                match users.iter_mut().find(|(u, _, _)| *u == &owner.user) {
                    Some(entry) => {
                        entry.2 = entry.2.max(ch.held_since);
                        let key = |c: &Channel| {
                            (
                                c.recording.is_none(),
                                c.owner.as_ref().map_or(usize::MAX, |o| o.rank),
                                c.answered_at,
                            )
                        };
                        let better = key(ch) < key(entry.1);
                        if better {
                            entry.1 = ch;
                        }
                    }
                    None => users.push((&owner.user, ch, ch.held_since)),
                }
            }
            for (user, ch, held_since) in users {
                let Some(owner) = &ch.owner else { continue };
                let answered_at = ch.answered_at.unwrap_or_default();
                out.push((
                    answered_at,
                    UserCall {
                        call: LiveCall {
                            call_uuid: ch.uuid.clone(),
                            site: user.site.clone(),
                            user: user.extension.clone(),
                            direction: owner.direction,
                            from: owner.from.clone(),
                            to: owner.to.clone(),
                            answered_at: DateTime::from_timestamp_micros(answered_at)
                                .unwrap_or(DateTime::UNIX_EPOCH),
                            on_hold: held_since.is_some(),
                            recording: ch
                                .recording
                                .as_ref()
                                .map_or(CallRecording::Off, LiveRecording::status),
                            recording_id: ch.recording.as_ref().map(|r| r.id.clone()),
                        },
                        group: *group,
                        held_since,
                    },
                ));
            }
        }
        out.sort_by(|(a_at, a), (b_at, b)| {
            (a_at, &a.call.call_uuid).cmp(&(b_at, &b.call.call_uuid))
        });
        out.into_iter().map(|(_, call)| call).collect()
    }

    /// What `GET /calls` lists: [`CallTable::user_calls`] without the target-choosing parts.
    pub fn live_calls(&self) -> Vec<LiveCall> {
        self.user_calls().into_iter().map(|c| c.call).collect()
    }

    /// Every live recording, with its channel.
    pub fn recordings(&self) -> impl Iterator<Item = (&Channel, &LiveRecording)> {
        self.channels
            .values()
            .filter_map(|ch| ch.recording.as_ref().map(|r| (ch, r)))
    }
}

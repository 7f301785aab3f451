//! After a reconnect or a restart (SPEC §3.6): the call table against the switch's channel
//! list, channels adopted, recordings checked, and the index's rows no call accounts for.

use callrec_model::{PauseBehavior, RecordingId, SegmentSource};

use super::{Effect, POLICY_ACTOR, RecordOp, Recorder, StoreOp, SwitchCommand};
use crate::calls::{Channel, LiveRecording};
use crate::directory::UserKey;
use crate::event::{ChannelEvent, EventKind, Micros};

/// A channel as `show channels as json` lists it, with what reconciliation fetched about it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SwitchChannel {
    /// `uuid`.
    pub uuid: String,
    /// `callstate` is `ACTIVE`, `HELD` or `UNHELD` (taken off hold, not yet ACTIVE again).
    pub answered: bool,
    /// `callstate` is `HELD`.
    pub held: bool,
    /// `callstate` is `EARLY`: ringing with media up (pre-answered), where a recording may be
    /// armed without changing what the caller hears.
    pub early_media: bool,
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
    /// Ringing channels we never heard of: fetch their variables and media bugs, so one
    /// armed before a restart is known again (not armed twice, not recorded twice at
    /// answer), and one whose owner records every call is armed now.
    pub ringing: Vec<SwitchChannel>,
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
            let heard = self.table.channel(&sc.uuid).is_some_and(|c| c.seen);
            if !sc.answered && !heard && !self.table.is_gone(&sc.uuid) {
                plan.ringing.push(sc.clone());
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
        let armed = self.armed_ended(uuid, at);
        self.table.remove(uuid, at);
        self.waiting.remove(uuid);
        let mut effects = armed;
        effects.extend(match id.and_then(|id| self.table.take_closing(&id)) {
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
        });
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
            let live = LiveRecording {
                id,
                user,
                path,
                started_at: ev.at,
                confirmed: true,
                paused_since,
                pause_behavior,
                stop_requested: None,
                changing: false,
                armed_by_variable: false,
            };
            // No row: it was armed before the restart and the switch started it at answer
            // while we were away. It is indexed now, or its file would end as nobody's.
            let effects = match (row, owner) {
                (None, Some(owner)) => match self.owners.user(&owner.user).map(|u| u.id) {
                    Some(user_id) => self
                        .indexed(
                            &ev.uuid,
                            &live,
                            user_id,
                            &owner,
                            SegmentSource::Policy,
                            POLICY_ACTOR,
                        )
                        .into(),
                    None => Vec::new(),
                },
                _ => Vec::new(),
            };
            // Armed while it rang and its answer missed (the connection dropped): the file
            // found is the armed one, now the recording, which ends once (RECORD_STOP), not
            // also as an armed recording ending. An armed one that is not this file is not
            // wanted.
            let mut effects = effects;
            if self
                .table
                .channel(&ev.uuid)
                .and_then(|c| c.armed.as_ref())
                .is_some_and(|a| a.path == live.path)
            {
                if let Some(ch) = self.table.channel_mut(&ev.uuid) {
                    ch.armed = None;
                }
            } else {
                effects.extend(self.disarm(&ev.uuid));
            }
            self.table.set_recording(&ev.uuid, Some(live));
            return effects;
        }
        let mut effects = self.on_answer_decision(&ev.uuid, ev.at);
        if let Some(group) = self.table.channel(&ev.uuid).map(|c| c.group)
            && !self.waiting.is_empty()
        {
            effects.extend(self.settle_waits(group, ev.at));
        }
        effects
    }

    /// Takes in a channel still ringing that we never heard of (it rang while we were
    /// away). `ev` carries what the switch said about it; `bug_targets` the files its media
    /// bugs write. A recording of ours armed on it before a restart is known again as armed,
    /// so its answer indexes it instead of starting a second one; otherwise the leg is armed
    /// now if its owner's mode records every call (one armed through `api_on_answer` by the
    /// previous process has no media bug yet: arming it again replaces its variable).
    pub fn adopt_ringing(&mut self, ev: &ChannelEvent, bug_targets: &[String]) -> Vec<Effect> {
        if self.table.is_gone(&ev.uuid) || self.table.channel(&ev.uuid).is_some_and(|c| c.seen) {
            return Vec::new();
        }
        self.observe(ev);
        let ours = bug_targets.iter().find_map(|t| {
            self.settings
                .recording_id_of_path(t)
                .map(|id| (id, t.clone()))
        });
        let Some((id, path)) = ours else {
            return self.arm(&ev.uuid, ev.at, ev.early_media);
        };
        let Some(user) = self
            .table
            .channel(&ev.uuid)
            .and_then(|c| c.owner.as_ref())
            .map(|o| o.user.clone())
        else {
            // Nobody's leg now (its owner left the directory): nothing would index what the
            // switch writes at answer, so it is stopped and its file removed.
            let stop = SwitchCommand {
                channel: ev.uuid.clone(),
                op: RecordOp::Stop,
                recording: id.clone(),
                path: path.clone(),
                attempt: 1,
                ticket: None,
                at: ev.at,
                source: SegmentSource::Policy,
                actor: POLICY_ACTOR.to_owned(),
                paused_before: None,
            };
            return vec![
                Effect::Command(stop),
                Effect::Store(StoreOp::Disarmed {
                    id,
                    spool_path: path,
                }),
            ];
        };
        let (_, pause_behavior) = self.site_rules(&user.site);
        if let Some(ch) = self.table.channel_mut(&ev.uuid) {
            ch.armed = Some(LiveRecording {
                id,
                user,
                path,
                started_at: ev.at,
                confirmed: true,
                paused_since: None,
                pause_behavior,
                stop_requested: None,
                changing: false,
                armed_by_variable: false,
            });
        }
        Vec::new()
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
        let (min_seconds, _) = self.site_rules(&rec.user.site);
        let op = RecordOp::Start {
            min_seconds,
            before_answer: false,
        };
        vec![Effect::Command(SwitchCommand::policy(uuid, op, &rec, at))]
    }

    /// Whether a leg the table knows records, closes or has armed the recording `id`.
    pub fn holds_recording(&self, id: &RecordingId) -> bool {
        self.table.knows_recording(id)
            || self
                .table
                .channels()
                .any(|c| c.armed.as_ref().is_some_and(|a| &a.id == id))
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

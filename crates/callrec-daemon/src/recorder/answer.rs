//! Answer → start recording: whose mode says record, which leg of an internal call records,
//! and legs that wait for their user's own leg before deciding.
//!
//! A leg heard ringing (CHANNEL_PROGRESS) whose owner's mode records on answer is armed
//! first (SPEC §3.3), so the switch writes from the leg's first answered frame in the
//! channel's own thread, however long CHANNEL_ANSWER then takes to reach callrec:
//!
//! - a leg whose media is up (early media, a 183): `uuid_record … start` with
//!   `RECORD_ANSWER_REQ=true`;
//! - a leg that rings without media (a 180, a phone calling a phone): `uuid_record` would
//!   ask for media and pre-answer it, so the command is put on the channel instead, in the
//!   variable `api_on_answer_callrec`, which the switch runs as the leg answers
//!   ([`RecordOp::ArmOnAnswer`]). Should the variable land after the answer (the switch
//!   saturated), it never runs: a recording so armed that is still unconfirmed (no
//!   RECORD_START) one to two seconds after its answer is started the usual way
//!   ([`Recorder::confirm_armed_starts`]). Had the switch started it after all, that start is
//!   harmless: `uuid_record … start` on a path the leg already records answers `+OK` and
//!   adds nothing ("Already recording", `switch_ivr_record_session_event`).
//!
//! With the shipped `dialplan/callrec-arm.xml` the switch arms the leg that runs the dialplan
//! itself, from the users callrec publishes ([`crate::arming`]); the leg's events then carry
//! `variable_callrec_armed`, and [`Recorder::take_switch_arming`] takes that arming as the
//! leg's armed recording, or takes it back, by the same rules ([`Recorder::would_arm`]).
//!
//! Nothing is indexed for an armed recording. At
//! answer the usual decision runs; if it records the armed leg, the armed recording becomes
//! the recording (its row is created then, no second command), and any armed leg it does not
//! record is stopped and its file removed. A leg that answers without ringing first is
//! started at answer, as before. After a restart, reconciliation knows a leg armed by the
//! previous process again from its media bugs (`Recorder::adopt_ringing`), so its answer
//! indexes that recording instead of starting a second one.

use std::collections::HashSet;
use std::path::PathBuf;

use callrec_model::{NewRecording, PauseBehavior, SegmentKind, SegmentSource, UserId, to_utc};

use super::{Effect, POLICY_ACTOR, RecordOp, Recorder, StoreOp, SwitchCommand, Ticket};
use crate::calls::{GroupId, LiveRecording, Owner};
use crate::directory::UserKey;
use crate::event::{ChannelEvent, EventKind, Micros};

impl Recorder {
    pub(super) fn on_answer(&mut self, ev: &ChannelEvent) -> Vec<Effect> {
        let Some(ch) = self.table.channel_mut(&ev.uuid) else {
            return Vec::new();
        };
        if ch.answered_at.is_some() {
            return Vec::new();
        }
        ch.answered_at = Some(ev.at);
        self.on_answer_decision(&ev.uuid, ev.at)
    }

    /// The user whose recording a leg not yet answered would carry if armed now: its owner's
    /// mode records on answer and the leg is theirs by a channel variable (their own leg,
    /// not one that only carries their number), no leg of the call already carries their
    /// recording or its arming, and the leg is neither a feature-code call nor the
    /// originated leg of a loopback pair. `None`: not armed.
    fn would_arm(&self, uuid: &str) -> Option<UserKey> {
        let ch = self.table.channel(uuid)?;
        // The originated leg of a loopback pair is not armed: a recording on it ends about
        // 0.5 s before the call (mod_loopback drops the frames it still queues at hangup),
        // one on its B leg does not (measured on the real switch, README). When the B leg is
        // the user's too, it is armed and recorded instead; when it is not, the A leg is
        // started at answer.
        if ch.answered_at.is_some()
            || ch.recording.is_some()
            || ch.armed.is_some()
            || ch.feature_call
            || ch.loopback_a
        {
            return None;
        }
        let user = ch.owner.as_ref().filter(|o| !o.by_number)?.user.clone();
        let taken = self
            .table
            .group_members(ch.group)
            .any(|c| c.user() == Some(&user) && (c.armed.is_some() || c.recording.is_some()));
        let records = self
            .owners
            .user(&user)
            .is_some_and(|u| u.mode.records_on_answer());
        (records && !taken).then_some(user)
    }

    /// Arms a recording on a leg heard ringing if [`Recorder::would_arm`] says so; one armed
    /// leg per user per call. `media_up`: the leg has early media (`RECORD_ANSWER_REQ`);
    /// otherwise the arming is the `api_on_answer_callrec` variable.
    pub(super) fn arm(&mut self, uuid: &str, at: Micros, media_up: bool) -> Vec<Effect> {
        let Some(user) = self.would_arm(uuid) else {
            return Vec::new();
        };
        let (min_seconds, pause_behavior) = self.site_rules(&user.site);
        let id = (self.next_id)();
        let armed = LiveRecording {
            path: self.settings.spool_path(&id),
            id,
            user,
            started_at: at,
            confirmed: false,
            paused_since: None,
            pause_behavior,
            stop_requested: None,
            changing: false,
            armed_by_variable: !media_up,
        };
        let op = if media_up {
            RecordOp::Start {
                min_seconds,
                before_answer: true,
            }
        } else {
            RecordOp::ArmOnAnswer { min_seconds }
        };
        let cmd = SwitchCommand::policy(uuid, op, &armed, at);
        if let Some(ch) = self.table.channel_mut(uuid) {
            ch.armed = Some(armed);
        }
        vec![Effect::Command(cmd)]
    }

    /// A leg the shipped dialplan armed itself (`variable_callrec_armed`,
    /// `dialplan/callrec-arm.xml`), heard of for the first time: the arming is taken as the
    /// leg's armed recording, exactly as if callrec had armed it through `api_on_answer`, when
    /// callrec's own rules ([`Recorder::would_arm`]) arm this leg; otherwise it is taken back
    /// at once (the variable unset, a stop in case the leg already answered, the file
    /// removed). A leg already answered when first heard of keeps an arming the switch has
    /// run: the answer's decision ([`Recorder::on_answer_decision`]) then indexes it or takes
    /// it back. An arming whose file is not in callrec's spool directory, or that the leg was
    /// already known to carry, is not callrec's to take.
    pub(super) fn take_switch_arming(&mut self, ev: &ChannelEvent) -> Vec<Effect> {
        let Some(path) = ev.switch_armed.as_deref() else {
            return Vec::new();
        };
        let Some(ch) = self.table.channel(&ev.uuid) else {
            return Vec::new();
        };
        if ch.switch_arming_seen {
            return Vec::new();
        }
        let answered = ch.answered_at.is_some() || ev.kind == EventKind::Answer;
        let known = ch.armed.is_some() || ch.recording.is_some();
        let owner = ch.owner.as_ref().map(|o| o.user.clone());
        if let Some(ch) = self.table.channel_mut(&ev.uuid) {
            ch.switch_arming_seen = true;
        }
        let Some(id) = self.settings.recording_id_of_path(path) else {
            tracing::warn!(channel = %ev.uuid, path, "the dialplan armed a file outside callrec's spool; left alone");
            return Vec::new();
        };
        if known {
            return Vec::new();
        }
        let user = if answered {
            owner
        } else {
            self.would_arm(&ev.uuid)
        };
        let (_, pause_behavior) = user
            .as_ref()
            .map_or((0, PauseBehavior::Silence), |u| self.site_rules(&u.site));
        let armed = LiveRecording {
            id,
            // Only read when the arming is kept; a leg nobody owns is disarmed just below.
            user: user.clone().unwrap_or_else(|| UserKey {
                site: String::new(),
                extension: String::new(),
            }),
            path: path.to_owned(),
            started_at: ev.at,
            confirmed: false,
            paused_since: None,
            pause_behavior,
            stop_requested: None,
            changing: false,
            armed_by_variable: true,
        };
        if let Some(ch) = self.table.channel_mut(&ev.uuid) {
            ch.armed = Some(armed);
        }
        if user.is_some() {
            return Vec::new();
        }
        tracing::info!(channel = %ev.uuid, "the dialplan armed a leg callrec does not record; taken back");
        self.disarm(&ev.uuid)
    }

    /// The armed recording a RECORD_START/STOP is about, if it is one.
    pub(super) fn armed_of(&mut self, ev: &ChannelEvent) -> Option<&mut LiveRecording> {
        let id = ev.callrec_id.as_deref();
        let path = ev.record_path.as_deref();
        self.table
            .channel_mut(&ev.uuid)?
            .armed
            .as_mut()
            .filter(|r| id == Some(r.id.as_str()) || path == Some(r.path.as_str()))
    }

    /// A leg's armed recording that ends before its answer was seen (see
    /// [`StoreOp::ArmedEnded`]): the store writer keeps the file if the switch wrote audio.
    pub(super) fn armed_ended(&mut self, uuid: &str, at: Micros) -> Vec<Effect> {
        let Some(ch) = self.table.channel_mut(uuid) else {
            return Vec::new();
        };
        let Some(armed) = ch.armed.take() else {
            return Vec::new();
        };
        let owner = ch.owner.clone();
        let user = owner
            .as_ref()
            .and_then(|o| self.owners.user(&o.user))
            .map(|u| u.id);
        match (owner, user) {
            (Some(owner), Some(user)) => vec![Effect::Store(StoreOp::ArmedEnded {
                new: NewRecording {
                    id: armed.id,
                    user,
                    call_uuid: uuid.to_owned(),
                    direction: owner.direction,
                    from: owner.from,
                    to: owner.to,
                    started_at: to_utc(armed.started_at),
                    format: self.settings.format.clone(),
                    spool_path: PathBuf::from(&armed.path),
                },
                ended_at: at,
            })],
            // Nobody's leg any more: nothing could index it.
            _ => vec![Effect::Store(StoreOp::Disarmed {
                id: armed.id,
                spool_path: armed.path,
            })],
        }
    }

    /// Takes back a leg's armed recording, if it has one, because another leg carries the
    /// recording or the mode no longer records: stopped on the switch (it may be writing),
    /// its file removed, never indexed. One armed through `api_on_answer` also has its
    /// variable unset first, in case the leg has not answered yet.
    pub(super) fn disarm(&mut self, uuid: &str) -> Vec<Effect> {
        let Some(armed) = self.table.channel_mut(uuid).and_then(|c| c.armed.take()) else {
            return Vec::new();
        };
        let mut effects = Vec::new();
        if armed.armed_by_variable {
            effects.push(Effect::Command(SwitchCommand::policy(
                uuid,
                RecordOp::Unarm,
                &armed,
                armed.started_at,
            )));
        }
        effects.push(Effect::Command(SwitchCommand::policy(
            uuid,
            RecordOp::Stop,
            &armed,
            armed.started_at,
        )));
        if armed.armed_by_variable {
            self.disarmed.insert(uuid.to_owned(), armed.clone());
        }
        effects.push(Effect::Store(StoreOp::Disarmed {
            id: armed.id,
            spool_path: armed.path,
        }));
        effects
    }

    /// A RECORD_START or RECORD_STOP of a recording taken back by [`Recorder::disarm`]
    /// (`None` for any other event): the switch ran `api_on_answer` after the unset and the
    /// stop were sent, so it is stopped again now; at its RECORD_STOP the file it wrote is
    /// removed, never indexed.
    pub(super) fn disarmed_event(&mut self, ev: &ChannelEvent) -> Option<Vec<Effect>> {
        if !matches!(ev.kind, EventKind::RecordStart | EventKind::RecordStop) {
            return None;
        }
        let rec = self.disarmed.get(&ev.uuid)?;
        let ours = ev.callrec_id.as_deref() == Some(rec.id.as_str())
            || ev.record_path.as_deref() == Some(rec.path.as_str());
        if !ours {
            return None;
        }
        if ev.kind == EventKind::RecordStart {
            tracing::info!(channel = %ev.uuid, "a recording taken back before the answer started anyway; stopping it");
            let stop = SwitchCommand::policy(&ev.uuid, RecordOp::Stop, rec, ev.at);
            return Some(vec![Effect::Command(stop)]);
        }
        let rec = self.disarmed.remove(&ev.uuid)?;
        Some(vec![Effect::Store(StoreOp::Disarmed {
            id: rec.id,
            spool_path: rec.path,
        })])
    }

    /// Recordings armed through `api_on_answer` that the switch has not confirmed (no
    /// RECORD_START) at two calls in a row, their leg answered, are started now with
    /// `uuid_record`: the variable landed after the answer, or the start failed. The daemon
    /// calls it every second, so such a start comes one to two seconds after the answer;
    /// RECORD_START follows an answer within a frame when the switch ran the variable.
    pub fn confirm_armed_starts(&mut self, at: Micros) -> Vec<Effect> {
        let unconfirmed: HashSet<String> = self
            .table
            .channels()
            .filter(|c| c.answered_at.is_some())
            .filter(|c| {
                c.recording
                    .as_ref()
                    .is_some_and(|r| r.armed_by_variable && !r.confirmed)
            })
            .map(|c| c.uuid.clone())
            .collect();
        let due: Vec<String> = unconfirmed
            .intersection(&self.unconfirmed_armed)
            .cloned()
            .collect();
        self.unconfirmed_armed = unconfirmed;
        for uuid in &due {
            self.unconfirmed_armed.remove(uuid);
        }
        let mut effects = Vec::new();
        for uuid in due {
            let Some(rec) = self
                .table
                .channel_mut(&uuid)
                .and_then(|c| c.recording.as_mut())
            else {
                continue;
            };
            rec.armed_by_variable = false;
            let rec = rec.clone();
            let (min_seconds, _) = self.site_rules(&rec.user.site);
            let op = RecordOp::Start {
                min_seconds,
                before_answer: false,
            };
            effects.push(Effect::Command(SwitchCommand::policy(&uuid, op, &rec, at)));
        }
        effects
    }

    /// `min_seconds` and the pause behaviour of a site (SPEC §1's defaults if it is gone).
    pub(super) fn site_rules(&self, site: &str) -> (u32, PauseBehavior) {
        self.owners
            .site(site)
            .map_or((3, PauseBehavior::Silence), |s| {
                (s.settings.min_seconds, s.settings.pause_behavior)
            })
    }

    /// Whether an answered leg is recorded from now on (modes `always`, `always_pausable`).
    pub(super) fn on_answer_decision(&mut self, uuid: &str, at: Micros) -> Vec<Effect> {
        if !self.records_on_answer(uuid) {
            // An armed recording on this leg, if any, is not wanted (the mode changed, or
            // the user's recording runs on another leg): the leg now writes to it.
            return self.disarm(uuid);
        }
        if self.waits_for_own_leg(uuid) {
            self.waiting.insert(uuid.to_owned());
            return Vec::new();
        }
        if self.earlier_leg_waits(uuid) {
            // That leg is as much the user's and answered first: it is recorded now
            // ([`Recorder::settle_waits`]), this one is not.
            return self.disarm(uuid);
        }
        self.start_recording(uuid, at, SegmentSource::Policy, POLICY_ACTOR, None)
    }

    /// Whether the owner's mode records this answered leg, their recording not yet running
    /// on another leg of the call.
    pub(super) fn records_on_answer(&self, uuid: &str) -> bool {
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
    /// answered before this one and waits. A loopback A leg does not count: it waits only so
    /// that its B leg, which loses nothing at the end, takes the recording.
    pub(super) fn earlier_leg_waits(&self, uuid: &str) -> bool {
        let Some(ch) = self.table.channel(uuid) else {
            return false;
        };
        if ch.armed.is_some() {
            // Armed while ringing, it records from its own answer: the leg that waited for
            // it (`waits_for_own_leg`) is not recorded.
            return false;
        }
        let Some(owner) = ch.owner.as_ref() else {
            return false;
        };
        self.table.group_members(ch.group).any(|other| {
            other.uuid != uuid
                && self.waiting.contains(&other.uuid)
                && !other.loopback_a
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
    ///   that has not answered yet;
    /// - a leg of the same user matched at least as strongly that was armed while ringing
    ///   (the loopback B leg, say, whose A leg answers first): it records from its own
    ///   answer, a round trip earlier than a start sent now; or,
    /// - when this leg is the user's only by a number (`Caller-*` headers), a peer leg the
    ///   switch has told nothing about yet (the daemon does not subscribe to
    ///   CHANNEL_CREATE, so the user's own leg may first be heard of at its answer);
    /// - when this leg is the originated (A) leg of a loopback pair, its B leg not heard of
    ///   yet: a 9999-style extension answers without ringing, so the B leg's first event is
    ///   its CHANNEL_ANSWER, which can reach callrec after the A leg's (the `record`
    ///   capture's order). A recording on the A leg ends about 0.5 s early (see
    ///   [`Recorder::would_arm`]); the B leg, if it is the user's too, takes the recording.
    ///
    /// The wait ends at the next event that settles it ([`Recorder::settle_waits`]): the own
    /// leg answers and is recorded (the waiting leg then stays unrecorded), or it turns out
    /// to be someone else's, or it hangs up unanswered; either of the last two records the
    /// waiting leg. Should none of that come, the periodic spool scan records it
    /// ([`Recorder::expire_waits`]). A recording already running on a weaker leg is kept: never two
    /// recordings of one user in one call, never a stop and restart.
    pub(super) fn waits_for_own_leg(&self, uuid: &str) -> bool {
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
                _ if !other.seen => owner.by_number || ch.loopback_a,
                Some(o) => {
                    o.user == owner.user
                        && (o.rank < owner.rank || (other.armed.is_some() && o.rank <= owner.rank))
                }
                None => false,
            }
        })
    }

    /// Re-decides the legs of a call waiting for their user's own leg
    /// ([`Recorder::waits_for_own_leg`]) after an event about the call: a leg whose wait is
    /// over is recorded, unless its user's recording now runs on another leg of the call.
    pub(super) fn settle_waits(&mut self, group: GroupId, at: Micros) -> Vec<Effect> {
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
    pub(super) fn start_recording(
        &mut self,
        uuid: &str,
        at: Micros,
        source: SegmentSource,
        actor: &str,
        ticket: Option<Ticket>,
    ) -> Vec<Effect> {
        let Some((owner, group, answered_at)) = self
            .table
            .channel(uuid)
            .and_then(|c| Some((c.owner.clone()?, c.group, c.answered_at)))
        else {
            return Vec::new();
        };
        // Both callers found the owner in the directory (for their mode) under this lock.
        let Some(user) = self.owners.user(&owner.user).map(|u| u.id) else {
            return Vec::new();
        };
        // The user's recording armed on another leg of the call is not this one.
        let others: Vec<String> = self
            .table
            .group_members(group)
            .filter(|c| c.uuid != uuid && c.user() == Some(&owner.user) && c.armed.is_some())
            .map(|c| c.uuid.clone())
            .collect();
        let mut effects: Vec<Effect> = others.iter().flat_map(|o| self.disarm(o)).collect();
        if let Some(mut armed) = self.table.channel_mut(uuid).and_then(|c| c.armed.take()) {
            // Armed on this leg: the switch has written since the leg answered. The row and
            // the start segment say so; no command is needed.
            armed.started_at = answered_at.unwrap_or(at);
            effects.extend(self.indexed(uuid, &armed, user, &owner, source, actor));
            self.table.set_recording(uuid, Some(armed));
            return effects;
        }
        let (min_seconds, pause_behavior) = self.site_rules(&owner.user.site);
        let id = (self.next_id)();
        let rec = LiveRecording {
            id: id.clone(),
            user: owner.user.clone(),
            path: self.settings.spool_path(&id),
            started_at: at,
            confirmed: false,
            paused_since: None,
            pause_behavior,
            stop_requested: None,
            changing: false,
            armed_by_variable: false,
        };
        effects.extend(self.indexed(uuid, &rec, user, &owner, source, actor));
        effects.push(Effect::Command(SwitchCommand {
            channel: uuid.to_owned(),
            op: RecordOp::Start {
                min_seconds,
                before_answer: false,
            },
            recording: id,
            path: rec.path.clone(),
            attempt: 1,
            ticket,
            at,
            source,
            actor: actor.to_owned(),
            paused_before: None,
        }));
        self.table.set_recording(uuid, Some(rec));
        effects
    }

    /// The row and the start segment of a recording now running on `uuid`.
    pub(super) fn indexed(
        &self,
        uuid: &str,
        rec: &LiveRecording,
        user: UserId,
        owner: &Owner,
        source: SegmentSource,
        actor: &str,
    ) -> [Effect; 2] {
        [
            Effect::Store(StoreOp::Create(NewRecording {
                id: rec.id.clone(),
                user,
                call_uuid: uuid.to_owned(),
                direction: owner.direction,
                from: owner.from.clone(),
                to: owner.to.clone(),
                started_at: to_utc(rec.started_at),
                format: self.settings.format.clone(),
                spool_path: PathBuf::from(&rec.path),
            })),
            Effect::Store(StoreOp::Segment {
                id: rec.id.clone(),
                kind: SegmentKind::Start,
                at: rec.started_at,
                source,
                actor: actor.to_owned(),
            }),
        ]
    }
}

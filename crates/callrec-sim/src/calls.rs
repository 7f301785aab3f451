//! Call flows: how the captured segments are strung together for a SIP call between two
//! phones, a loopback call placed with `originate`, holds, hangups, shutdown.
//!
//! The order of events *within* each channel follows the captures. Between the two legs of
//! a call the real switch interleaves events by thread scheduling (the captures themselves
//! disagree from run to run); the flows here pick the interleaving of the `record` and
//! `sip-hold` captures.

use std::time::Duration;

use tokio::sync::oneshot;

use crate::channel::{Channel, Extras, LegKind};
use crate::clock::{Micros, micros};
use crate::scripts::{LegId, library};
use crate::switch::Switch;

/// One party of a scripted call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Party {
    /// Extension or number as the switch sees it (`1001`, `442920123123`).
    pub number: String,
    /// Caller-ID name, if any.
    pub name: Option<String>,
    /// Whether this party is a registered directory user (a phone on the switch). A
    /// directory user calling sets `variable_user_name`; a call ringing one sets
    /// `variable_dialed_user`.
    pub directory_user: bool,
}

impl Party {
    /// A phone registered as directory user `extension`.
    pub fn user(extension: &str) -> Party {
        Party {
            number: extension.to_string(),
            name: None,
            directory_user: true,
        }
    }

    /// Someone outside the switch (a PSTN number through a gateway).
    pub fn external(number: &str) -> Party {
        Party {
            number: number.to_string(),
            name: None,
            directory_user: false,
        }
    }

    /// Sets the caller-ID name.
    pub fn named(mut self, name: &str) -> Party {
        self.name = Some(name.to_string());
        self
    }
}

/// Which end of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The party that dialled.
    Caller,
    /// The party that was called.
    Callee,
}

/// How the switch connects the parties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallKind {
    /// Two SIP legs bridged by the dialplan, like the `sip-hold` capture.
    Bridged,
    /// `originate loopback/<extension>`: an A leg parked and a B leg running the extension
    /// (`9999` plays a tone, `9998` parks in silence), like the `record` capture.
    Loopback {
        /// The extension the B leg runs.
        extension: String,
    },
}

/// A hold placed by one side, relative to the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldSpec {
    /// Who presses hold (their leg gets CHANNEL_HOLD).
    pub side: Side,
    /// How long after the answer.
    pub at: Duration,
    /// How long the hold lasts; `None` keeps the call held until it ends.
    pub duration: Option<Duration>,
}

/// A call to place with [`crate::Simulator::place_call`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallSpec {
    /// Who calls.
    pub caller: Party,
    /// Who is called.
    pub callee: Party,
    /// Bridged SIP legs or a loopback pair.
    pub kind: CallKind,
    /// Exported as `callrec_user` on the caller's leg.
    pub callrec_user: Option<String>,
    /// Extra variables set on the caller's leg when it is created.
    pub variables: Vec<(String, String)>,
    /// Ring time before the callee answers (or before the caller gives up).
    pub ring: Duration,
    /// Whether the callee answers.
    pub answer: bool,
    /// Whether the far end sends early media while it rings (a 183 with SDP, as carriers'
    /// gateways do): the caller's leg is pre-answered (CHANNEL_PROGRESS_MEDIA) when the
    /// callee starts ringing.
    pub early_media: bool,
    /// How long the call talks after the answer; `None` keeps it up until
    /// [`crate::Simulator::hangup`].
    pub talk: Option<Duration>,
    /// Who hangs up when `talk` runs out.
    pub hangup_by: Side,
    /// Scripted holds.
    pub holds: Vec<HoldSpec>,
}

impl CallSpec {
    /// A call from `caller` to `callee`, bridged, ringing 2 s, answered, up until hung up.
    pub fn between(caller: Party, callee: Party) -> CallSpec {
        CallSpec {
            caller,
            callee,
            kind: CallKind::Bridged,
            callrec_user: None,
            variables: Vec::new(),
            ring: Duration::from_secs(2),
            answer: true,
            early_media: false,
            talk: None,
            hangup_by: Side::Caller,
            holds: Vec::new(),
        }
    }

    /// An internal call between two directory users.
    pub fn internal(caller_ext: &str, callee_ext: &str) -> CallSpec {
        CallSpec::between(Party::user(caller_ext), Party::user(callee_ext))
    }

    /// A directory user calling out to an external number.
    pub fn outbound(caller_ext: &str, number: &str) -> CallSpec {
        CallSpec::between(Party::user(caller_ext), Party::external(number))
    }

    /// An external number calling a directory user.
    pub fn inbound(number: &str, callee_ext: &str) -> CallSpec {
        CallSpec::between(Party::external(number), Party::user(callee_ext))
    }

    /// Uses a loopback pair to `extension` instead of bridged SIP legs.
    pub fn loopback(mut self, extension: &str) -> CallSpec {
        self.kind = CallKind::Loopback {
            extension: extension.to_string(),
        };
        self
    }

    /// Sets the ring time.
    pub fn ring(mut self, ring: Duration) -> CallSpec {
        self.ring = ring;
        self
    }

    /// The far end sends early media while it rings (see [`CallSpec::early_media`]).
    pub fn with_early_media(mut self) -> CallSpec {
        self.early_media = true;
        self
    }

    /// The callee never answers; the caller gives up after the ring time.
    pub fn unanswered(mut self) -> CallSpec {
        self.answer = false;
        self
    }

    /// Hangs up `talk` after the answer, from `side`.
    pub fn talk(mut self, talk: Duration, side: Side) -> CallSpec {
        self.talk = Some(talk);
        self.hangup_by = side;
        self
    }

    /// Holds from `side`, `at` after the answer, for `duration`.
    pub fn hold(mut self, side: Side, at: Duration, duration: Duration) -> CallSpec {
        self.holds.push(HoldSpec {
            side,
            at,
            duration: Some(duration),
        });
        self
    }

    /// Exports `callrec_user` on the caller's leg.
    pub fn callrec_user(mut self, user: &str) -> CallSpec {
        self.callrec_user = Some(user.to_string());
        self
    }

    /// Sets a variable on the caller's leg.
    pub fn variable(mut self, name: &str, value: &str) -> CallSpec {
        self.variables.push((name.to_string(), value.to_string()));
        self
    }
}

/// The legs of a placed call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallHandle {
    /// Identifies the call in later scripting calls.
    pub id: u64,
    /// `Unique-ID` of the caller's leg (the loopback A leg).
    pub caller_uuid: String,
    /// `Unique-ID` the callee's leg has (or will have once the dialplan creates it).
    pub callee_uuid: String,
}

/// Where a call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Ringing,
    Answered,
    Ended,
}

/// The switch's record of a call.
#[derive(Debug)]
pub(crate) struct CallRecord {
    pub id: u64,
    pub a: String,
    pub b: String,
    pub phase: Phase,
    pub b_created: bool,
    pub bridged: bool,
    /// Reply of a blocking `api originate`, sent when the A leg answers or fails.
    pub originate_reply: Option<oneshot::Sender<String>>,
}

/// Variables a SIP leg only has when it belongs to a directory user.
const CALLER_DIRECTORY_VARS: &[&str] = &[
    "sip_authorized",
    "sip_number_alias",
    "sip_auth_username",
    "sip_auth_realm",
    "number_alias",
    "requested_user_name",
    "requested_domain_name",
    "record_stereo",
    "default_gateway",
    "default_areacode",
    "transfer_fallback_extension",
    "toll_allow",
    "accountcode",
    "user_context",
    "effective_caller_id_name",
    "effective_caller_id_number",
    "outbound_caller_id_name",
    "outbound_caller_id_number",
    "callgroup",
    "user_name",
    "domain_name",
];

const CALLEE_DIRECTORY_VARS: &[&str] = &["dialed_user", "dialed_domain"];

/// `Caller-Callee-ID-Number` of a leg ringing a registered phone: the contact's user part.
fn contact_of(number: &str) -> String {
    format!("{number}-0x56345d2322d0")
}

fn sleep_extras(ms: Micros) -> Extras<'static> {
    Extras {
        overrides: vec![("Application-Data", Some((ms / 1000).to_string()))],
        ..Extras::default()
    }
}

impl Switch {
    /// Registers a new channel following `template`.
    pub(crate) fn new_channel(&mut self, uuid: String, kind: LegKind, template: LegId) -> String {
        let steps = library()
            .map(|l| l.leg(template).tpl.steps.len())
            .unwrap_or(0);
        self.channel_order += 1;
        let mut ch = Channel::new(uuid.clone(), self.channel_order, kind, template, steps);
        ch.profile.uuid = uuid.clone();
        ch.profile.times.created = self.now();
        self.sessions_since_startup += 1;
        ch.idents.session_id = self.sessions_since_startup;
        self.channels.insert(uuid.clone(), ch);
        self.session_peak = self.session_peak.max(self.channels.len());
        uuid
    }

    fn with_channel(&mut self, uuid: &str, f: impl FnOnce(&mut Channel)) {
        if let Some(ch) = self.channels.get_mut(uuid) {
            f(ch);
        }
    }

    /// What the shipped `dialplan/callrec-arm.xml` does to a leg entering the dialplan, when
    /// the switch has it ([`crate::SimConfig::dialplan_arming`]): the user named by
    /// `callrec_user` or else `user_name`, if the hash realm `callrec` has them
    /// (`user_<name>` → `RECORD_MIN_SEC`), gets `callrec_armed` (the file
    /// `<spool>/<leg uuid>.<format>`) and the `uuid_record … start` in
    /// `api_on_answer_callrec` that runs at answer. A leg already armed is left alone.
    pub(crate) fn dialplan_arm(&mut self, uuid: &str) {
        if !self.cfg.dialplan_arming {
            return;
        }
        let Some(ch) = self.channels.get(uuid) else {
            return;
        };
        if ch.var("callrec_armed").is_some() {
            return;
        }
        // Variables given to `originate` are the leg's from its creation, applied or not yet.
        let var = |name: &str| {
            ch.var(name).or_else(|| {
                ch.originate_vars
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.as_str())
            })
        };
        let who = var("callrec_user")
            .filter(|u| !u.is_empty())
            .or_else(|| var("user_name"))
            .unwrap_or_default()
            .to_owned();
        let entry = |key: &str| self.db_hash.get(&format!("callrec_{key}")).cloned();
        let Some(min) = entry(&format!("user_{who}"))
            .filter(|m| !m.is_empty() && m.bytes().all(|b| b.is_ascii_digit()))
        else {
            return;
        };
        let spool = entry("spool").unwrap_or_default();
        let format = entry("format").unwrap_or_default();
        let path = format!("{spool}/{uuid}.{format}");
        let command =
            format!("uuid_record {uuid} start {path} 0 {{callrec_id={uuid},RECORD_MIN_SEC={min}}}");
        self.with_channel(uuid, |ch| {
            // mod_dialplan_xml's captures of the matching condition (`^([0-9]+)$`): the
            // whole match and the group, pushed as an array.
            ch.set_var("DP_MATCH", format!("ARRAY::{min}|:{min}"));
            ch.set_var("callrec_armed", path);
            ch.set_var("api_on_answer_callrec", command);
        });
    }

    // ---- scripted calls ----------------------------------------------------------------

    /// Places a scripted call; everything after this runs on the clock.
    pub(crate) fn place_call(&mut self, spec: crate::CallSpec) -> CallHandle {
        let id = self.next_call;
        self.next_call += 1;
        let a = uuid::Uuid::new_v4().to_string();
        let b = uuid::Uuid::new_v4().to_string();
        self.calls.insert(
            id,
            CallRecord {
                id,
                a: a.clone(),
                b: b.clone(),
                phase: Phase::Ringing,
                b_created: false,
                bridged: false,
                originate_reply: None,
            },
        );
        match spec.kind.clone() {
            CallKind::Bridged => self.sip_start(id, &spec),
            CallKind::Loopback { extension } => {
                let mut vars = vec![(
                    "origination_caller_id_number".to_string(),
                    spec.caller.number.clone(),
                )];
                if let Some(name) = &spec.caller.name {
                    vars.push(("origination_caller_id_name".into(), name.clone()));
                }
                if let Some(u) = &spec.callrec_user {
                    vars.push(("callrec_user".into(), u.clone()));
                }
                vars.extend(spec.variables.iter().cloned());
                self.loop_start(id, &extension, &spec.caller, vars, spec.ring);
            }
        }
        self.schedule_spec_timers(id, &spec);
        self.bump();
        CallHandle {
            id,
            caller_uuid: a,
            callee_uuid: b,
        }
    }

    /// Registers the answer-relative timers of a spec (talk time, holds) to run once the
    /// call is answered.
    fn schedule_spec_timers(&mut self, id: u64, spec: &crate::CallSpec) {
        let holds = spec.holds.clone();
        let talk = spec.talk;
        let by = spec.hangup_by;
        let answer = spec.answer;
        if !answer {
            return;
        }
        self.on_answer.insert(
            id,
            Box::new(move |sw: &mut Switch| {
                for h in holds {
                    let at = micros(h.at);
                    let side = h.side;
                    sw.schedule_in(
                        at,
                        Box::new(move |sw: &mut Switch| sw.hold_side(id, side, true)),
                    );
                    if let Some(d) = h.duration {
                        sw.schedule_in(
                            at + micros(d),
                            Box::new(move |sw: &mut Switch| sw.hold_side(id, side, false)),
                        );
                    }
                }
                if let Some(t) = talk {
                    sw.schedule_in(
                        micros(t),
                        Box::new(move |sw: &mut Switch| sw.hangup_call(id, by, "NORMAL_CLEARING")),
                    );
                }
            }),
        );
    }

    fn call_answered(&mut self, id: u64) {
        if let Some(c) = self.calls.get_mut(&id) {
            c.phase = Phase::Answered;
        }
        if let Some(f) = self.on_answer.remove(&id) {
            f(self);
        }
    }

    fn leg_of(&self, id: u64, side: Side) -> Option<String> {
        let c = self.calls.get(&id)?;
        Some(match side {
            Side::Caller => c.a.clone(),
            Side::Callee => c.b.clone(),
        })
    }

    /// Holds or unholds one side of a call (a phone's re-INVITE).
    pub(crate) fn hold_side(&mut self, id: u64, side: Side, on: bool) {
        if let Some(uuid) = self.leg_of(id, side) {
            if on {
                self.hold(&uuid);
            } else {
                self.unhold(&uuid);
            }
        }
    }

    /// Hangs up a call from one side.
    pub(crate) fn hangup_call(&mut self, id: u64, side: Side, cause: &str) {
        let Some(c) = self.calls.get(&id) else {
            return;
        };
        if c.phase == Phase::Ended {
            return;
        }
        let uuid = match side {
            Side::Caller => c.a.clone(),
            Side::Callee => c.b.clone(),
        };
        self.hangup(&uuid, cause);
    }

    // ---- SIP: two phones bridged by the dialplan ----------------------------------------

    fn sip_start(&mut self, id: u64, spec: &crate::CallSpec) {
        let Some(c) = self.calls.get(&id) else {
            return;
        };
        let a = c.a.clone();
        self.new_channel(a.clone(), LegKind::SipCaller, LegId::SipA);
        let caller = spec.caller.clone();
        let callee = spec.callee.clone();
        self.with_channel(&a, |ch| {
            ch.call_handle = Some(id);
            ch.idents.a_user = caller.number.clone();
            ch.idents.a_name = format!("Extension {}", caller.number);
            ch.idents.b_user = callee.number.clone();
            ch.idents.b_name = format!("Extension {}", callee.number);
            ch.idents.call_id = format!("{:016x}", rand_u64());
            ch.presence_id = format!("{}@127.0.0.1", caller.number);
            let p = &mut ch.profile;
            p.direction = "inbound".into();
            p.logical_direction = "inbound".into();
            if caller.directory_user {
                p.username = caller.number.clone();
            }
            p.dialplan = "XML".into();
            p.caller_id_name = caller.name.clone().unwrap_or_else(|| caller.number.clone());
            p.caller_id_number = caller.number.clone();
            p.orig_caller_id_name = p.caller_id_name.clone();
            p.orig_caller_id_number = caller.number.clone();
            p.network_addr = "127.0.0.1".into();
            p.ani = caller.number.clone();
            p.destination_number = callee.number.clone();
            p.source = "mod_sofia".into();
            p.context = "default".into();
            p.channel_name = format!("sofia/internal/{}@127.0.0.1", caller.number);
            if !caller.directory_user {
                ch.suppressed.extend_from_slice(CALLER_DIRECTORY_VARS);
            }
            if !callee.directory_user {
                ch.suppressed.extend_from_slice(CALLEE_DIRECTORY_VARS);
            }
        });
        self.play(&a, LegId::SipA, "create", &Extras::default());
        let extra: Vec<(String, String)> = spec
            .callrec_user
            .iter()
            .map(|u| ("callrec_user".to_string(), u.clone()))
            .chain(spec.variables.iter().cloned())
            .collect();
        self.with_channel(&a, |ch| {
            for (n, v) in extra {
                ch.set_var(&n, v);
            }
        });
        let sleep = micros(self.cfg.dialplan_sleep);
        self.dialplan_arm(&a);
        self.play(&a, LegId::SipA, "prelude", &sleep_extras(sleep));
        let ring = micros(spec.ring);
        let answer = spec.answer;
        let early = spec.early_media;
        let callee_user = callee.directory_user;
        self.schedule_in(
            sleep,
            Box::new(move |sw: &mut Switch| sw.sip_dialplan(id, ring, answer, early, callee_user)),
        );
    }

    fn sip_dialplan(
        &mut self,
        id: u64,
        ring: Micros,
        answer: bool,
        early: bool,
        callee_user: bool,
    ) {
        let Some(c) = self.calls.get(&id) else {
            return;
        };
        if c.phase == Phase::Ended {
            return;
        }
        let (a, b) = (c.a.clone(), c.b.clone());
        self.play(&a, LegId::SipA, "dialplan", &Extras::default());
        let Some(a_ch) = self.channels.get(&a) else {
            return;
        };
        let idents = a_ch.idents.clone();
        let originator = {
            let mut p = a_ch.profile.clone();
            p.times = Default::default();
            p
        };
        self.new_channel(b.clone(), LegKind::SipCallee, LegId::SipB);
        let contact = contact_of(&idents.b_user);
        self.with_channel(&b, |ch| {
            ch.call_handle = Some(id);
            ch.idents = idents.clone();
            ch.idents.call_id = uuid::Uuid::new_v4().to_string();
            ch.peer = Some(a.clone());
            ch.other_leg = Some(a.clone());
            ch.other_snapshot = Some(originator.clone());
            ch.presence_id = format!("{}@127.0.0.1", idents.b_user);
            let p = &mut ch.profile;
            p.direction = "outbound".into();
            p.logical_direction = "outbound".into();
            p.username = originator.username.clone();
            p.dialplan = "XML".into();
            p.caller_id_name = if originator.username.is_empty() {
                originator.caller_id_name.clone()
            } else {
                idents.a_name.clone()
            };
            p.caller_id_number = originator.caller_id_number.clone();
            p.orig_caller_id_name = originator.caller_id_name.clone();
            p.orig_caller_id_number = originator.caller_id_number.clone();
            p.callee_id_name = "Outbound Call".into();
            p.callee_id_number = contact.clone();
            p.network_addr = "127.0.0.1".into();
            p.ani = originator.ani.clone();
            p.destination_number = contact.clone();
            p.source = "mod_sofia".into();
            p.context = "default".into();
            p.channel_name = format!("sofia/internal/{contact}@127.0.0.1:5072");
            if !callee_user {
                ch.suppressed.extend_from_slice(CALLEE_DIRECTORY_VARS);
                ch.suppressed.extend_from_slice(CALLER_DIRECTORY_VARS);
            }
        });
        self.with_channel(&a, |ch| {
            ch.peer = Some(b.clone());
            ch.other_leg = Some(b.clone());
            ch.other_logical = Some("inbound".into());
        });
        if let Some(c) = self.calls.get_mut(&id) {
            c.b_created = true;
        }
        self.play(&b, LegId::SipB, "create", &Extras::default());
        let now = self.now();
        self.with_channel(&a, |ch| {
            if ch.profile.times.progress == 0 {
                ch.profile.times.progress = now;
            }
        });
        if early && self.channels.get(&a).is_some_and(|ch| !ch.early_media) {
            self.play(&a, LegId::SipA, "early", &Extras::default());
        }
        if answer {
            self.schedule_in(ring, Box::new(move |sw: &mut Switch| sw.sip_answer(id)));
        } else {
            self.schedule_in(
                ring,
                Box::new(move |sw: &mut Switch| {
                    sw.hangup_call(id, Side::Caller, "ORIGINATOR_CANCEL")
                }),
            );
        }
    }

    fn sip_answer(&mut self, id: u64) {
        let Some(c) = self.calls.get(&id) else {
            return;
        };
        if c.phase != Phase::Ringing {
            return;
        }
        let (a, b) = (c.a.clone(), c.b.clone());
        self.play(&b, LegId::SipB, "answer", &Extras::default());
        let early = self.channels.get(&a).is_some_and(|ch| ch.early_media);
        if !early {
            self.apply_silently(&a, LegId::SipA, "early");
        }
        let contact = self
            .channels
            .get(&b)
            .map(|ch| ch.profile.callee_id_number.clone())
            .unwrap_or_default();
        // The caller's profile learns its callee between the two CODEC events of the
        // answer (the `sip-hold` capture).
        self.play_nth(&a, LegId::SipA, "answer", 0, &Extras::default());
        self.with_channel(&a, |ch| {
            ch.profile.callee_id_name = "Outbound Call".into();
            ch.profile.callee_id_number = contact.clone();
        });
        let a_profile = self.channels.get(&a).map(|ch| {
            let mut p = ch.profile.clone();
            p.times = Default::default();
            p
        });
        self.with_channel(&b, |ch| {
            if let Some(p) = a_profile {
                ch.other_snapshot = Some(p);
            }
        });
        self.play_from(&a, LegId::SipA, "answer", 1, &Extras::default());
        self.play(&b, LegId::SipB, "outgoing2", &Extras::default());
        self.call_answered(id);
        let delay = micros(self.cfg.bridge_delay);
        self.schedule_in(delay, Box::new(move |sw: &mut Switch| sw.sip_bridge(id)));
    }

    fn sip_bridge(&mut self, id: u64) {
        let Some(c) = self.calls.get(&id) else {
            return;
        };
        if c.phase != Phase::Answered {
            return;
        }
        let (a, b) = (c.a.clone(), c.b.clone());
        self.play(&a, LegId::SipA, "bridge", &Extras::default());
        let now = self.now();
        self.with_channel(&b, |ch| ch.profile.times.bridged = now);
        if let Some(c) = self.calls.get_mut(&id) {
            c.bridged = true;
        }
        let a_held = self.channels.get(&a).is_some_and(|ch| ch.held);
        if a_held {
            self.play(&b, LegId::SipB, "moh", &moh_extras());
        }
        self.play(&b, LegId::SipB, "bridged", &Extras::default());
        self.play(&a, LegId::SipA, "call_update", &Extras::default());
    }

    /// A phone puts its call on hold (re-INVITE) or `uuid_hold` on a leg.
    pub(crate) fn hold(&mut self, uuid: &str) -> bool {
        let Some(ch) = self.channels.get(uuid) else {
            return false;
        };
        if ch.hungup || ch.held {
            return false;
        }
        let (kind, peer, handle) = (ch.kind, ch.peer.clone(), ch.call_handle);
        match kind {
            LegKind::LoopA | LegKind::LoopB => {
                self.play(uuid, LegId::LoopA, "hold", &Extras::default());
            }
            LegKind::SipCaller | LegKind::SipCallee | LegKind::SipFeature => {
                self.play(uuid, LegId::SipA, "hold", &Extras::default());
                let bridged = handle
                    .and_then(|h| self.calls.get(&h))
                    .is_some_and(|c| c.bridged);
                if bridged && let Some(p) = peer {
                    self.play(&p, LegId::SipB, "moh", &moh_extras());
                }
            }
        }
        self.bump();
        true
    }

    /// Takes a call off hold. Loopback legs cannot (`-ERR Operation failed`, as captured).
    pub(crate) fn unhold(&mut self, uuid: &str) -> bool {
        let Some(ch) = self.channels.get(uuid) else {
            return false;
        };
        if ch.hungup || !ch.held {
            return false;
        }
        match ch.kind {
            LegKind::LoopA | LegKind::LoopB => false,
            _ => {
                self.play(uuid, LegId::SipA, "unhold", &Extras::default());
                self.bump();
                true
            }
        }
    }

    // ---- loopback: `originate ... loopback/<ext>` -----------------------------------------

    /// Creates a loopback pair running `extension`; returns the A leg.
    pub(crate) fn loop_start(
        &mut self,
        id: u64,
        extension: &str,
        caller: &crate::Party,
        originate_vars: Vec<(String, String)>,
        ring: Duration,
    ) -> String {
        let Some(c) = self.calls.get(&id) else {
            return String::new();
        };
        let (a, b) = (c.a.clone(), c.b.clone());
        let b_template = match extension {
            "9999" => LegId::LoopBTone,
            _ => LegId::LoopBPark,
        };
        self.new_channel(a.clone(), LegKind::LoopA, LegId::LoopA);
        self.new_channel(b.clone(), LegKind::LoopB, b_template);
        let name = caller.name.clone().unwrap_or_default();
        let number = caller.number.clone();
        for (uuid, peer, leg_b) in [(&a, &b, false), (&b, &a, true)] {
            let vars = originate_vars.clone();
            let (name, number) = (name.clone(), number.clone());
            let ext = extension.to_string();
            let peer = peer.clone();
            self.with_channel(uuid, |ch| {
                ch.call_handle = Some(id);
                ch.peer = Some(peer);
                ch.originate_vars = vars;
                ch.idents.cid_num = number.clone();
                ch.idents.cid_name = name.clone();
                ch.idents.dest = ext.clone();
                ch.silent_media = ext != "9999";
                let p = &mut ch.profile;
                let dir = if leg_b { "inbound" } else { "outbound" };
                p.direction = dir.into();
                p.logical_direction = dir.into();
                p.dialplan = "xml".into();
                p.caller_id_name = name.clone();
                p.caller_id_number = number.clone();
                p.orig_caller_id_name = name.clone();
                p.orig_caller_id_number = number.clone();
                p.callee_id_name = "Outbound Call".into();
                p.callee_id_number = "default".into();
                p.ani = number.clone();
                p.destination_number = ext.clone();
                p.source = "mod_loopback".into();
                p.context = "default".into();
                p.channel_name = format!("loopback/{ext}-{}", if leg_b { 'b' } else { 'a' });
            });
        }
        let none = Extras::default();
        self.play(&a, LegId::LoopA, "create1", &none);
        self.play(&b, b_template, "create1", &none);
        self.play(&a, LegId::LoopA, "create2", &none);
        self.play(&b, b_template, "create2", &none);
        let ring = micros(ring);
        self.dialplan_arm(&b);
        self.play(&b, b_template, "prelude", &sleep_extras(ring));
        let ext = extension.to_string();
        self.schedule_in(
            ring,
            Box::new(move |sw: &mut Switch| sw.loop_proceed(id, &ext)),
        );
        a
    }

    fn loop_proceed(&mut self, id: u64, extension: &str) {
        let Some(c) = self.calls.get(&id) else {
            return;
        };
        if c.phase != Phase::Ringing {
            return;
        }
        let b = c.b.clone();
        let Some(b_template) = self.channels.get(&b).map(|ch| ch.template) else {
            return;
        };
        self.play(&b, b_template, "sleep_done", &Extras::default());
        if self.cfg.feature_codes.iter().any(|f| f == extension) {
            self.loop_socket(id);
        } else {
            self.loop_answer(id);
        }
    }

    /// The B leg answers (its dialplan's `answer`, or a socket application's).
    pub(crate) fn loop_answer(&mut self, id: u64) {
        let Some(c) = self.calls.get(&id) else {
            return;
        };
        if c.phase != Phase::Ringing {
            return;
        }
        let (a, b) = (c.a.clone(), c.b.clone());
        let Some(b_template) = self.channels.get(&b).map(|ch| ch.template) else {
            return;
        };
        let socket = self
            .channels
            .get(&b)
            .is_some_and(|ch| ch.outbound_session.is_some());
        if !socket {
            self.play(&b, b_template, "answer1", &Extras::default());
        }
        self.play(&a, LegId::LoopA, "answer", &Extras::default());
        if socket {
            self.play(&b, LegId::LoopFOut, "answer", &Extras::default());
        } else {
            self.play(&b, b_template, "answer2", &Extras::default());
            let app = if b_template == LegId::LoopBTone {
                tone_extras()
            } else {
                Extras::default()
            };
            self.play(&b, b_template, "app", &app);
        }
        // The loopback A leg swaps caller and callee once answered (CALL_UPDATE).
        self.with_channel(&a, |ch| {
            let p = &mut ch.profile;
            let (name, number) = (p.caller_id_name.clone(), p.caller_id_number.clone());
            p.caller_id_name = "Outbound Call".into();
            p.caller_id_number = "default".into();
            p.callee_id_name = name;
            p.callee_id_number = number;
        });
        self.play(&a, LegId::LoopA, "park", &Extras::default());
        if let Some(c) = self.calls.get_mut(&id)
            && let Some(reply) = c.originate_reply.take()
        {
            let _ = reply.send(format!("+OK {a}\n"));
        }
        self.call_answered(id);
        self.execute_on_answer(&a);
    }

    /// `execute_on_answer` among an originate's variables. The simulator runs the one
    /// application tests use there, `sched_hangup +N [cause]`: the switch's scheduler runs
    /// it on its own whole-second tick, so the call talks between N-1 and N seconds (measured:
    /// 1.5 s for `+2`). The variable is on both loopback legs; the A leg's runs first.
    fn execute_on_answer(&mut self, a: &str) {
        let Some(ch) = self.channels.get(a) else {
            return;
        };
        let apps: Vec<String> = ch
            .originate_vars
            .iter()
            .filter(|(n, _)| n == "execute_on_answer" || n.starts_with("execute_on_answer_"))
            .map(|(_, v)| v.clone())
            .collect();
        for app in apps {
            let mut words = app.split_whitespace();
            let secs = match (words.next(), words.next()) {
                (Some("sched_hangup"), Some(at)) => {
                    at.strip_prefix('+').and_then(|n| n.parse::<u32>().ok())
                }
                _ => None,
            };
            let Some(secs) = secs else {
                tracing::warn!(
                    app,
                    "execute_on_answer: only `sched_hangup +N` is simulated"
                );
                continue;
            };
            let cause = words
                .next()
                .unwrap_or("NORMAL_CLEARING")
                .to_ascii_uppercase();
            let since_boot = self.now() - self.boot_time;
            let tick = since_boot - since_boot.rem_euclid(1_000_000);
            let wait = tick + i64::from(secs) * 1_000_000 - since_boot;
            let a = a.to_string();
            self.schedule_in(
                wait,
                Box::new(move |sw: &mut Switch| {
                    sw.hangup(&a, &cause);
                }),
            );
        }
    }

    // ---- hangups ------------------------------------------------------------------------

    /// Hangs up a channel (and the rest of its call) with `cause`.
    pub(crate) fn hangup(&mut self, uuid: &str, cause: &str) -> bool {
        let Some(ch) = self.channels.get(uuid) else {
            return false;
        };
        if ch.hungup {
            return false;
        }
        let kind = ch.kind;
        let handle = ch.call_handle;
        let peer = ch.peer.clone();
        self.with_channel(uuid, |ch| ch.hangup_cause = cause.to_string());
        if let Some(h) = handle
            && let Some(c) = self.calls.get_mut(&h)
        {
            let was_ringing = c.phase == Phase::Ringing;
            c.phase = Phase::Ended;
            if let Some(reply) = c.originate_reply.take() {
                let _ = reply.send(format!("-ERR {cause}\n"));
            }
            let _ = was_ringing;
        }
        match kind {
            LegKind::LoopA | LegKind::LoopB => self.loop_hangup(uuid, peer),
            LegKind::SipCaller | LegKind::SipCallee => self.sip_hangup(uuid, peer),
            LegKind::SipFeature => self.feature_hangup(uuid),
        }
        self.bump();
        true
    }

    fn loop_hangup(&mut self, uuid: &str, peer: Option<String>) {
        let is_a = self
            .channels
            .get(uuid)
            .is_some_and(|ch| ch.kind == LegKind::LoopA);
        let (a, b) = if is_a {
            (uuid.to_string(), peer.unwrap_or_default())
        } else {
            (peer.unwrap_or_default(), uuid.to_string())
        };
        let none = Extras::default();
        // The killed leg's CHANNEL_HANGUP comes first (before the API reply); the rest of
        // the teardown runs right after, as the switch's session threads do.
        if is_a {
            self.play_nth(&a, LegId::LoopA, "hangup1", 0, &none);
        } else {
            self.loop_b_teardown(&b);
        }
        let (a2, b2) = (a.clone(), b.clone());
        self.schedule_in(
            0,
            Box::new(move |sw: &mut Switch| {
                let none = Extras::default();
                if is_a {
                    sw.with_channel(&b2, |ch| ch.hangup_cause = "NORMAL_CLEARING".into());
                    sw.loop_b_teardown(&b2);
                    sw.play_from(&a2, LegId::LoopA, "hangup1", 1, &none);
                } else {
                    sw.with_channel(&a2, |ch| ch.hangup_cause = "NORMAL_CLEARING".into());
                    sw.play(&a2, LegId::LoopA, "hangup1", &none);
                }
                sw.play(&a2, LegId::LoopA, "hangup2", &none);
                let b_template = sw
                    .channels
                    .get(&b2)
                    .map(|c| c.template)
                    .unwrap_or(LegId::LoopBTone);
                sw.play_nth(&b2, b_template, "destroy", 0, &none);
                sw.play_nth(&b2, b_template, "destroy", 1, &none);
                sw.play(&a2, LegId::LoopA, "destroy", &none);
                sw.remove_channel(&a2);
                sw.remove_channel(&b2);
            }),
        );
    }

    fn loop_b_teardown(&mut self, b: &str) {
        let none = Extras::default();
        let Some(ch) = self.channels.get(b) else {
            return;
        };
        let socket = ch.outbound_session.is_some();
        let template = ch.template;
        if socket {
            self.play(b, LegId::LoopFOut, "hangup", &none);
            self.end_outbound_session(b);
        } else {
            self.play(b, template, "peer_hangup", &none);
        }
    }

    fn sip_hangup(&mut self, uuid: &str, peer: Option<String>) {
        let is_a = self
            .channels
            .get(uuid)
            .is_some_and(|ch| ch.kind == LegKind::SipCaller);
        let handle = self.channels.get(uuid).and_then(|c| c.call_handle);
        let (a, b) = match (is_a, handle.and_then(|h| self.calls.get(&h))) {
            (true, Some(c)) => (c.a.clone(), c.b.clone()),
            (false, Some(c)) => (c.a.clone(), c.b.clone()),
            (true, None) => (uuid.to_string(), peer.unwrap_or_default()),
            (false, None) => (peer.unwrap_or_default(), uuid.to_string()),
        };
        let b_exists = self.channels.contains_key(&b);
        let bridged = handle
            .and_then(|h| self.calls.get(&h))
            .is_some_and(|c| c.bridged);
        let none = Extras::default();
        if is_a {
            self.play(&a, LegId::SipA, "hangup", &none);
            if b_exists {
                self.with_channel(&b, |ch| ch.hangup_cause = "NORMAL_CLEARING".into());
                self.play(&b, LegId::SipB, "hangup", &none);
            }
        } else {
            self.play(&b, LegId::SipB, "hangup", &none);
            self.with_channel(&a, |ch| ch.hangup_cause = "NORMAL_CLEARING".into());
            self.play(&a, LegId::SipA, "hangup", &none);
        }
        if bridged {
            self.play(&a, LegId::SipA, "unbridge", &none);
        }
        if b_exists {
            self.play_nth(&b, LegId::SipB, "destroy", 0, &none);
        }
        self.play(&a, LegId::SipA, "hangup_rest1", &none);
        if b_exists {
            self.play_nth(&b, LegId::SipB, "destroy", 1, &none);
        }
        self.play(&a, LegId::SipA, "hangup_rest2", &none);
        self.play(&a, LegId::SipA, "destroy", &none);
        self.remove_channel(&a);
        self.remove_channel(&b);
    }

    /// Forgets a channel that has been destroyed.
    pub(crate) fn remove_channel(&mut self, uuid: &str) {
        let now = self.now();
        if let Some(ch) = self.channels.remove(uuid) {
            // A recording still attached here was never stopped (the switch was killed):
            // its file keeps the header written at the start and the audio flushed so far.
            let media = ch.media();
            for mut r in ch.recordings {
                r.settle(now, media);
                let samples = crate::recording::write_killed(&r).unwrap_or_else(|e| {
                    tracing::warn!(path = r.path, error = %e, "cannot write recording");
                    0
                });
                self.recordings.push(crate::recording::RecordingInfo {
                    uuid: ch.uuid.clone(),
                    path: r.path.clone(),
                    vars: r.vars.clone(),
                    started: r.started,
                    stopped: None,
                    samples,
                    channels: r.channels,
                    cause: None,
                    discarded: false,
                });
            }
        }
    }

    // ---- shutdown -----------------------------------------------------------------------

    /// `fsctl shutdown`: every call hangs up (every recording, on any leg, is closed and gets
    /// its RECORD_STOP as its leg enters CS_HANGUP), the modules unload, and every listener
    /// gets the shutdown notice before its socket closes.
    pub(crate) fn shutdown(&mut self) {
        if !self.up || self.shutting_down {
            return;
        }
        self.shutting_down = true;
        let mut ev = self.new_event("SHUTDOWN", "switch_core.c", "switch_core_destroy", 3033);
        ev.push("Event-Info", "System Shutting Down");
        self.fire(ev);
        let order: Vec<(String, LegKind, LegId)> = self
            .channels_in_order()
            .iter()
            .map(|c| (c.uuid.clone(), c.kind, c.template))
            .collect();
        let none = Extras::default();
        for (uuid, kind, template) in &order {
            self.with_channel(uuid, |ch| ch.hangup_cause = "SYSTEM_SHUTDOWN".into());
            match (kind, template) {
                (LegKind::LoopA, _) => self.play(uuid, LegId::ShutA, "hangup", &none),
                (LegKind::LoopB, LegId::LoopBTone) => {
                    self.play(uuid, LegId::ShutBTone, "hangup", &none)
                }
                (LegKind::LoopB, t) => self.play_nth(uuid, *t, "peer_hangup", 0, &none),
                (LegKind::SipCaller | LegKind::SipFeature, _) => {
                    self.play(uuid, LegId::SipA, "hangup", &none)
                }
                (LegKind::SipCallee, _) => self.play_nth(uuid, LegId::SipB, "hangup", 0, &none),
            }
        }
        let unloads = library()
            .map(|l| l.module_unloads.clone())
            .unwrap_or_default();
        let first = unloads.len().min(10);
        for step in &unloads[..first] {
            self.fire_static(step);
        }
        for (uuid, kind, template) in &order {
            match (kind, template) {
                (LegKind::LoopA, _) => {
                    self.play(uuid, LegId::ShutA, "rest1", &none);
                    self.play(uuid, LegId::ShutA, "rest2", &none);
                }
                (LegKind::LoopB, LegId::LoopBTone) => {
                    self.play(uuid, LegId::ShutBTone, "rest", &none);
                    self.play(uuid, LegId::ShutBTone, "destroy", &none);
                }
                (LegKind::LoopB, t) => {
                    self.play_from(uuid, *t, "peer_hangup", 1, &none);
                    self.play(uuid, *t, "destroy", &none);
                }
                (LegKind::SipCaller | LegKind::SipFeature, _) => {
                    self.play(uuid, LegId::SipA, "hangup_rest1", &none);
                    self.play(uuid, LegId::SipA, "hangup_rest2", &none);
                    self.play(uuid, LegId::SipA, "destroy", &none);
                }
                (LegKind::SipCallee, _) => {
                    self.play_from(uuid, LegId::SipB, "hangup", 1, &none);
                    self.play(uuid, LegId::SipB, "destroy", &none);
                }
            }
        }
        for (uuid, kind, _) in &order {
            if *kind == LegKind::LoopA {
                self.play(uuid, LegId::ShutA, "destroy", &none);
            }
        }
        for (uuid, _, _) in &order {
            // Each leg's recordings stopped when its teardown passed CS_HANGUP. Should a
            // teardown ever lack that state, its recordings still stop here, before the
            // notice, rather than being left behind as only a crash leaves them.
            self.remove_media_bugs(uuid);
            self.end_outbound_session(uuid);
            self.remove_channel(uuid);
        }
        for c in self.calls.values_mut() {
            c.phase = Phase::Ended;
            if let Some(reply) = c.originate_reply.take() {
                let _ = reply.send("-ERR SYSTEM_SHUTDOWN\n".into());
            }
        }
        for step in &unloads[first..] {
            self.fire_static(step);
        }
        self.close_listeners(Some(crate::wire::SHUTTING_DOWN));
        self.up = false;
        self.clear_timers();
        self.bump();
    }

    /// Fires a captured event that belongs to no channel (MODULE_UNLOAD).
    fn fire_static(&mut self, step: &crate::template::Step) {
        let now = self.now();
        let ctx = crate::channel::RenderCtx {
            now,
            core_uuid: &self.identity.core_uuid.clone(),
            hostname: &self.identity.hostname.clone(),
            ipv4: &self.identity.ipv4.clone(),
        };
        let blank = Channel::new(String::new(), 0, LegKind::LoopA, LegId::LoopA, 0);
        let ev = crate::channel::render(
            &blank,
            step,
            None,
            &ctx,
            &Extras::default(),
            &mut |name, ev| {
                let v = self.core_header(name, &step.name, &step.file, &step.func, step.line, now);
                ev.push(name.to_string(), v);
            },
        );
        self.fire(ev);
    }
}

fn tone_extras() -> Extras<'static> {
    Extras::default()
}

fn moh_extras() -> Extras<'static> {
    Extras::default()
}

/// A random 64-bit value for SIP identifiers.
pub(crate) fn rand_u64() -> u64 {
    let u = uuid::Uuid::new_v4();
    let b = u.as_bytes();
    u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

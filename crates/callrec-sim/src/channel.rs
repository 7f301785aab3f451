//! A simulated channel: its caller profile, its variables, its timeline, and how one
//! template [`Step`] becomes one event of this channel.

use crate::clock::Micros;
use crate::event::Event;
use crate::template::{Item, Slot, Step, TimeFmt, TimeRef, Tok, VarOp, render_time};

/// The caller profile (`switch_caller_profile_t`), rendered as `Caller-*`, `Other-Leg-*`
/// or (in CHANNEL_DATA) `Channel-*` headers.
#[derive(Debug, Clone, Default)]
pub(crate) struct Profile {
    pub direction: String,
    pub logical_direction: String,
    pub username: String,
    pub dialplan: String,
    pub caller_id_name: String,
    pub caller_id_number: String,
    pub orig_caller_id_name: String,
    pub orig_caller_id_number: String,
    pub callee_id_name: String,
    pub callee_id_number: String,
    pub network_addr: String,
    pub ani: String,
    pub destination_number: String,
    pub uuid: String,
    pub source: String,
    pub context: String,
    pub channel_name: String,
    pub times: Times,
}

/// The channel's timeline, as the profile's `*-Time` headers show it (0 = not yet).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Times {
    pub created: Micros,
    pub answered: Micros,
    pub progress: Micros,
    pub progress_media: Micros,
    pub hangup: Micros,
    pub bridged: Micros,
    pub last_hold: Micros,
    pub hold_accum: Micros,
}

impl Profile {
    /// Appends the profile's headers in `switch_caller_profile_event_set_data` order,
    /// leaving out empty fields as the switch does.
    pub fn push_headers(&self, prefix: &str, ev: &mut Event, with_index: bool) {
        let mut field = |name: &str, value: &str| {
            if !value.is_empty() {
                ev.push(format!("{prefix}-{name}"), value);
            }
        };
        field("Direction", &self.direction);
        field("Logical-Direction", &self.logical_direction);
        field("Username", &self.username);
        field("Dialplan", &self.dialplan);
        field("Caller-ID-Name", &self.caller_id_name);
        field("Caller-ID-Number", &self.caller_id_number);
        field("Orig-Caller-ID-Name", &self.orig_caller_id_name);
        field("Orig-Caller-ID-Number", &self.orig_caller_id_number);
        field("Callee-ID-Name", &self.callee_id_name);
        field("Callee-ID-Number", &self.callee_id_number);
        field("Network-Addr", &self.network_addr);
        field("ANI", &self.ani);
        field("Destination-Number", &self.destination_number);
        field("Unique-ID", &self.uuid);
        field("Source", &self.source);
        field("Context", &self.context);
        field("Channel-Name", &self.channel_name);
        if with_index {
            field("Profile-Index", "1");
        }
        let t = &self.times;
        for (name, value) in [
            ("Profile-Created-Time", t.created),
            ("Channel-Created-Time", t.created),
            ("Channel-Answered-Time", t.answered),
            ("Channel-Progress-Time", t.progress),
            ("Channel-Progress-Media-Time", t.progress_media),
            ("Channel-Hangup-Time", t.hangup),
            ("Channel-Transfer-Time", 0),
            ("Channel-Resurrect-Time", 0),
            ("Channel-Bridged-Time", t.bridged),
            ("Channel-Last-Hold", t.last_hold),
            ("Channel-Hold-Accum", t.hold_accum),
        ] {
            ev.push(format!("{prefix}-{name}"), value.to_string());
        }
        ev.push(format!("{prefix}-Screen-Bit"), "true");
        ev.push(format!("{prefix}-Privacy-Hide-Name"), "false");
        ev.push(format!("{prefix}-Privacy-Hide-Number"), "false");
    }
}

/// What the tokens of a channel's templates resolve to.
#[derive(Debug, Clone, Default)]
pub(crate) struct Idents {
    pub cid_num: String,
    pub cid_name: String,
    pub dest: String,
    pub a_user: String,
    pub a_name: String,
    pub b_user: String,
    pub b_name: String,
    pub call_id: String,
    pub session_id: u64,
}

/// Which captured channel a simulated channel follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum LegKind {
    /// `originate ... loopback/<ext>` A leg (outbound, parked).
    LoopA,
    /// Loopback B leg running the dialplan of the extension.
    LoopB,
    /// A SIP phone calling (inbound to the switch).
    SipCaller,
    /// The SIP leg the switch places to the called phone.
    SipCallee,
    /// A SIP phone dialling a feature code routed to the socket application.
    SipFeature,
}

/// One simulated channel.
#[derive(Debug, Clone)]
pub(crate) struct Channel {
    pub uuid: String,
    pub order: u64,
    pub kind: LegKind,
    /// The captured channel whose events this one replays.
    pub template: crate::scripts::LegId,
    /// Per step of `template`: whether its variable changes were applied.
    pub applied: Vec<bool>,
    /// Variables the channel refuses (a caller who is not a directory user has no
    /// `user_name`).
    pub suppressed: Vec<&'static str>,
    /// `record_*` variables of the recording being stopped (the `Record` slot).
    pub pending_record_vars: Vec<(String, String)>,
    pub profile: Profile,
    pub idents: Idents,
    pub vars: Vec<(String, String)>,
    pub originate_vars: Vec<(String, String)>,
    /// The other leg of a loopback pair or bridge.
    pub peer: Option<String>,
    /// The leg shown in `Other-Leg-*`.
    pub other_leg: Option<String>,
    /// A frozen copy of the other leg's profile, as an originated leg keeps its originator.
    pub other_snapshot: Option<Profile>,
    /// Logical direction shown for a live other leg (an originatee reads `inbound`).
    pub other_logical: Option<String>,
    pub app_uuid: String,
    pub application: String,
    pub application_data: String,
    pub channel_state: String,
    pub call_state: String,
    pub answer_state: String,
    pub presence_id: String,
    pub call_handle: Option<u64>,
    pub held: bool,
    pub hold_started: Micros,
    pub hold_events: Vec<(Micros, Micros)>,
    pub answered: bool,
    pub early_media: bool,
    pub hungup: bool,
    pub hangup_cause: String,
    pub last_app: String,
    pub last_arg: String,
    pub recordings: Vec<crate::recording::ActiveRecording>,
    /// Files played to the channel by `uuid_broadcast`, in order.
    pub broadcasts: Vec<String>,
    /// What the media carries while the call talks (a loopback B leg parked is silent).
    pub silent_media: bool,
    /// Running on a socket application (feature code) with this listener.
    pub outbound_session: Option<u64>,
    /// The session asked to linger after hangup.
    pub linger: bool,
    /// `sendmsg` orders waiting to run, and whether one is running.
    pub app_queue: std::collections::VecDeque<crate::outbound::AppOrder>,
    pub app_busy: bool,
    /// The feature-code call this channel is.
    pub feature_call: Option<u64>,
    /// The `sendmsg` being executed, as its PRIVATE_COMMAND event repeats it.
    pub private_command: Vec<(String, String)>,
}

impl Channel {
    pub fn new(
        uuid: String,
        order: u64,
        kind: LegKind,
        template: crate::scripts::LegId,
        steps: usize,
    ) -> Channel {
        Channel {
            uuid,
            order,
            kind,
            template,
            applied: vec![false; steps],
            suppressed: Vec::new(),
            pending_record_vars: Vec::new(),
            profile: Profile::default(),
            idents: Idents::default(),
            vars: Vec::new(),
            originate_vars: Vec::new(),
            peer: None,
            other_leg: None,
            other_snapshot: None,
            other_logical: None,
            app_uuid: String::new(),
            application: String::new(),
            application_data: String::new(),
            channel_state: "CS_NEW".into(),
            call_state: "DOWN".into(),
            answer_state: "ringing".into(),
            presence_id: String::new(),
            call_handle: None,
            held: false,
            hold_started: 0,
            hold_events: Vec::new(),
            answered: false,
            early_media: false,
            hungup: false,
            hangup_cause: String::new(),
            last_app: String::new(),
            last_arg: String::new(),
            recordings: Vec::new(),
            broadcasts: Vec::new(),
            silent_media: false,
            outbound_session: None,
            linger: false,
            app_queue: std::collections::VecDeque::new(),
            app_busy: false,
            feature_call: None,
            private_command: Vec::new(),
        }
    }

    /// A channel variable.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// What the media carries right now: nothing while ringing, held or gone; empty
    /// frames during a SIP phone's early media; silence from a parked loopback partner.
    pub fn media(&self) -> crate::recording::Media {
        use crate::recording::{Audio, Media};
        if self.held || self.hungup {
            return Media::None;
        }
        if !self.answered {
            let sip = matches!(
                self.kind,
                LegKind::SipCaller | LegKind::SipCallee | LegKind::SipFeature
            );
            return match (self.early_media, sip) {
                (false, _) => Media::None,
                (true, true) => Media::Empty,
                (true, false) => Media::Audio(Audio::Tone),
            };
        }
        if self.silent_media {
            Media::Audio(Audio::Quiet)
        } else {
            Media::Audio(Audio::Tone)
        }
    }

    /// `switch_channel_set_variable`: the variable moves to the end.
    pub fn set_var(&mut self, name: &str, value: impl Into<String>) {
        if self.suppressed.contains(&name) {
            return;
        }
        self.vars.retain(|(n, _)| n != name);
        self.vars.push((name.to_string(), value.into()));
    }

    /// Removes a variable.
    pub fn unset_var(&mut self, name: &str) {
        self.vars.retain(|(n, _)| n != name);
    }

    fn time_of(&self, r: TimeRef, now: Micros) -> Micros {
        let t = &self.profile.times;
        match r {
            TimeRef::Now => now,
            TimeRef::Created => t.created,
            TimeRef::Answered => t.answered,
            TimeRef::Progress => t.progress,
            TimeRef::ProgressMedia => t.progress_media,
            TimeRef::Bridged => t.bridged,
            TimeRef::Hangup => t.hangup,
            TimeRef::LastHold => t.last_hold,
        }
    }

    /// What a token means for this channel at `now`.
    pub fn resolve(&self, tok: Tok, ctx: &RenderCtx) -> String {
        let i = &self.idents;
        match tok {
            Tok::Uuid => self.uuid.clone(),
            Tok::Peer => self.peer.clone().unwrap_or_default(),
            Tok::CoreUuid => ctx.core_uuid.to_string(),
            Tok::Hostname => ctx.hostname.to_string(),
            Tok::Ipv4 => ctx.ipv4.to_string(),
            Tok::CidNum => i.cid_num.clone(),
            Tok::CidName => i.cid_name.clone(),
            Tok::Dest => i.dest.clone(),
            Tok::AUser => i.a_user.clone(),
            Tok::BUser => i.b_user.clone(),
            Tok::AName => i.a_name.clone(),
            Tok::BName => i.b_name.clone(),
            Tok::DestDigits => i.dest.trim_start_matches('*').to_string(),
            Tok::SessionId => i.session_id.to_string(),
            Tok::CallId => i.call_id.clone(),
            Tok::AppUuid => self.app_uuid.clone(),
            Tok::Time(r, fmt) => {
                let t = self.time_of(r, ctx.now);
                match (t, fmt) {
                    (0, TimeFmt::Micros | TimeFmt::Epoch) => "0".to_string(),
                    (0, _) => render_time(ctx.now, fmt),
                    _ => render_time(t, fmt),
                }
            }
        }
    }

    /// Applies a step's variable changes; `slots` supplies the simulator's own variables.
    /// With `slots_only` the template's own changes were applied before and only the
    /// simulator's (recording, CDR) are set again.
    pub fn apply_ops(
        &mut self,
        step: &Step,
        ctx: &RenderCtx,
        slots_only: bool,
        slots: &mut dyn FnMut(Slot, &mut Channel),
    ) {
        for op in &step.ops {
            if slots_only && !matches!(op, VarOp::Slot(_)) {
                continue;
            }
            match op {
                VarOp::Set(name, tpl) => {
                    if let Some(v) = tpl.resolve(&|t| self.resolve(t, ctx)) {
                        self.set_var(name, v);
                    }
                }
                VarOp::Update(name, tpl) => {
                    if self.suppressed.contains(&name.as_str()) {
                        continue;
                    }
                    if let Some(v) = tpl.resolve(&|t| self.resolve(t, ctx)) {
                        match self.vars.iter_mut().find(|(n, _)| n == name) {
                            Some(slot) => slot.1 = v,
                            None => self.vars.push((name.clone(), v)),
                        }
                    }
                }
                VarOp::Unset(name) => self.unset_var(name),
                VarOp::Slot(slot) => slots(*slot, self),
            }
        }
    }
}

/// The switch-wide facts a rendered event needs.
pub(crate) struct RenderCtx<'a> {
    pub now: Micros,
    pub core_uuid: &'a str,
    pub hostname: &'a str,
    pub ipv4: &'a str,
}

/// Per-emission adjustments: header values that differ from the capture, and the
/// recording an event is about.
#[derive(Debug, Default)]
pub(crate) struct Extras<'a> {
    /// `(header, value)`: replace the templated value; `None` leaves the header out.
    pub overrides: Vec<(&'a str, Option<String>)>,
    /// `Recording-Variable-*` values of the recording.
    pub recording_vars: &'a [(String, String)],
    /// Include the channel variables even where the capture did not (`fsctl shutdown`
    /// makes every later event of a channel verbose).
    pub force_vars: bool,
    /// Headers that replace the ones before the standard block (a PRIVATE_COMMAND repeats
    /// the `sendmsg` that caused it).
    pub leading: Option<Vec<(String, String)>>,
}

/// Renders a step for a channel whose variables were already updated; `core` fills the
/// standard headers and `peer` is the profile shown as `Other-Leg-*`.
pub(crate) fn render(
    ch: &Channel,
    step: &Step,
    peer: Option<&Profile>,
    ctx: &RenderCtx,
    extras: &Extras,
    core: &mut dyn FnMut(&str, &mut Event),
) -> Event {
    let mut ev = Event::new();
    let resolve = |t: Tok| ch.resolve(t, ctx);
    let mut vars_done = false;
    let mut seen_core = false;
    // Only an event that carries a command's headers before its own (PRIVATE_COMMAND)
    // takes the leading headers.
    let leading = extras
        .leading
        .as_ref()
        .filter(|_| matches!(step.items.first(), Some(Item::Header(..))));
    for item in &step.items {
        match item {
            Item::Core(name) => {
                if !seen_core && let Some(leading) = leading {
                    for (n, v) in leading {
                        ev.push(n.clone(), v.clone());
                    }
                }
                seen_core = true;
                core(name, &mut ev)
            }
            Item::Header(_, _) if !seen_core && leading.is_some() => {}
            Item::Header(name, tpl) => {
                if name == "Hangup-Cause" && !ch.hangup_cause.is_empty() {
                    ev.push(name.clone(), ch.hangup_cause.clone());
                    continue;
                }
                if let Some((_, ov)) = extras.overrides.iter().find(|(n, _)| *n == name.as_str()) {
                    if let Some(v) = ov {
                        ev.push(name.clone(), v.clone());
                    }
                    continue;
                }
                if let Some(v) = tpl.resolve(&resolve) {
                    ev.push(name.clone(), v);
                }
            }
            Item::Profile(prefix) => {
                ch.profile.push_headers(prefix, &mut ev, true);
                if extras.force_vars
                    && !step.has_vars()
                    && *prefix == "Caller"
                    && ch.other_leg.is_none()
                {
                    push_vars(ch, &mut ev);
                    vars_done = true;
                }
            }
            Item::OtherLeg(kind) => {
                if let Some(p) = peer {
                    ev.push("Other-Type", kind.clone());
                    p.push_headers("Other-Leg", &mut ev, false);
                }
                if extras.force_vars && !step.has_vars() && !vars_done {
                    push_vars(ch, &mut ev);
                    vars_done = true;
                }
            }
            Item::Vars => {
                if !vars_done {
                    push_vars(ch, &mut ev);
                    vars_done = true;
                }
            }
            Item::RecordingVars => {
                for (n, v) in extras.recording_vars {
                    ev.push(format!("Recording-Variable-{n}"), v.clone());
                }
            }
        }
    }
    ev
}

fn push_vars(ch: &Channel, ev: &mut Event) {
    for (n, v) in &ch.vars {
        ev.push(format!("variable_{n}"), v.clone());
    }
}

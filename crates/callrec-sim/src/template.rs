//! Event templates derived from the reference captures.
//!
//! For each kind of channel the captures show (a loopback leg, a SIP caller, a SIP callee,
//! a feature-code leg), the channel's events are turned into [`Step`]s: the event's header
//! layout with every identity (UUIDs, numbers, names, host, times) replaced by a [`Tok`]en,
//! and its channel variables replaced by the *changes* the switch made to them since the
//! previous event of that channel. A simulated channel replays steps in whatever order its
//! script needs, applying the changes to its own variables, so header names, their order and
//! the variable set follow the real switch while every value is the simulated call's own.
//!
//! What a capture cannot know is generated instead: the caller-profile blocks (`Caller-*`,
//! `Other-Leg-*`), the recording headers and variables, and the CDR variables set at
//! `CHANNEL_HANGUP_COMPLETE`.

use crate::capture::{self, CaptureError, Frame};
use crate::event::CORE_HEADERS;

/// A value in a template: literal text or a reference to the simulated call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tok {
    /// This channel's UUID.
    Uuid,
    /// The other leg's UUID (loopback partner, bridged peer).
    Peer,
    /// `Core-UUID` of the running switch.
    CoreUuid,
    /// `FreeSWITCH-Hostname`.
    Hostname,
    /// `FreeSWITCH-IPv4`.
    Ipv4,
    /// Caller's number.
    CidNum,
    /// Caller's name.
    CidName,
    /// Dialled destination.
    Dest,
    /// Calling directory user (SIP `From` user).
    AUser,
    /// Called directory user.
    BUser,
    /// The calling user's directory name (`effective_caller_id_name`).
    AName,
    /// The called user's directory name.
    BName,
    /// The digits of a feature code (`48` of `*48`), as the dialplan's regex captures them.
    DestDigits,
    /// `session_id` variable.
    SessionId,
    /// SIP Call-ID of this leg.
    CallId,
    /// The UUID of the application being executed.
    AppUuid,
    /// A point of this channel's timeline, in one of the switch's formats.
    Time(TimeRef, TimeFmt),
}

/// Which instant a time token refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimeRef {
    Now,
    Created,
    Answered,
    Progress,
    ProgressMedia,
    Bridged,
    Hangup,
    LastHold,
}

/// How a time is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimeFmt {
    /// `1795533866509562`
    Micros,
    /// `1795533866`
    Epoch,
    /// `2026-11-24 15:24:26`
    Stamp,
    /// `Tue, 24 Nov 2026 15:24:26 GMT`
    Gmt,
    /// `Tue, 24 Nov 2026 15:24:26 +0000`
    Rfc2822,
}

/// One piece of a templated value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Part {
    Lit(String),
    Tok(Tok),
}

/// A templated header or variable value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Tpl(pub Vec<Part>);

impl Tpl {
    #[cfg(test)]
    pub fn lit(s: &str) -> Tpl {
        Tpl(vec![Part::Lit(s.to_string())])
    }

    /// True when the value is nothing but tokens: such a header is left out when the tokens
    /// resolve to nothing (a caller without a name has no `Caller-Caller-ID-Name`).
    pub fn is_pure_token(&self) -> bool {
        !self.0.is_empty() && self.0.iter().all(|p| matches!(p, Part::Tok(_)))
    }

    /// Fills in the tokens.
    pub fn resolve(&self, f: &dyn Fn(Tok) -> String) -> Option<String> {
        let mut out = String::new();
        for p in &self.0 {
            match p {
                Part::Lit(s) => out.push_str(s),
                Part::Tok(t) => out.push_str(&f(*t)),
            }
        }
        if out.is_empty() && self.is_pure_token() {
            None
        } else {
            Some(out)
        }
    }
}

/// One element of an event's layout.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Item {
    /// One of the thirteen standard headers, regenerated at emission.
    Core(&'static str),
    /// A header with a templated value.
    Header(String, Tpl),
    /// The caller profile with this prefix (`Caller`, or `Channel` in CHANNEL_DATA).
    Profile(&'static str),
    /// `Other-Type` and the `Other-Leg-*` profile of the peer.
    OtherLeg(String),
    /// The channel's variables as they are at emission time.
    Vars,
    /// `Recording-Variable-*` of the recording the event is about.
    RecordingVars,
}

/// A change the switch made to a channel's variables before firing an event.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum VarOp {
    /// Remove the variable (if present) and append it with this value, as
    /// `switch_channel_set_variable` does.
    Set(String, Tpl),
    /// Change the value where it stands.
    Update(String, Tpl),
    /// Remove the variable.
    Unset(String),
    /// Here the switch set variables the simulator supplies itself.
    Slot(Slot),
}

/// Variables the simulator supplies at the point the capture shows them being set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    /// The `{var=value,...}` of the originate command.
    Originate,
    /// `record_*` at RECORD_STOP.
    Record,
    /// The CDR variables at CHANNEL_HANGUP_COMPLETE.
    Cdr,
}

/// One event of a captured channel, ready to be replayed.
#[derive(Debug, Clone)]
pub(crate) struct Step {
    pub name: String,
    pub app: Option<String>,
    pub file: String,
    pub func: String,
    pub line: u32,
    pub items: Vec<Item>,
    pub ops: Vec<VarOp>,
    /// Events the dialplan fires right after this one without a channel (the API events
    /// of `${strftime(...)}`, `${user_data(...)}`...).
    pub after: Vec<Step>,
}

impl Step {
    /// `EVENT` or `EVENT:app` (`CHANNEL_EXECUTE:park`, `CUSTOM:sofia::reinvite`).
    pub fn label(&self) -> String {
        match &self.app {
            Some(a) => format!("{}:{a}", self.name),
            None => self.name.clone(),
        }
    }

    pub fn has_vars(&self) -> bool {
        self.items.contains(&Item::Vars)
    }
}

/// Where to find one captured channel and how to recognise its identities.
pub(crate) struct LegSource {
    pub capture: &'static str,
    pub data: &'static [u8],
    pub uuid: &'static str,
    /// Literal values in this capture and what they stand for, matched on whole tokens.
    pub literals: &'static [(&'static str, Tok)],
    /// Variables that the simulator sets itself (originate variables, recording and CDR
    /// variables): their changes are dropped from the template.
    pub runtime_vars: &'static [&'static str],
    /// Also take the `command/reply` that carries `CHANNEL_DATA` (outbound captures).
    pub with_channel_data: bool,
}

/// The captured events of one channel as steps.
#[derive(Debug, Clone)]
pub(crate) struct LegTemplate {
    pub steps: Vec<Step>,
}

/// A template could not be derived from the embedded captures.
#[derive(Debug, thiserror::Error)]
#[error("event template: {0}")]
pub struct TemplateError(pub String);

impl From<CaptureError> for TemplateError {
    fn from(e: CaptureError) -> Self {
        TemplateError(e.to_string())
    }
}

/// Variables the simulator computes at hangup (`switch_channel_set_timestamps`).
pub(crate) const CDR_VARS: &[&str] = &[
    "hangup_cause",
    "hangup_cause_q850",
    "digits_dialed",
    "start_stamp",
    "profile_start_stamp",
    "answer_stamp",
    "bridge_stamp",
    "hold_stamp",
    "progress_stamp",
    "progress_media_stamp",
    "hold_events",
    "end_stamp",
    "start_epoch",
    "start_uepoch",
    "profile_start_epoch",
    "profile_start_uepoch",
    "answer_epoch",
    "answer_uepoch",
    "bridge_epoch",
    "bridge_uepoch",
    "last_hold_epoch",
    "last_hold_uepoch",
    "hold_accum_seconds",
    "hold_accum_usec",
    "hold_accum_ms",
    "resurrect_epoch",
    "resurrect_uepoch",
    "progress_epoch",
    "progress_uepoch",
    "progress_media_epoch",
    "progress_media_uepoch",
    "end_epoch",
    "end_uepoch",
    "last_app",
    "last_arg",
    "caller_id",
    "duration",
    "billsec",
    "progresssec",
    "answersec",
    "waitsec",
    "progress_mediasec",
    "flow_billsec",
    "mduration",
    "billmsec",
    "progressmsec",
    "answermsec",
    "waitmsec",
    "progress_mediamsec",
    "flow_billmsec",
    "uduration",
    "billusec",
    "progressusec",
    "answerusec",
    "waitusec",
    "progress_mediausec",
    "flow_billusec",
];

/// Variables the recorder sets on the channel at RECORD_STOP.
pub(crate) const RECORD_VARS: &[&str] = &[
    "record_file_size",
    "RECORD_DISCARDED",
    "record_samples",
    "record_seconds",
    "record_ms",
    "record_completion_cause",
];

/// The instants of the captured channel, to recognise times in its values.
#[derive(Debug, Default, Clone)]
pub(crate) struct CapturedTimes {
    instants: Vec<(TimeRef, i64)>,
}

impl CapturedTimes {
    fn from_events(events: &[Vec<(String, String)>]) -> CapturedTimes {
        let mut t = CapturedTimes::default();
        let names = [
            ("Caller-Channel-Created-Time", TimeRef::Created),
            ("Caller-Channel-Answered-Time", TimeRef::Answered),
            ("Caller-Channel-Progress-Time", TimeRef::Progress),
            ("Caller-Channel-Progress-Media-Time", TimeRef::ProgressMedia),
            ("Caller-Channel-Bridged-Time", TimeRef::Bridged),
            ("Caller-Channel-Hangup-Time", TimeRef::Hangup),
            ("Caller-Channel-Last-Hold", TimeRef::LastHold),
        ];
        for ev in events {
            for (h, r) in names {
                if let Some((_, v)) = ev.iter().find(|(n, _)| n == h)
                    && let Ok(us) = v.parse::<i64>()
                    && us > 0
                    && !t.instants.iter().any(|(x, _)| *x == r)
                {
                    t.instants.push((r, us));
                }
            }
        }
        t
    }

    /// Which instant a value written in `fmt` stands for, preferring the event's own time.
    fn lookup(&self, value: &str, now: i64, fmt: TimeFmt) -> Option<TimeRef> {
        let render = |us: i64| render_time(us, fmt);
        if render(now) == value {
            return Some(TimeRef::Now);
        }
        self.instants
            .iter()
            .find(|(_, us)| render(*us) == value)
            .map(|(r, _)| *r)
    }
}

/// Writes `us` in `fmt`.
pub(crate) fn render_time(us: i64, fmt: TimeFmt) -> String {
    match fmt {
        TimeFmt::Micros => us.to_string(),
        TimeFmt::Epoch => (us / 1_000_000).to_string(),
        TimeFmt::Stamp => crate::clock::local_stamp(us),
        TimeFmt::Gmt => crate::clock::gmt_stamp(us),
        TimeFmt::Rfc2822 => crate::clock::rfc2822_stamp(us),
    }
}

/// API functions a dialplan calls through `${...}`: their API events belong to the channel
/// whose dialplan ran them.
const DIALPLAN_APIS: &[&str] = &["strftime", "user_data", "sofia_contact", "verto_contact"];

/// Builds the template of one captured channel.
pub(crate) fn extract(src: &LegSource) -> Result<LegTemplate, TemplateError> {
    let frames = capture::frames(src.capture, src.data)?;
    let mut events: Vec<Vec<(String, String)>> = Vec::new();
    // Dialplan API events, by the index of the leg event they follow.
    let mut after: Vec<(usize, Vec<(String, String)>)> = Vec::new();
    let mut last_channel: Option<String> = None;
    for f in frames.iter().filter(|f| is_leg_frame(f, src)) {
        let h = if f.content_type() == "text/event-plain" {
            f.event_headers()
        } else {
            channel_data_headers(f)
        };
        let uuid = h
            .iter()
            .find(|(n, _)| n == "Unique-ID" || n == "Channel-Unique-ID")
            .map(|(_, v)| v.clone());
        match uuid {
            Some(u) => {
                if u == src.uuid {
                    events.push(h);
                }
                last_channel = Some(u);
            }
            None => {
                let dialplan_api = h.first().is_some_and(|(_, v)| v == "API")
                    && h.iter()
                        .any(|(n, v)| n == "API-Command" && DIALPLAN_APIS.contains(&v.as_str()));
                if dialplan_api && last_channel.as_deref() == Some(src.uuid) && !events.is_empty() {
                    after.push((events.len() - 1, h));
                }
            }
        }
    }
    if events.is_empty() {
        return Err(TemplateError(format!(
            "{}: no events for channel {}",
            src.capture, src.uuid
        )));
    }
    let times = CapturedTimes::from_events(&events);
    let mut steps = Vec::with_capacity(events.len());
    let mut prev_vars: Vec<(String, String)> = Vec::new();
    for headers in &events {
        let step = extract_step(src, headers, &times, &mut prev_vars)?;
        steps.push(step);
    }
    for (i, headers) in after {
        let step = extract_step(src, &headers, &times, &mut Vec::new())?;
        steps[i].after.push(step);
    }
    Ok(LegTemplate { steps })
}

/// A step from one event, on its own (no preceding events to diff variables against).
pub(crate) fn step_from_headers(
    src: &LegSource,
    headers: &[(String, String)],
) -> Result<Step, TemplateError> {
    let times = CapturedTimes::from_events(&[headers.to_vec()]);
    extract_step(src, headers, &times, &mut Vec::new())
}

fn is_leg_frame(f: &Frame, src: &LegSource) -> bool {
    match f.content_type() {
        "text/event-plain" => true,
        "command/reply" => {
            src.with_channel_data && f.envelope.iter().any(|(n, _)| n == "Event-Name")
        }
        _ => false,
    }
}

/// The channel data of an outbound `connect` reply: the envelope itself, minus the framing.
fn channel_data_headers(f: &Frame) -> Vec<(String, String)> {
    f.envelope
        .iter()
        .filter(|(n, _)| {
            !matches!(
                n.as_str(),
                "Content-Type" | "Reply-Text" | "Socket-Mode" | "Control"
            )
        })
        .map(|(n, v)| (n.clone(), crate::wire::url_decode(v)))
        .collect()
}

fn extract_step(
    src: &LegSource,
    headers: &[(String, String)],
    times: &CapturedTimes,
    prev_vars: &mut Vec<(String, String)>,
) -> Result<Step, TemplateError> {
    // A PRIVATE_COMMAND event is a copy of the command event with the standard headers
    // added again at the end: the last block is the event's own.
    let core_start = headers
        .iter()
        .rposition(|(n, _)| n == "Event-Name")
        .unwrap_or(0);
    let get = |name: &str| {
        headers[core_start..]
            .iter()
            .find(|(n, _)| n == name)
            .or_else(|| headers.iter().find(|(n, _)| n == name))
            .map(|(_, v)| v.clone())
    };
    let name = get("Event-Name").ok_or_else(|| TemplateError("event without Event-Name".into()))?;
    let now: i64 = get("Event-Date-Timestamp")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let app = match name.as_str() {
        "CHANNEL_EXECUTE" | "CHANNEL_EXECUTE_COMPLETE" => get("Application"),
        "CUSTOM" => get("Event-Subclass"),
        _ => None,
    };
    let mut items = Vec::new();
    let mut vars = Vec::new();
    let mut in_profile: Option<&'static str> = None;
    let mut saw_recording_vars = false;
    let mut i = 0;
    while i < headers.len() {
        let (h, v) = &headers[i];
        i += 1;
        if i - 1 < core_start {
            items.push(Item::Header(h.clone(), tokenize(src, h, v, times, now)));
            continue;
        }
        if let Some(core) = CORE_HEADERS.iter().find(|c| **c == h.as_str()) {
            items.push(Item::Core(core));
            in_profile = None;
            continue;
        }
        if name == "CHANNEL_DATA" && h == "Channel-Direction" {
            items.push(Item::Profile("Channel"));
            in_profile = Some("Channel");
            continue;
        }
        if in_profile == Some("Channel") {
            if h == "Channel-Privacy-Hide-Number" {
                in_profile = None;
            }
            continue;
        }
        if let Some(rest) = h.strip_prefix("Caller-") {
            let _ = rest;
            if !matches!(items.last(), Some(Item::Profile("Caller"))) {
                items.push(Item::Profile("Caller"));
            }
            continue;
        }
        if h == "Other-Type" {
            items.push(Item::OtherLeg(v.clone()));
            continue;
        }
        if h.starts_with("Other-Leg-") {
            continue;
        }
        if let Some(var) = h.strip_prefix("variable_") {
            if !matches!(items.last(), Some(Item::Vars)) {
                items.push(Item::Vars);
            }
            vars.push((var.to_string(), v.clone()));
            continue;
        }
        if h.starts_with("Recording-Variable-") {
            if !saw_recording_vars {
                items.push(Item::RecordingVars);
                saw_recording_vars = true;
            }
            continue;
        }
        if h == "Record-File-Path" && !saw_recording_vars {
            items.push(Item::Header(h.clone(), tokenize(src, h, v, times, now)));
            // Recording variables follow the path; an event without any still has the slot.
            items.push(Item::RecordingVars);
            saw_recording_vars = true;
            continue;
        }
        items.push(Item::Header(h.clone(), tokenize(src, h, v, times, now)));
    }
    let ops = if items.contains(&Item::Vars) {
        let ops = var_ops(src, prev_vars, &vars, times, now);
        *prev_vars = vars;
        ops
    } else {
        Vec::new()
    };
    Ok(Step {
        file: get("Event-Calling-File").unwrap_or_default(),
        func: get("Event-Calling-Function").unwrap_or_default(),
        line: get("Event-Calling-Line-Number")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        name,
        app,
        items,
        ops,
        after: Vec::new(),
    })
}

fn runtime_slot(src: &LegSource, name: &str) -> Option<Slot> {
    if src.runtime_vars.contains(&name) {
        Some(Slot::Originate)
    } else if CDR_VARS.contains(&name) {
        Some(Slot::Cdr)
    } else if RECORD_VARS.contains(&name) {
        Some(Slot::Record)
    } else {
        None
    }
}

fn is_runtime_var(src: &LegSource, name: &str) -> bool {
    runtime_slot(src, name).is_some()
}

/// The changes that turn `prev` into `next`, knowing the switch only ever appends (a set
/// removes the old entry first) or updates in place.
fn var_ops(
    src: &LegSource,
    prev: &[(String, String)],
    next: &[(String, String)],
    times: &CapturedTimes,
    now: i64,
) -> Vec<VarOp> {
    let in_next = |n: &str| next.iter().any(|(m, _)| m == n);
    let kept: Vec<&(String, String)> = prev.iter().filter(|(n, _)| in_next(n)).collect();
    // The longest prefix of `next` that keeps `prev`'s order is what stayed in place.
    let mut split = 0;
    let mut k = 0;
    while split < next.len() {
        let name = &next[split].0;
        let Some(pos) = kept[k..].iter().position(|(n, _)| n == name) else {
            break;
        };
        k += pos + 1;
        split += 1;
    }
    // Kept variables skipped over in that walk were moved to the end (set again).
    let stayed: Vec<&str> = next[..split].iter().map(|(n, _)| n.as_str()).collect();
    let mut ops = Vec::new();
    for (n, _) in prev {
        if !in_next(n) && !is_runtime_var(src, n) {
            ops.push(VarOp::Unset(n.clone()));
        }
    }
    for (n, v) in &next[..split] {
        if is_runtime_var(src, n) {
            continue;
        }
        if let Some((_, old)) = prev.iter().find(|(m, _)| m == n)
            && old != v
        {
            ops.push(VarOp::Update(
                n.clone(),
                tokenize(src, &format!("variable_{n}"), v, times, now),
            ));
        }
    }
    for (n, v) in &next[split..] {
        if let Some(slot) = runtime_slot(src, n) {
            if !ops.contains(&VarOp::Slot(slot)) {
                ops.push(VarOp::Slot(slot));
            }
            continue;
        }
        let moved_or_new = !stayed.contains(&n.as_str());
        if moved_or_new {
            ops.push(VarOp::Set(
                n.clone(),
                tokenize(src, &format!("variable_{n}"), v, times, now),
            ));
        }
    }
    ops
}

/// Headers and variables whose value is a time.
fn time_format_of(header: &str, value: &str) -> Option<TimeFmt> {
    let digits = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
    if digits && value.len() == 16 {
        return Some(TimeFmt::Micros);
    }
    if digits && value.len() == 10 && (header.ends_with("epoch") || header.ends_with("Runtime")) {
        return Some(TimeFmt::Epoch);
    }
    let b = value.as_bytes();
    if value.len() == 19 && b[4] == b'-' && b[10] == b' ' && b[13] == b':' {
        return Some(TimeFmt::Stamp);
    }
    if value.ends_with(" GMT") && value.len() == 29 {
        return Some(TimeFmt::Gmt);
    }
    if value.ends_with(" +0000") && value.len() == 31 {
        return Some(TimeFmt::Rfc2822);
    }
    None
}

/// Replaces the capture's identities in `value` with tokens.
pub(crate) fn tokenize(
    src: &LegSource,
    header: &str,
    value: &str,
    times: &CapturedTimes,
    now: i64,
) -> Tpl {
    if let Some(fmt) = time_format_of(header, value) {
        // An unrecognised time (a registration, an INVITE stamp) is taken as "now".
        let r = times.lookup(value, now, fmt).unwrap_or(TimeRef::Now);
        return Tpl(vec![Part::Tok(Tok::Time(r, fmt))]);
    }
    if header == "variable_session_id" {
        return Tpl(vec![Part::Tok(Tok::SessionId)]);
    }
    if matches!(header, "Application-UUID") {
        return Tpl(vec![Part::Tok(Tok::AppUuid)]);
    }
    if header == "variable_DP_MATCH"
        && let Some(rest) = value.strip_prefix("ARRAY::")
        && let Some((dest, _)) = rest.split_once("|:")
        && src
            .literals
            .iter()
            .any(|(l, t)| *l == dest && *t == Tok::Dest)
    {
        return Tpl(vec![
            Part::Lit("ARRAY::".into()),
            Part::Tok(Tok::Dest),
            Part::Lit("|:".into()),
            Part::Tok(Tok::DestDigits),
        ]);
    }
    let mut lits: Vec<(&str, Tok)> = src.literals.to_vec();
    lits.push(("fs-lab", Tok::Hostname));
    lits.push(("192.0.2.2", Tok::Ipv4));
    lits.sort_by_key(|(l, _)| std::cmp::Reverse(l.len()));
    let mut parts = vec![Part::Lit(value.to_string())];
    for (lit, tok) in lits {
        parts = parts
            .into_iter()
            .flat_map(|p| match p {
                Part::Lit(s) => split_on(&s, lit, tok),
                t => vec![t],
            })
            .collect();
    }
    parts.retain(|p| !matches!(p, Part::Lit(s) if s.is_empty()));
    Tpl(parts)
}

/// Splits `s` around whole-token occurrences of `lit` (not glued to letters or digits).
fn split_on(s: &str, lit: &str, tok: Tok) -> Vec<Part> {
    let mut out = Vec::new();
    let mut rest = s;
    let is_word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    let mut consumed_prev: Option<char> = None;
    loop {
        let Some(pos) = rest.find(lit) else {
            out.push(Part::Lit(rest.to_string()));
            break;
        };
        let before = if pos == 0 {
            consumed_prev
        } else {
            rest[..pos].chars().next_back()
        };
        let after = rest[pos + lit.len()..].chars().next();
        // UUIDs and other long identities match anywhere; short ones only as whole words.
        let whole = lit.len() >= 20 || (!is_word(before) && !is_word(after));
        if whole {
            out.push(Part::Lit(rest[..pos].to_string()));
            out.push(Part::Tok(tok));
            consumed_prev = lit.chars().next_back();
            rest = &rest[pos + lit.len()..];
        } else {
            let step = pos + lit.chars().next().map(char::len_utf8).unwrap_or(1);
            out.push(Part::Lit(rest[..step].to_string()));
            consumed_prev = rest[..step].chars().next_back();
            rest = &rest[step..];
        }
    }
    // Merge adjacent literals produced by partial matches.
    let mut merged: Vec<Part> = Vec::new();
    for p in out {
        match (merged.last_mut(), p) {
            (Some(Part::Lit(a)), Part::Lit(b)) => a.push_str(&b),
            (_, p) => merged.push(p),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: LegSource = LegSource {
        capture: "test",
        data: b"",
        uuid: "u",
        literals: &[("1001", Tok::AUser), ("1000", Tok::BUser)],
        runtime_vars: &[],
        with_channel_data: false,
    };

    fn tok(value: &str) -> Tpl {
        tokenize(&SRC, "x", value, &CapturedTimes::default(), 0)
    }

    #[test]
    fn short_literals_match_only_whole_words() {
        assert_eq!(
            tok("insert/127.0.0.1-last_dial/1001/1000"),
            Tpl(vec![
                Part::Lit("insert/127.0.0.1-last_dial/".into()),
                Part::Tok(Tok::AUser),
                Part::Lit("/".into()),
                Part::Tok(Tok::BUser)
            ])
        );
        assert_eq!(tok("10000"), Tpl::lit("10000"));
        assert_eq!(
            tok("1000-0x56345d2322d0"),
            Tpl(vec![
                Part::Tok(Tok::BUser),
                Part::Lit("-0x56345d2322d0".into())
            ])
        );
    }

    #[test]
    fn a_pure_token_value_that_resolves_empty_is_omitted() {
        let t = Tpl(vec![Part::Tok(Tok::CidName)]);
        assert_eq!(t.resolve(&|_| String::new()), None);
        assert_eq!(t.resolve(&|_| "Alice".into()), Some("Alice".into()));
        assert_eq!(
            Tpl::lit("").resolve(&|_| String::new()),
            Some(String::new())
        );
    }

    #[test]
    fn var_ops_see_appends_moves_and_removals() {
        let prev: Vec<(String, String)> = [("a", "1"), ("b", "2"), ("c", "3")]
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        let next: Vec<(String, String)> = [("a", "1"), ("c", "9"), ("b", "2"), ("d", "4")]
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        let ops = var_ops(&SRC, &prev, &next, &CapturedTimes::default(), 0);
        assert_eq!(
            ops,
            vec![
                VarOp::Update("c".into(), Tpl::lit("9")),
                VarOp::Set("b".into(), Tpl::lit("2")),
                VarOp::Set("d".into(), Tpl::lit("4")),
            ]
        );
    }
}

//! Playing template steps on simulated channels: the one place where a channel's variables,
//! timeline and media change and its events are fired.

use crate::channel::{Channel, Extras, RenderCtx, render};
use crate::clock::{Micros, local_stamp};
use crate::scripts::{LegId, library};
use crate::switch::Switch;
use crate::template::{Slot, Step};

impl Switch {
    /// Plays every step of a segment of `leg` on channel `uuid`.
    pub(crate) fn play(&mut self, uuid: &str, leg: LegId, segment: &str, extras: &Extras) {
        let Ok(lib) = library() else {
            return;
        };
        for &i in lib.leg(leg).segment(segment) {
            self.play_step(uuid, leg, i, extras);
        }
    }

    /// Plays the `n`th step of a segment only.
    pub(crate) fn play_nth(
        &mut self,
        uuid: &str,
        leg: LegId,
        segment: &str,
        n: usize,
        extras: &Extras,
    ) {
        let Ok(lib) = library() else {
            return;
        };
        if let Some(&i) = lib.leg(leg).segment(segment).get(n) {
            self.play_step(uuid, leg, i, extras);
        }
    }

    /// Plays steps `from..` of a segment.
    pub(crate) fn play_from(
        &mut self,
        uuid: &str,
        leg: LegId,
        segment: &str,
        from: usize,
        extras: &Extras,
    ) {
        let Ok(lib) = library() else {
            return;
        };
        for &i in lib.leg(leg).segment(segment).iter().skip(from) {
            self.play_step(uuid, leg, i, extras);
        }
    }

    /// Applies a segment's variable changes without firing its events (media negotiated
    /// without the event the capture happened to show them on).
    pub(crate) fn apply_silently(&mut self, uuid: &str, leg: LegId, segment: &str) {
        let Ok(lib) = library() else {
            return;
        };
        let Some(mut ch) = self.channels.remove(uuid) else {
            return;
        };
        for &i in lib.leg(leg).segment(segment) {
            if !ch.applied.get(i).copied().unwrap_or(false) {
                self.apply_step_ops(&mut ch, leg, i, lib.leg(leg).step(i));
            }
        }
        self.channels.insert(uuid.to_string(), ch);
    }

    fn apply_step_ops(&mut self, ch: &mut Channel, leg: LegId, i: usize, step: &Step) {
        let own = ch.template == leg;
        let done_before = own && ch.applied.get(i).copied().unwrap_or(false);
        let now = self.now();
        let ctx = RenderCtx {
            now,
            core_uuid: &self.identity.core_uuid,
            hostname: &self.identity.hostname,
            ipv4: &self.identity.ipv4,
        };
        let record_vars = std::mem::take(&mut ch.pending_record_vars);
        let cdr = cdr_vars(ch, now);
        let originate = ch.originate_vars.clone();
        ch.apply_ops(step, &ctx, done_before, &mut |slot, ch| match slot {
            Slot::Originate => {
                for (n, v) in &originate {
                    ch.set_var(n, v.clone());
                }
            }
            Slot::Record => {
                for (n, v) in &record_vars {
                    ch.set_var(n, v.clone());
                }
            }
            Slot::Cdr => {
                for (n, v) in &cdr {
                    ch.set_var(n, v.clone());
                }
            }
        });
        if own && let Some(a) = ch.applied.get_mut(i) {
            *a = true;
        }
    }

    /// Plays one step: settles recordings, moves the timeline, applies the variable changes
    /// (catching up skipped steps first), renders the event and fires it.
    pub(crate) fn play_step(&mut self, uuid: &str, leg: LegId, i: usize, extras: &Extras) {
        if let Some(ev) = self.step_event(uuid, leg, i, extras) {
            let enters_hangup =
                ev.name() == "CHANNEL_STATE" && ev.header("Channel-State") == Some("CS_HANGUP");
            let answers = ev.name() == "CHANNEL_ANSWER";
            self.fire(ev);
            if answers {
                self.api_on_answer(uuid);
            }
            if let Ok(lib) = library() {
                for step in &lib.leg(leg).step(i).after {
                    self.fire_for(uuid, step);
                }
            }
            if enters_hangup {
                self.remove_media_bugs(uuid);
            }
        }
    }

    /// Runs the API commands in the channel's variables named `api_on_answer…`, as
    /// `switch_channel_perform_mark_answered` does right after firing CHANNEL_ANSWER (in the
    /// channel's thread, before any frame is read). Variables are not expanded here.
    fn api_on_answer(&mut self, uuid: &str) {
        let Some(ch) = self.channels.get(uuid) else {
            return;
        };
        let commands: Vec<String> = ch
            .vars
            .iter()
            .filter(|(name, _)| {
                name.get(..13)
                    .is_some_and(|p| p.eq_ignore_ascii_case("api_on_answer"))
            })
            .map(|(_, value)| value.clone())
            .collect();
        if commands.is_empty() {
            return;
        }
        // `switch_channel_perform_mark_answered` sets this just before it runs them, so the
        // RECORD_START of a recording they start carries it (the real switch, in the
        // `armed_by_the_dialplan` comparison); the captured steps set it a moment later.
        if let Some(ch) = self.channels.get_mut(uuid) {
            ch.set_var("endpoint_disposition", "ANSWER");
        }
        for command in commands {
            let (cmd, args) = command.split_once(' ').unwrap_or((command.as_str(), ""));
            let _ = self.api(cmd, args);
        }
    }

    /// Fires a channel-less event the channel's dialplan caused (its API calls), with the
    /// channel's identities filled in.
    fn fire_for(&mut self, uuid: &str, step: &Step) {
        let Some(ch) = self.channels.get(uuid).cloned() else {
            return;
        };
        let now = self.now();
        let ctx = RenderCtx {
            now,
            core_uuid: &self.identity.core_uuid.clone(),
            hostname: &self.identity.hostname.clone(),
            ipv4: &self.identity.ipv4.clone(),
        };
        let ev = render(
            &ch,
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

    /// Like `play`, for a one-step segment whose event is not fired but returned
    /// (CHANNEL_DATA goes into the reply to `connect`).
    pub(crate) fn render_step_silently(
        &mut self,
        uuid: &str,
        leg: LegId,
        segment: &str,
    ) -> Option<crate::event::Event> {
        let lib = library().ok()?;
        let i = *lib.leg(leg).segment(segment).first()?;
        self.step_event(uuid, leg, i, &Extras::default())
    }

    fn step_event(
        &mut self,
        uuid: &str,
        leg: LegId,
        i: usize,
        extras: &Extras,
    ) -> Option<crate::event::Event> {
        let lib = library().ok()?;
        let template = lib.leg(leg);
        let step = template.step(i);
        let mut ch = self.channels.remove(uuid)?;
        let now = self.now();
        let media_before = ch.media();
        let answered_before = ch.answered;
        for r in &mut ch.recordings {
            r.settle(now, r.gate(media_before, answered_before));
        }
        advance_timeline(&mut ch, step, now);
        if ch.template == leg && !template.skippable[i] {
            for j in 0..i {
                if template.skippable[j] && !ch.applied.get(j).copied().unwrap_or(true) {
                    self.apply_step_ops(&mut ch, leg, j, template.step(j));
                }
            }
        }
        self.apply_step_ops(&mut ch, leg, i, step);
        if step.name == "CHANNEL_EXECUTE" {
            ch.app_uuid = uuid::Uuid::new_v4().to_string();
        }
        let peer = match &ch.other_snapshot {
            Some(snapshot) => Some(snapshot.clone()),
            None => ch
                .other_leg
                .as_ref()
                .and_then(|u| self.channels.get(u))
                .map(|p| {
                    let mut profile = p.profile.clone();
                    if let Some(l) = &ch.other_logical {
                        profile.logical_direction = l.clone();
                    }
                    profile
                }),
        };
        let ctx = RenderCtx {
            now,
            core_uuid: &self.identity.core_uuid.clone(),
            hostname: &self.identity.hostname.clone(),
            ipv4: &self.identity.ipv4.clone(),
        };
        let ev = render(&ch, step, peer.as_ref(), &ctx, extras, &mut |name, ev| {
            let v = self.core_header(name, &step.name, &step.file, &step.func, step.line, now);
            ev.push(name.to_string(), v);
        });
        if let Some(v) = ev.header("Channel-State") {
            ch.channel_state = v.to_string();
        }
        if let Some(v) = ev.header("Channel-Call-State") {
            ch.call_state = v.to_string();
        }
        if let Some(v) = ev.header("Answer-State") {
            ch.answer_state = v.to_string();
        }
        if step.name == "CHANNEL_EXECUTE" {
            ch.application = step.app.clone().unwrap_or_default();
            ch.application_data = ev.header("Application-Data").unwrap_or("").to_string();
            ch.last_app = ch.application.clone();
            ch.last_arg = ch.application_data.clone();
        }
        self.channels.insert(uuid.to_string(), ch);
        Some(ev)
    }
}

/// What happens to a channel's timeline and media as the switch fires an event.
fn advance_timeline(ch: &mut Channel, step: &Step, now: Micros) {
    let t = &mut ch.profile.times;
    match step.name.as_str() {
        "CHANNEL_ANSWER" => {
            if t.answered == 0 {
                t.answered = now;
            }
            ch.answered = true;
        }
        "CHANNEL_PROGRESS" if t.progress == 0 => t.progress = now,
        "CHANNEL_PROGRESS_MEDIA" => {
            if t.progress_media == 0 {
                t.progress_media = now;
            }
            ch.early_media = true;
        }
        "CHANNEL_BRIDGE" => t.bridged = now,
        "CHANNEL_HOLD" => {
            // A phone's re-INVITE marks the hold (switch_channel_mark_hold); `uuid_hold`
            // on a loopback leg fires the event from switch_ivr.c and marks nothing, but
            // media stops either way.
            if step.file == "switch_channel.c" {
                t.last_hold = now;
            }
            ch.held = true;
            ch.hold_started = now;
        }
        "CHANNEL_UNHOLD" => {
            if ch.held {
                t.hold_accum += now - ch.hold_started;
                ch.hold_events.push((ch.hold_started, now));
            }
            ch.held = false;
        }
        "CHANNEL_HANGUP" => {
            if t.hangup == 0 {
                t.hangup = now;
            }
            ch.hungup = true;
            if ch.hangup_cause.is_empty() {
                ch.hangup_cause = "NORMAL_CLEARING".into();
            }
        }
        _ => {}
    }
}

/// The CDR variables `switch_channel_set_timestamps` sets at hangup, in its order.
pub(crate) fn cdr_vars(ch: &Channel, now: Micros) -> Vec<(String, String)> {
    let t = &ch.profile.times;
    let end = if t.hangup > 0 { t.hangup } else { now };
    let secs = |us: Micros| us / 1_000_000;
    let millis = |us: Micros| us / 1000;
    let mut v: Vec<(String, String)> = Vec::new();
    let mut put = |n: &str, val: String| v.push((n.to_string(), val));
    let cause = if ch.hangup_cause.is_empty() {
        "NORMAL_CLEARING"
    } else {
        ch.hangup_cause.as_str()
    };
    put("hangup_cause", cause.to_string());
    put("hangup_cause_q850", q850(cause).to_string());
    put("digits_dialed", "none".into());
    put("start_stamp", local_stamp(t.created));
    put("profile_start_stamp", local_stamp(t.created));
    if t.answered > 0 {
        put("answer_stamp", local_stamp(t.answered));
    }
    if t.bridged > 0 {
        put("bridge_stamp", local_stamp(t.bridged));
    }
    if t.last_hold > 0 {
        put("hold_stamp", local_stamp(t.last_hold));
    }
    if t.progress > 0 {
        put("progress_stamp", local_stamp(t.progress));
    }
    if t.progress_media > 0 {
        put("progress_media_stamp", local_stamp(t.progress_media));
    }
    if t.last_hold > 0 && !ch.hold_events.is_empty() {
        let list: Vec<String> = ch
            .hold_events
            .iter()
            .map(|(a, b)| format!("{{{a},{b}}}"))
            .collect();
        put("hold_events", format!("{{{}}}", list.join(",")));
    }
    put("end_stamp", local_stamp(end));
    for (name, at) in [
        ("start", t.created),
        ("profile_start", t.created),
        ("answer", t.answered),
        ("bridge", t.bridged),
        ("last_hold", t.last_hold),
    ] {
        put(&format!("{name}_epoch"), secs(at).to_string());
        put(&format!("{name}_uepoch"), at.to_string());
    }
    put("hold_accum_seconds", secs(t.hold_accum).to_string());
    put("hold_accum_usec", t.hold_accum.to_string());
    put("hold_accum_ms", millis(t.hold_accum).to_string());
    for (name, at) in [
        ("resurrect", 0),
        ("progress", t.progress),
        ("progress_media", t.progress_media),
        ("end", end),
    ] {
        put(&format!("{name}_epoch"), secs(at).to_string());
        put(&format!("{name}_uepoch"), at.to_string());
    }
    if !ch.last_app.is_empty() {
        put("last_app", ch.last_app.clone());
    }
    if !ch.last_arg.is_empty() {
        put("last_arg", ch.last_arg.clone());
    }
    // `switch_channel_set_timestamps`: the number alone when there is no name.
    let caller_id = if ch.profile.caller_id_name.is_empty() {
        ch.profile.caller_id_number.clone()
    } else {
        format!(
            "\"{}\" <{}>",
            ch.profile.caller_id_name, ch.profile.caller_id_number
        )
    };
    put("caller_id", caller_id);
    // Differences of truncated times, as the switch computes them.
    let diff = |a: Micros, b: Micros, unit: Micros| {
        if a > 0 && b > 0 {
            a / unit - b / unit
        } else {
            0
        }
    };
    let created = t.created;
    let answered = t.answered;
    let spans = |unit: Micros| {
        [
            diff(end, created, unit),
            diff(end, answered, unit),
            diff(t.progress, created, unit),
            diff(answered, created, unit),
            diff(t.bridged, created, unit),
            diff(t.progress_media, created, unit),
            diff(end, created, unit),
        ]
    };
    let [d, b, p, a, w, pm, f] = spans(1_000_000);
    put("duration", d.to_string());
    put("billsec", b.to_string());
    put("progresssec", p.to_string());
    put("answersec", a.to_string());
    put("waitsec", w.to_string());
    put("progress_mediasec", pm.to_string());
    put("flow_billsec", f.to_string());
    let [d, b, p, a, w, pm, f] = spans(1000);
    put("mduration", d.to_string());
    put("billmsec", b.to_string());
    put("progressmsec", p.to_string());
    put("answermsec", a.to_string());
    put("waitmsec", w.to_string());
    put("progress_mediamsec", pm.to_string());
    put("flow_billmsec", f.to_string());
    let [d, b, p, a, w, pm, f] = spans(1);
    put("uduration", d.to_string());
    put("billusec", b.to_string());
    put("progressusec", p.to_string());
    put("answerusec", a.to_string());
    put("waitusec", w.to_string());
    put("progress_mediausec", pm.to_string());
    put("flow_billusec", f.to_string());
    v
}

/// Q.850 code of a hangup cause (`switch_channel_cause_q850`: the switch's own causes
/// above 127, such as `ORIGINATOR_CANCEL` or `SYSTEM_SHUTDOWN`, report 16).
pub(crate) fn q850(cause: &str) -> u32 {
    match cause {
        "UNALLOCATED_NUMBER" => 1,
        "USER_BUSY" => 17,
        "NO_USER_RESPONSE" => 18,
        "NO_ANSWER" => 19,
        "CALL_REJECTED" => 21,
        "DESTINATION_OUT_OF_ORDER" => 27,
        "NORMAL_UNSPECIFIED" => 31,
        _ => 16,
    }
}

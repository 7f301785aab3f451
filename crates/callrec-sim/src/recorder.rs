//! `uuid_record` on the switch: starting, pausing, masking and stopping recordings, with the
//! events and channel variables the captures show.

use crate::channel::{Channel, Extras, LegKind};
use crate::recording::{
    ActiveRecording, CompletionCause, RecordingInfo, SAMPLE_RATE, create_header_only, write_final,
};
use crate::scripts::LegId;
use crate::switch::Switch;

/// What `uuid_record` was asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecordAction {
    Stop,
    Pause,
    Resume,
    Mask,
    Unmask,
}

impl RecordAction {
    pub fn parse(word: &str) -> Option<RecordAction> {
        match word.to_ascii_lowercase().as_str() {
            "stop" => Some(RecordAction::Stop),
            "pause" => Some(RecordAction::Pause),
            "resume" => Some(RecordAction::Resume),
            "mask" => Some(RecordAction::Mask),
            "unmask" => Some(RecordAction::Unmask),
            _ => None,
        }
    }

    /// The reply when the channel has no such recording (`mod_commands.c`).
    pub fn failure(self) -> &'static str {
        match self {
            RecordAction::Stop => "-ERR Cannot stop record session!\n",
            RecordAction::Pause => "-ERR Cannot pause recording session!\n",
            RecordAction::Resume => "-ERR Cannot resume recording session!\n",
            RecordAction::Mask => "-ERR Cannot mask recording session!\n",
            RecordAction::Unmask => "-ERR Cannot unmask recording session!\n",
        }
    }
}

/// The leg whose captured RECORD_START/STOP events a channel of this kind replays.
fn record_leg(kind: LegKind) -> LegId {
    match kind {
        LegKind::LoopA | LegKind::LoopB => LegId::LoopA,
        LegKind::SipCaller | LegKind::SipCallee | LegKind::SipFeature => LegId::SipA,
    }
}

/// The headers of a RECORD_* or MEDIA_BUG_* event that say which channel it is and where
/// that channel is, taken from the channel itself rather than from the captured event it
/// replays. The captures only recorded the loopback A leg and the SIP caller, and only ever
/// saw a recording stop at hangup: without this a recorded loopback B leg would call itself
/// `loopback/<ext>-a`, `outbound`, and a `uuid_record stop` on a live call would say
/// `CS_HANGUP` and carry a `Hangup-Cause` (both seen against the real switch,
/// `tests/fixtures/freeswitch/README.md`).
fn own_headers(ch: &Channel) -> Vec<(&'static str, Option<String>)> {
    let mut own = vec![
        ("Channel-Name", Some(ch.profile.channel_name.clone())),
        ("Call-Direction", Some(ch.profile.direction.clone())),
        (
            "Presence-Call-Direction",
            Some(ch.profile.direction.clone()),
        ),
    ];
    if !ch.hungup {
        own.extend([
            ("Channel-State", Some(ch.channel_state.clone())),
            (
                "Channel-State-Number",
                state_number(&ch.channel_state).map(|n| n.to_string()),
            ),
            ("Channel-Call-State", Some(ch.call_state.clone())),
            ("Answer-State", Some(ch.answer_state.clone())),
            ("Hangup-Cause", None),
        ]);
    }
    own
}

/// `switch_channel_state_t`'s number for a state name.
fn state_number(state: &str) -> Option<u8> {
    const STATES: [&str; 13] = [
        "CS_NEW",
        "CS_INIT",
        "CS_ROUTING",
        "CS_SOFT_EXECUTE",
        "CS_EXECUTE",
        "CS_EXCHANGE_MEDIA",
        "CS_PARK",
        "CS_CONSUME_MEDIA",
        "CS_HIBERNATE",
        "CS_RESET",
        "CS_HANGUP",
        "CS_REPORTING",
        "CS_DESTROY",
    ];
    STATES
        .iter()
        .position(|s| *s == state)
        .and_then(|n| u8::try_from(n).ok())
}

fn truthy(v: &str) -> bool {
    matches!(
        v.to_ascii_lowercase().as_str(),
        "true" | "yes" | "on" | "1" | "enabled" | "active" | "allow"
    )
}

impl Switch {
    /// `uuid_record <uuid> start <path> [limit] [{vars}]`; `Err` carries the reply.
    pub(crate) fn record_start(
        &mut self,
        uuid: &str,
        path: &str,
        limit_secs: u32,
        vars: Vec<(String, String)>,
    ) -> Result<(), &'static str> {
        let Some(ch) = self.channels.get(uuid) else {
            return Err("-ERR Cannot locate session!\n");
        };
        if ch.hungup {
            return Err("-ERR Cannot record session!\n");
        }
        if ch.recordings.iter().any(|r| r.path == path) {
            // "Already recording": the switch logs a warning and reports success.
            return Ok(());
        }
        let kind = ch.kind;
        let lookup = |name: &str| {
            vars.iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
                .or_else(|| {
                    ch.vars
                        .iter()
                        .find(|(n, _)| n.eq_ignore_ascii_case(name))
                        .map(|(_, v)| v.as_str())
                })
        };
        let min_sec = lookup("RECORD_MIN_SEC")
            .and_then(|v| v.trim().parse::<i64>().ok())
            .filter(|v| *v >= 0)
            .unwrap_or(0) as u32;
        let channels = if lookup("RECORD_STEREO").is_some_and(truthy) {
            2
        } else {
            1
        };
        let answer_req = lookup("RECORD_ANSWER_REQ").is_some_and(truthy);
        // Recording needs media whether or not the bug waits for the answer
        // (`switch_ivr_record_session_event` pre-answers first): an unanswered leg calling
        // the switch is pre-answered; one the switch is calling, with no media yet, refuses
        // (measured on the real switch with a SIP phone).
        let needs_early_media = !ch.answered && !ch.early_media;
        if needs_early_media && kind == LegKind::SipCallee {
            return Err("-ERR Cannot record session!\n");
        }
        let file = if std::path::Path::new(path).is_absolute() {
            std::path::PathBuf::from(path)
        } else {
            self.cfg.spool_dir.join(path)
        };
        if let Err(e) = create_header_only(&file, channels) {
            tracing::warn!(path, error = %e, "cannot open recording file");
            return Err("-ERR Cannot record session!\n");
        }
        // Recording needs media: an unanswered SIP leg is pre-answered (early media).
        if needs_early_media && kind == LegKind::SipCaller {
            self.play(uuid, LegId::SipA, "early", &Extras::default());
        }
        let now = self.now();
        // Measured against the real switch: a loopback A leg's recording loses its first
        // half second, the B leg's (the one playing the extension's audio) nothing.
        let pre_buffer = if kind == LegKind::LoopB {
            0
        } else {
            crate::clock::micros(self.cfg.record_pre_buffer)
        };
        let rec = ActiveRecording {
            path: path.to_string(),
            file,
            vars: vars.clone(),
            started: now,
            channels,
            min_sec,
            paused: false,
            masked: false,
            mark: now,
            pre_buffer_left: pre_buffer,
            stretches: Vec::new(),
            answer_req,
        };
        let Some(ch) = self.channels.get_mut(uuid) else {
            return Err("-ERR Cannot locate session!\n");
        };
        ch.recordings.push(rec);
        let mut overrides = vec![
            ("Record-File-Path", Some(path.to_string())),
            ("Media-Bug-Target", Some(path.to_string())),
        ];
        overrides.extend(own_headers(ch));
        let extras = Extras {
            overrides,
            recording_vars: &vars,
            force_vars: false,
            leading: None,
        };
        self.play(uuid, record_leg(kind), "record_start", &extras);
        if limit_secs > 0 {
            // `stop_time = switch_epoch_time_now() + limit`, checked on every frame
            // (switch_core_media_bug.c): the recording stops as the clock reaches the whole
            // second `limit` after the one it started in, so it lasts `limit - 1` to `limit`
            // seconds (measured: 1.5 s for a limit of 2).
            let stop_at = (now.div_euclid(1_000_000) + i64::from(limit_secs)) * 1_000_000;
            let (u, p) = (uuid.to_string(), path.to_string());
            self.schedule_in(
                stop_at - now,
                Box::new(move |sw: &mut Switch| {
                    sw.stop_recording(&u, &p, CompletionCause::SuccessMaxtime, None);
                }),
            );
        }
        self.bump();
        Ok(())
    }

    /// `uuid_record <uuid> stop|pause|resume|mask|unmask <path>` (`all` stops every one).
    pub(crate) fn record_action(
        &mut self,
        uuid: &str,
        action: RecordAction,
        path: &str,
    ) -> Result<(), &'static str> {
        let Some(ch) = self.channels.get_mut(uuid) else {
            return Err("-ERR Cannot locate session!\n");
        };
        if action == RecordAction::Stop {
            let paths: Vec<String> = ch
                .recordings
                .iter()
                .filter(|r| path == "all" || r.path == path)
                .map(|r| r.path.clone())
                .collect();
            if paths.is_empty() {
                return Err(action.failure());
            }
            // `record_callback` closing the file on a channel still up: `success-maxtime`,
            // whatever stopped it.
            for p in paths {
                self.stop_recording(uuid, &p, CompletionCause::SuccessMaxtime, None);
            }
            return Ok(());
        }
        let now = self.clock.now();
        let media = ch.media();
        let answered = ch.answered;
        let Some(rec) = ch.recordings.iter_mut().find(|r| r.path == path) else {
            return Err(action.failure());
        };
        rec.settle(now, rec.gate(media, answered));
        match action {
            RecordAction::Pause => rec.paused = true,
            RecordAction::Resume => rec.paused = false,
            RecordAction::Mask => rec.masked = true,
            RecordAction::Unmask => rec.masked = false,
            RecordAction::Stop => {}
        }
        self.bump();
        Ok(())
    }

    /// A channel entering CS_HANGUP loses its media bugs: every recording on it is closed
    /// and gets RECORD_STOP and MEDIA_BUG_STOP, on whichever leg it runs and whoever hung
    /// up. `switch_core_session_hangup_state` calls `switch_core_media_bug_remove_all`
    /// right after the CHANNEL_STATE of CS_HANGUP and before the channel's
    /// CHANNEL_CALLSTATE HANGUP, CS_REPORTING and CHANNEL_HANGUP_COMPLETE, which is where
    /// every capture shows them.
    pub(crate) fn remove_media_bugs(&mut self, uuid: &str) {
        let Some(ch) = self.channels.get(uuid) else {
            return;
        };
        // During `fsctl shutdown` the loopback A leg's events are those of the `shutdown`
        // capture.
        let leg = (self.shutting_down && ch.kind == LegKind::LoopA).then_some(LegId::ShutA);
        let paths: Vec<String> = ch.recordings.iter().map(|r| r.path.clone()).collect();
        for p in paths {
            self.stop_recording(uuid, &p, CompletionCause::SuccessSilence, leg);
        }
    }

    /// Closes the file (or deletes it below RECORD_MIN_SEC), sets the `record_*` channel
    /// variables and fires RECORD_STOP and MEDIA_BUG_STOP.
    pub(crate) fn stop_recording(
        &mut self,
        uuid: &str,
        path: &str,
        cause: CompletionCause,
        leg: Option<LegId>,
    ) {
        let now = self.now();
        let Some(ch) = self.channels.get_mut(uuid) else {
            return;
        };
        let Some(pos) = ch.recordings.iter().position(|r| r.path == path) else {
            return;
        };
        let media = ch.media();
        let mut rec = ch.recordings.remove(pos);
        rec.settle(now, rec.gate(media, ch.answered));
        let kind = ch.kind;
        let samples = rec.samples();
        let size = match write_final(&rec) {
            Ok(size) => size,
            Err(e) => {
                tracing::warn!(path, error = %e, "cannot write recording");
                44 + samples * 2 * rec.channels as u64
            }
        };
        let too_short = rec.min_sec > 0 && samples < rec.min_sec as u64 * SAMPLE_RATE as u64;
        let cause = if too_short {
            if let Err(e) = std::fs::remove_file(&rec.file) {
                tracing::warn!(path, error = %e, "cannot delete short recording");
            }
            CompletionCause::InputTooShort
        } else {
            cause
        };
        let mut vars = vec![("record_file_size".to_string(), size.to_string())];
        if too_short {
            vars.push(("RECORD_DISCARDED".into(), "true".into()));
        }
        vars.push(("record_samples".into(), samples.to_string()));
        vars.push((
            "record_seconds".into(),
            (samples / SAMPLE_RATE as u64).to_string(),
        ));
        vars.push((
            "record_ms".into(),
            (samples * 1000 / SAMPLE_RATE as u64).to_string(),
        ));
        vars.push(("record_completion_cause".into(), cause.as_str().to_string()));
        ch.pending_record_vars = vars;
        let mut overrides = vec![
            ("Record-File-Path", Some(path.to_string())),
            ("Media-Bug-Target", Some(path.to_string())),
            ("Record-Completion-Cause", Some(cause.as_str().to_string())),
        ];
        overrides.extend(own_headers(ch));
        let extras = Extras {
            overrides,
            recording_vars: &rec.vars,
            force_vars: false,
            leading: None,
        };
        let leg = leg.unwrap_or(record_leg(kind));
        self.play(uuid, leg, "record_stop", &extras);
        self.recordings.push(RecordingInfo {
            uuid: uuid.to_string(),
            path: path.to_string(),
            vars: rec.vars.clone(),
            started: rec.started,
            stopped: Some(now),
            samples,
            channels: rec.channels,
            cause: Some(cause),
            discarded: too_short,
        });
        self.bump();
    }
}

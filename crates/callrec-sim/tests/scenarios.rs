//! The scenarios of the captures, run on the simulator, give the same events as the real
//! switch: per channel the same event names (a state change named with its state) in the
//! same order with the same header names, and the same non-channel events (API,
//! BACKGROUND_JOB, SHUTDOWN, MODULE_UNLOAD).
//!
//! The captures only ever record the caller's leg, so a per-channel comparison alone says
//! nothing about a recorded callee. Every comparison therefore also checks that each leg's
//! recordings stop between the two of its own events where the captures' recorded legs stop
//! theirs, and some scenarios are run again with the other leg recorded too: without that
//! recording, the run must still be the capture.
//!
//! Nothing here is copied from the captures by hand: each test reads the commands the
//! capture's client sent and the times the switch stamped on their API events, replays them
//! against the simulator at those simulated times, and compares the two event streams.

mod support;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use callrec_sim::{ClockMode, SimConfig, Simulator};
use callrec_testkit::capture::{self, Frame};
use chrono::TimeZone;
use support::RawClient;
use support::compare::{
    Ev, RACES, diff_sequence, diff_stop_places, diff_streams, per_channel, race_entry_matches,
    stop_places, without_recording_of,
};

const CAPTURE_RECORDINGS: &str = "/usr/local/freeswitch/var/lib/freeswitch/recordings/";

/// A captured scenario: the event stream, the command connection's traffic.
struct Captured {
    events: Vec<Frame>,
    commands: Vec<String>,
    replies: Vec<Frame>,
}

fn load(events: &str, commands_sent: &str, commands_received: &str) -> Captured {
    Captured {
        events: capture::frames_of(events)
            .into_iter()
            .filter(Frame::is_event)
            .collect(),
        commands: capture::commands(&capture::read(commands_sent))
            .into_iter()
            .map(|(line, _)| line)
            .filter(|l| !l.starts_with("auth "))
            .collect(),
        replies: capture::frames_of(commands_received)
            .into_iter()
            .filter(Frame::is_reply)
            .skip(1)
            .collect(),
    }
}

fn timestamp(ev: &Ev) -> i64 {
    ev.get("Event-Date-Timestamp")
        .and_then(|t| t.parse().ok())
        .unwrap_or(0)
}

impl Captured {
    fn evs(&self) -> Vec<Ev> {
        self.events.iter().map(Ev::of).collect()
    }

    /// When the switch started each command: the timestamp of its API event.
    fn command_times(&self) -> Vec<i64> {
        let mut api: Vec<Ev> = self
            .evs()
            .into_iter()
            .filter(|e| e.label == "API")
            .collect();
        self.commands
            .iter()
            .map(|line| {
                let text = line
                    .strip_prefix("api ")
                    .or_else(|| line.strip_prefix("bgapi "))
                    .unwrap_or(line);
                let word = text.split(' ').next().unwrap_or("");
                let pos = api
                    .iter()
                    .position(|e| e.get("API-Command") == Some(word))
                    .unwrap_or_else(|| panic!("no API event for {line}"));
                timestamp(&api.remove(pos))
            })
            .collect()
    }

    /// A boot time in phase with the capture's heartbeats (every 20 s since boot), so the
    /// core's one-second tick falls where the real one did.
    fn boot(&self) -> i64 {
        let start = self.start();
        let Some(beat) = self
            .evs()
            .iter()
            .find(|e| e.label == "HEARTBEAT")
            .map(timestamp)
        else {
            return start;
        };
        let mut boot = beat;
        while boot > start {
            boot -= 20_000_000;
        }
        boot
    }

    fn start(&self) -> i64 {
        self.evs()
            .iter()
            .map(timestamp)
            .find(|t| *t > 0)
            .unwrap_or(0)
    }

    fn end(&self) -> i64 {
        self.evs().iter().map(timestamp).max().unwrap_or(0)
    }
}

async fn simulator(start_us: i64, spool: &Path) -> Simulator {
    let start = chrono::Utc
        .timestamp_micros(start_us)
        .single()
        .expect("capture start time");
    Simulator::start(SimConfig {
        spool_dir: spool.into(),
        clock: ClockMode::Manual { start },
        // The captures' vanilla configuration sleeps 10 s before every call proceeds.
        dialplan_sleep: Duration::from_secs(10),
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts")
}

fn advance_to(sim: &Simulator, t_us: i64) {
    let now = sim.now().timestamp_micros();
    if t_us > now {
        sim.advance(Duration::from_micros((t_us - now) as u64))
            .expect("manual clock");
    }
}

/// What running a captured scenario on the simulator produced.
struct Run {
    events: Vec<Frame>,
    replies: Vec<Option<Frame>>,
    uuids: HashMap<String, String>,
    notice: Option<Frame>,
    spool: tempfile::TempDir,
    /// The leg the capture did not record but this run did (`run_recording_other_leg`).
    other_leg: Option<String>,
}

/// Replays the capture's commands at the capture's times; `at_end` runs after the last.
async fn run(cap: &Captured, format: &str, at_end: impl FnOnce(&Simulator)) -> Run {
    run_inner(cap, format, false, at_end).await
}

/// Like `run`, and right after the capture's `uuid_record … start` also records the other
/// leg of that call, which the capture did not.
async fn run_recording_other_leg(
    cap: &Captured,
    format: &str,
    at_end: impl FnOnce(&Simulator),
) -> Run {
    run_inner(cap, format, true, at_end).await
}

async fn run_inner(
    cap: &Captured,
    format: &str,
    record_other_leg: bool,
    at_end: impl FnOnce(&Simulator),
) -> Run {
    let spool = tempfile::tempdir().expect("tempdir");
    let sim = simulator(cap.boot(), spool.path()).await;
    let mut tap = sim.subscribe();
    let mut events = RawClient::connect(sim.esl_addr(), "ClueCon").await;
    let reply = events.command(&format!("event {format} ALL")).await;
    assert_eq!(
        reply.header("Reply-Text"),
        Some(format!("+OK event listener enabled {format}").as_str())
    );
    let mut commands = RawClient::connect(sim.esl_addr(), "ClueCon").await;
    let times = cap.command_times();
    let mut uuids: HashMap<String, String> = HashMap::new();
    let mut replies: Vec<Option<Frame>> = Vec::new();
    let mut pending: Option<usize> = None;
    let mut other_leg = None;
    let spool_prefix = format!("{}/", spool.path().display());
    for (i, (line, t)) in cap.commands.iter().zip(&times).enumerate() {
        advance_to(&sim, *t);
        if let Some(k) = pending.take() {
            replies[k] = commands.next_reply(Duration::from_secs(5)).await;
            learn_uuid(cap, k, replies[k].as_ref(), &mut uuids);
        }
        let mut sent = line.replace(CAPTURE_RECORDINGS, &spool_prefix);
        for (c, s) in &uuids {
            sent = sent.replace(c.as_str(), s);
        }
        commands.send(&sent).await;
        let reply = commands.next_reply(Duration::from_millis(300)).await;
        if reply.is_none() {
            pending = Some(i);
        }
        learn_uuid(cap, i, reply.as_ref(), &mut uuids);
        replies.push(reply);
        if record_other_leg
            && other_leg.is_none()
            && let Some(recorded) = recorded_leg(&sent)
        {
            let other = sim
                .channels()
                .into_iter()
                .find(|c| c.uuid == recorded)
                .and_then(|c| c.peer)
                .expect("the recorded leg has another leg");
            let reply = commands
                .command(&format!(
                    "api uuid_record {other} start {spool_prefix}other-leg.wav"
                ))
                .await;
            assert_eq!(reply.body, b"+OK Success\n", "recording the other leg");
            other_leg = Some(other);
        }
    }
    if let Some(k) = pending.take() {
        advance_to(&sim, cap.end());
        replies[k] = commands.next_reply(Duration::from_secs(2)).await;
    }
    advance_to(&sim, cap.end());
    let mut fired = 0;
    while tap.try_recv().is_ok() {
        fired += 1;
    }
    let mut got = Vec::new();
    let mut notice = None;
    while got.len() < fired {
        let Some(f) = events.next_frame(Duration::from_secs(5)).await else {
            break;
        };
        if f.is_event() {
            assert!(
                notice.is_none(),
                "{} reached the listener after the disconnect notice",
                Ev::of(&f).label
            );
            got.push(f);
        } else if f.content_type() == "text/disconnect-notice" {
            notice = Some(f);
        }
    }
    assert_eq!(got.len(), fired, "every fired event reached the listener");
    // What happens to the switch after the capture's last event (a crash), and what the
    // listener reads after that: a notice, or the socket simply closing.
    at_end(&sim);
    if notice.is_none()
        && let Some(f) = events.next_frame(Duration::from_secs(2)).await
    {
        assert_eq!(
            f.content_type(),
            "text/disconnect-notice",
            "only a notice may follow"
        );
        notice = Some(f);
    }
    Run {
        events: got,
        replies,
        uuids,
        notice,
        spool,
        other_leg,
    }
}

/// The leg a `api uuid_record <uuid> start …` command records.
fn recorded_leg(command: &str) -> Option<String> {
    let mut words = command.strip_prefix("api uuid_record ")?.split(' ');
    let uuid = words.next()?;
    (words.next() == Some("start")).then(|| uuid.to_string())
}

/// Maps the capture's originate reply UUID to the simulator's.
fn learn_uuid(
    cap: &Captured,
    i: usize,
    reply: Option<&Frame>,
    uuids: &mut HashMap<String, String>,
) {
    if !cap.commands[i].starts_with("api originate") {
        return;
    }
    let text = |f: &Frame| String::from_utf8_lossy(&f.body).trim().to_string();
    if let (Some(c), Some(s)) = (cap.replies.get(i), reply)
        && let (Some(cu), Some(su)) = (
            text(c).strip_prefix("+OK ").map(str::to_string),
            text(s).strip_prefix("+OK ").map(str::to_string),
        )
    {
        uuids.insert(cu, su);
    }
}

fn assert_same_events(what: &str, run: &Run, cap: &Captured) {
    let sim: Vec<Ev> = run.events.iter().map(Ev::of).collect();
    let problems = diff_streams(&sim, &cap.evs());
    assert!(
        problems.is_empty(),
        "{what}: the simulator differs from the capture:\n{}",
        problems.join("\n")
    );
    assert_same_recordings(what, &sim, &cap.evs());
}

/// For a run that also recorded the leg the capture did not: that leg's recording stopped
/// where the capture's recorded leg stopped its own, and without that recording the run is
/// the capture (per channel: the same events in the same order with the same headers).
fn assert_same_events_with_other_leg_recorded(what: &str, run: &Run, cap: &Captured) {
    let sim: Vec<Ev> = run.events.iter().map(Ev::of).collect();
    let other = run
        .other_leg
        .as_deref()
        .expect("the other leg was recorded");
    let (sc, cc) = (per_channel(&sim), per_channel(&cap.evs()));
    let k = sc
        .iter()
        .position(|(u, _)| u == other)
        .expect("the other leg fired events");
    let stops = |evs: &[Ev]| evs.iter().filter(|e| e.label == "RECORD_STOP").count();
    assert_eq!(stops(&sc[k].1), 1, "{what}: the other leg's RECORD_STOP");
    let mut problems = diff_stop_places(&sim, &cap.evs());
    let captured_other = &cc.get(k).expect("the capture has that leg").0;
    problems.extend(diff_streams(
        &without_recording_of(&sim, other),
        &without_recording_of(&cap.evs(), captured_other),
    ));
    assert!(
        problems.is_empty(),
        "{what}: the simulator differs from the capture:\n{}",
        problems.join("\n")
    );
}

/// Every RECORD_STOP says what the capture's said: the cause, whether the file was
/// discarded, and how much audio it held (within two 20 ms frames: the real media bug
/// attaches on the next frame).
fn assert_same_recordings(what: &str, sim: &[Ev], cap: &[Ev]) {
    let stops = |evs: &[Ev]| -> Vec<Ev> {
        evs.iter()
            .filter(|e| e.label == "RECORD_STOP")
            .cloned()
            .collect()
    };
    let (s, c) = (stops(sim), stops(cap));
    assert_eq!(s.len(), c.len(), "{what}: RECORD_STOP events");
    for (s, c) in s.iter().zip(&c) {
        for h in ["Record-Completion-Cause", "variable_RECORD_DISCARDED"] {
            assert_eq!(s.get(h), c.get(h), "{what}: {h}");
        }
        let ms = |e: &Ev| -> i64 {
            e.get("variable_record_ms")
                .and_then(|v| v.parse().ok())
                .expect("record_ms")
        };
        assert!(
            (ms(s) - ms(c)).abs() <= 40,
            "{what}: {} ms of audio, the capture has {}",
            ms(s),
            ms(c)
        );
    }
}

/// Replies the same as the capture's, once UUIDs and paths are the simulator's.
fn assert_same_replies(what: &str, run: &Run, cap: &Captured) {
    for (i, line) in cap.commands.iter().enumerate() {
        let want = cap.replies.get(i);
        let got = run.replies.get(i).and_then(Option::as_ref);
        match (want, got) {
            (None, None) => {}
            (Some(w), Some(g)) => {
                let mut wt = reply_text(w);
                for (c, s) in &run.uuids {
                    wt = wt.replace(c.as_str(), s);
                }
                wt = wt.replace(
                    CAPTURE_RECORDINGS,
                    &format!("{}/", run.spool.path().display()),
                );
                let gt = reply_text(g);
                if wt.starts_with('{') {
                    assert_same_json_shape(&format!("{what}: {line}"), &gt, &wt);
                } else if line.starts_with("api originate") || line.starts_with("bgapi") {
                    assert_eq!(gt.split(' ').next(), wt.split(' ').next(), "{what}: {line}");
                } else if line.starts_with("api status") {
                    assert!(gt.starts_with("UP "), "{what}: {line}");
                } else {
                    assert_eq!(gt, wt, "{what}: reply to {line}");
                }
            }
            (w, g) => panic!("{what}: {line}: capture reply {w:?}, simulator {g:?}"),
        }
    }
}

fn reply_text(f: &Frame) -> String {
    if f.content_type() == "api/response" {
        String::from_utf8_lossy(&f.body).into_owned()
    } else {
        f.header("Reply-Text").unwrap_or("").to_string()
    }
}

fn assert_same_json_shape(what: &str, got: &str, want: &str) {
    let g: serde_json::Value = serde_json::from_str(got).expect("simulator JSON");
    let w: serde_json::Value = serde_json::from_str(want).expect("captured JSON");
    assert_eq!(g["row_count"], w["row_count"], "{what}");
    let keys = |v: &serde_json::Value| -> Vec<Vec<String>> {
        v["rows"]
            .as_array()
            .map(|rows| {
                rows.iter()
                    .map(|r| {
                        let mut k: Vec<String> = r
                            .as_object()
                            .map(|o| o.keys().cloned().collect())
                            .unwrap_or_default();
                        k.sort();
                        k
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(keys(&g), keys(&w), "{what}: row fields");
    for field in [
        "direction",
        "name",
        "state",
        "callstate",
        "cid_name",
        "dest",
        "application",
    ] {
        let vals = |v: &serde_json::Value| -> Vec<String> {
            v["rows"]
                .as_array()
                .map(|rows| {
                    rows.iter()
                        .map(|r| r[field].as_str().unwrap_or("").to_string())
                        .collect()
                })
                .unwrap_or_default()
        };
        assert_eq!(vals(&g), vals(&w), "{what}: {field}");
    }
}

#[tokio::test]
async fn record_scenario_matches_the_capture() {
    let cap = load(
        "record.events-plain.received.esl",
        "record.commands.sent.esl",
        "record.commands.received.esl",
    );
    let run = run(&cap, "plain", |_| {}).await;
    assert_same_events("record", &run, &cap);
    assert_same_replies("record", &run, &cap);
}

#[tokio::test]
async fn record_scenario_in_json_matches_the_capture() {
    let cap = load(
        "record.events-json.received.esl",
        "record-json.commands.sent.esl",
        "record-json.commands.received.esl",
    );
    let run = run(&cap, "json", |_| {}).await;
    assert_same_events("record (json)", &run, &cap);
    assert_same_replies("record (json)", &run, &cap);
}

#[tokio::test]
async fn short_scenario_matches_the_capture() {
    let cap = load(
        "short.events-plain.received.esl",
        "short.commands.sent.esl",
        "short.commands.received.esl",
    );
    let run = run(&cap, "plain", |_| {}).await;
    assert_same_events("short", &run, &cap);
    assert_same_replies("short", &run, &cap);
}

/// The callee's leg recorded too: the capture's caller leg is killed, the recorded callee
/// leg is torn down with it, and its recording must stop where a recorded leg's does.
#[tokio::test]
async fn short_scenario_with_the_other_leg_recorded_matches_the_capture() {
    let cap = load(
        "short.events-plain.received.esl",
        "short.commands.sent.esl",
        "short.commands.received.esl",
    );
    let run = run_recording_other_leg(&cap, "plain", |_| {}).await;
    assert_same_events_with_other_leg_recorded("short, other leg recorded", &run, &cap);
}

#[tokio::test]
async fn shortmin_scenario_matches_the_capture() {
    let cap = load(
        "shortmin.events-plain.received.esl",
        "shortmin.commands.sent.esl",
        "shortmin.commands.received.esl",
    );
    let run = run(&cap, "plain", |_| {}).await;
    assert_same_events("shortmin", &run, &cap);
    assert_same_replies("shortmin", &run, &cap);
}

#[tokio::test]
async fn errors_scenario_matches_the_capture() {
    let cap = load(
        "errors.events-plain.received.esl",
        "errors.commands.sent.esl",
        "errors.commands.received.esl",
    );
    let run = run(&cap, "plain", |_| {}).await;
    assert_same_events("errors", &run, &cap);
    assert_same_replies("errors", &run, &cap);
}

#[tokio::test]
async fn shutdown_scenario_matches_the_capture() {
    let cap = load(
        "shutdown.events-plain.received.esl",
        "shutdown.commands.sent.esl",
        "shutdown.commands.received.esl",
    );
    let run = run(&cap, "plain", |_| {}).await;
    assert_same_events("shutdown", &run, &cap);
    assert_same_replies("shutdown", &run, &cap);
    let captured_notice = capture::frames_of("shutdown.events-plain.received.esl")
        .into_iter()
        .find(|f| f.content_type() == "text/disconnect-notice")
        .expect("captured notice");
    let notice = run.notice.as_ref().expect("the listener got a notice");
    assert_eq!(notice.bytes, captured_notice.bytes);
}

/// `fsctl shutdown` with the callee's leg recorded as well: its recording stops like the
/// caller's, where a recorded leg's does, before the disconnect notice.
#[tokio::test]
async fn shutdown_scenario_with_the_other_leg_recorded_matches_the_capture() {
    let cap = load(
        "shutdown.events-plain.received.esl",
        "shutdown.commands.sent.esl",
        "shutdown.commands.received.esl",
    );
    let run = run_recording_other_leg(&cap, "plain", |_| {}).await;
    assert_same_events_with_other_leg_recorded("shutdown, other leg recorded", &run, &cap);
    let notice = run.notice.as_ref().expect("the listener got a notice");
    assert_eq!(
        String::from_utf8_lossy(&notice.body),
        "The system is being shut down.\n"
    );
    let other = run.spool.path().join("other-leg.wav");
    let wav = callrec_sim::wav::WavInfo::read(&other).expect("the other leg's file is a WAV");
    assert!(wav.frames() > 0, "the other leg's audio was written");
}

#[tokio::test]
async fn crash_scenario_matches_the_capture() {
    let cap = load(
        "crash.events-plain.received.esl",
        "crash.commands.sent.esl",
        "crash.commands.received.esl",
    );
    let run = run(&cap, "plain", |sim| sim.crash()).await;
    assert_same_events("crash", &run, &cap);
    assert_same_replies("crash", &run, &cap);
    assert!(run.notice.is_none(), "a killed switch sends no notice");
    let wav = run.spool.path().join("during-crash.wav");
    let bytes = std::fs::read(&wav).expect("the recording in progress exists");
    assert_eq!(bytes.len(), 44, "only the WAV header was written");
}

#[test]
fn races_are_observed_in_the_captures() {
    let files = [
        "record.events-plain.received.esl",
        "short.events-plain.received.esl",
        "shortmin.events-plain.received.esl",
        "errors.events-plain.received.esl",
        "shutdown.events-plain.received.esl",
        "crash.events-plain.received.esl",
    ];
    let mut adjacent: Vec<(String, String)> = Vec::new();
    for f in files {
        let evs: Vec<Ev> = capture::frames_of(f)
            .iter()
            .filter(|f| f.is_event())
            .map(Ev::of)
            .collect();
        for (_, chan) in per_channel(&evs) {
            for w in chan.windows(2) {
                adjacent.push((w[0].label.clone(), w[1].label.clone()));
            }
        }
    }
    for (a, b) in RACES {
        let m = race_entry_matches;
        let ab = adjacent.iter().any(|(x, y)| m(a, x) && m(b, y));
        let ba = adjacent.iter().any(|(x, y)| m(b, x) && m(a, y));
        assert!(ab && ba, "{a} / {b} is not seen in both orders");
    }
    // And the comparison is strict otherwise: a swapped pair that is not a race fails.
    let e = |l: &str| Ev {
        label: l.into(),
        names: Default::default(),
        uuid: Some("u".into()),
        headers: vec![],
    };
    let sim = [e("CHANNEL_ANSWER"), e("CHANNEL_HANGUP")];
    let cap = [e("CHANNEL_HANGUP"), e("CHANNEL_ANSWER")];
    assert!(!diff_sequence("x", &sim, &cap).is_empty());
}

/// The first time the capture shows `label` on channel `uuid`.
fn time_of(evs: &[Ev], uuid: &str, label: &str) -> i64 {
    evs.iter()
        .find(|e| e.uuid.as_deref() == Some(uuid) && e.label == label)
        .map(timestamp)
        .unwrap_or_else(|| panic!("capture has no {label} on {uuid}"))
}

fn micros(d: i64) -> Duration {
    Duration::from_micros(d.max(0) as u64)
}

/// 1001 calls 1000 (bridged SIP legs), is recorded from before the answer, holds, dials
/// `*48` (the feature-code listener answers, plays a tone, hangs up), unholds, hangs up.
#[tokio::test]
async fn sip_hold_scenario_matches_the_capture() {
    let (cap, run) = run_sip_hold(false).await;
    assert_same_events("sip-hold", &run, &cap);
    assert_same_replies("sip-hold", &run, &cap);
}

/// The same call with the callee's leg recorded too (from the bridge on): when the caller
/// hangs up, the callee's leg is torn down by the bridge and its recording must stop where
/// a recorded leg's does.
#[tokio::test]
async fn sip_hold_scenario_with_the_other_leg_recorded_matches_the_capture() {
    let (cap, run) = run_sip_hold(true).await;
    assert_same_events_with_other_leg_recorded("sip-hold, other leg recorded", &run, &cap);
}

async fn run_sip_hold(record_other_leg: bool) -> (Captured, Run) {
    let cap = load(
        "sip-hold.events-plain.received.esl",
        "sip-hold.commands.sent.esl",
        "sip-hold.commands.received.esl",
    );
    let evs = cap.evs();
    let chans = per_channel(&evs);
    let uuid = |k: usize| chans[k].0.clone();
    let (a, f, b) = (uuid(0), uuid(1), uuid(2));
    let t_answer = time_of(&evs, &a, "CHANNEL_ANSWER");
    let hold_at = time_of(&evs, &a, "CHANNEL_HOLD") - t_answer;
    let hold_for = time_of(&evs, &a, "CHANNEL_UNHOLD") - time_of(&evs, &a, "CHANNEL_HOLD");
    let talk = time_of(&evs, &a, "CHANNEL_HANGUP") - t_answer;
    let ring = time_of(&evs, &b, "CHANNEL_ANSWER") - chans[2].1.first().map(timestamp).unwrap_or(0);
    let sleep = time_of(&evs, &a, "CHANNEL_EXECUTE_COMPLETE:sleep")
        - time_of(&evs, &a, "CHANNEL_EXECUTE:sleep");
    let bridge_delay = time_of(&evs, &a, "CHANNEL_BRIDGE") - t_answer;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let spool = tempfile::tempdir().expect("tempdir");
    let start = chrono::Utc
        .timestamp_micros(cap.start())
        .single()
        .expect("start");
    let sim = Simulator::start(SimConfig {
        spool_dir: spool.path().into(),
        clock: ClockMode::Manual { start },
        dialplan_sleep: micros(sleep),
        bridge_delay: micros(bridge_delay),
        feature_code_socket: Some(listener.local_addr().expect("addr").to_string()),
        ..SimConfig::default()
    })
    .await
    .expect("simulator");
    let mut tap = sim.subscribe();
    let mut events = RawClient::connect(sim.esl_addr(), "ClueCon").await;
    events.command("event plain ALL").await;
    let mut commands = RawClient::connect(sim.esl_addr(), "ClueCon").await;

    // The simulator plays a call's set-up at once; the capture's dialplan sleep began
    // when its EXECUTE sleep was stamped.
    advance_to(&sim, time_of(&evs, &a, "CHANNEL_EXECUTE:sleep"));
    let call = sim.place_call(
        callrec_sim::CallSpec::internal("1001", "1000")
            .ring(micros(ring))
            .hold(callrec_sim::Side::Caller, micros(hold_at), micros(hold_for))
            .talk(micros(talk), callrec_sim::Side::Caller),
    );
    let spool_prefix = format!("{}/", spool.path().display());
    let mut uuids = HashMap::new();
    uuids.insert(a.clone(), call.caller_uuid.clone());

    // What happens when, from the capture: the client's commands, the *48 call, and what
    // the feature-code listener did on it.
    enum Step {
        Command(usize),
        Dial,
        Connect,
        Sendmsg(String, Vec<(String, String)>),
        RecordOther,
    }
    let mut plan: Vec<(i64, Step)> = cap
        .command_times()
        .into_iter()
        .enumerate()
        .map(|(i, t)| (t, Step::Command(i)))
        .collect();
    if record_other_leg {
        plan.push((time_of(&evs, &a, "CHANNEL_BRIDGE") + 1, Step::RecordOther));
    }
    let mut other_leg = None;
    plan.push((chans[1].1.first().map(timestamp).unwrap_or(0), Step::Dial));
    let mut session_commands = Vec::new();
    for (line, headers) in capture::commands(&capture::read("sip-hold-feature-code.sent.esl")) {
        let app = headers
            .iter()
            .find(|(n, _)| n == "execute-app-name")
            .map(|(_, v)| v.clone());
        match (line.as_str(), app) {
            ("sendmsg", Some(app)) => plan.push((
                time_of(&evs, &f, &format!("CHANNEL_EXECUTE:{app}")),
                Step::Sendmsg(line, headers),
            )),
            ("sendmsg", None) => plan.push((
                time_of(&evs, &f, "CHANNEL_HANGUP"),
                Step::Sendmsg(line, headers),
            )),
            _ => session_commands.push((line, headers)),
        }
    }
    // The simulator uses one dialplan sleep for every call; the *48 call reaches its socket
    // once its own sleep is over.
    let t_dial = chans[1].1.first().map(timestamp).unwrap_or(0);
    let t_socket = time_of(&evs, &f, "CHANNEL_EXECUTE:socket").max(t_dial + sleep);
    plan.push((t_socket, Step::Connect));
    plan.sort_by_key(|(t, _)| *t);
    let mut feature = None;
    let mut session = None;
    let mut replies = Vec::new();
    for (t, step) in plan {
        // A command stamped in the same microsecond as a scripted event ran first on the
        // switch (uuid_buglist before the hangup).
        advance_to(&sim, t - 1);
        match step {
            Step::Command(i) => {
                let mut line = cap.commands[i].replace(CAPTURE_RECORDINGS, &spool_prefix);
                for (c, s) in &uuids {
                    line = line.replace(c.as_str(), s);
                }
                replies.push(Some(commands.command(&line).await));
            }
            Step::Dial => feature = Some(sim.dial_feature_code("1001", "*48")),
            Step::Connect => {
                let (stream, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
                    .await
                    .expect("the *48 call reaches the listener")
                    .expect("accept");
                let mut peer = support::RawPeer::new(stream);
                for (line, headers) in &session_commands {
                    peer.command(line, headers).await;
                }
                session = Some(peer);
            }
            Step::Sendmsg(line, headers) => {
                let peer = session.as_mut().expect("connected before sendmsg");
                peer.command(&line, &headers).await;
            }
            Step::RecordOther => {
                let callee = &call.callee_uuid;
                let reply = commands
                    .command(&format!(
                        "api uuid_record {callee} start {spool_prefix}other-leg.wav"
                    ))
                    .await;
                assert_eq!(reply.body, b"+OK Success\n", "recording the callee");
                other_leg = Some(callee.clone());
            }
        }
    }
    advance_to(&sim, cap.end());
    let info = sim
        .feature_call(&feature.expect("feature call placed"))
        .expect("feature call");
    assert!(info.answered && info.hung_up, "{info:?}");

    let mut fired = 0;
    while tap.try_recv().is_ok() {
        fired += 1;
    }
    let mut got = Vec::new();
    while got.len() < fired {
        let Some(frame) = events.next_event(Duration::from_secs(5)).await else {
            break;
        };
        got.push(frame);
    }
    assert_eq!(got.len(), fired, "every fired event reached the listener");
    let run = Run {
        events: got,
        replies,
        uuids,
        notice: None,
        spool,
        other_leg,
    };
    (cap, run)
}

/// Every capture with a recording, as one stream (their legs have distinct UUIDs).
fn captured_recordings() -> Vec<Ev> {
    [
        "record.events-plain.received.esl",
        "record.events-json.received.esl",
        "short.events-plain.received.esl",
        "shortmin.events-plain.received.esl",
        "sip-hold.events-plain.received.esl",
        "shutdown.events-plain.received.esl",
    ]
    .iter()
    .flat_map(|f| capture::frames_of(f))
    .filter(Frame::is_event)
    .map(|f| Ev::of(&f))
    .collect()
}

/// The place where a leg's recording stops is one rule, not one capture's accident: every
/// recorded leg of every capture (loopback and SIP, killed, hung up by the phone, shut
/// down) stops its recordings between the same two of its own events.
#[test]
fn the_captures_agree_where_a_recording_stops() {
    let evs = captured_recordings();
    let places = stop_places(&evs);
    assert_eq!(places.len(), 6, "one recorded leg per capture");
    let distinct: std::collections::BTreeSet<_> = places
        .iter()
        .map(|(uuid, p)| p.clone().unwrap_or_else(|e| panic!("{uuid}: {e}")))
        .collect();
    assert_eq!(distinct.len(), 1, "{distinct:?}");
    // And a stop anywhere else is reported.
    let mut late = evs.clone();
    let at = late
        .iter()
        .position(|e| e.label == "RECORD_STOP")
        .expect("a RECORD_STOP");
    let uuid = late[at].uuid.clone();
    let stop = late.remove(at);
    let complete = late
        .iter()
        .position(|e| e.uuid == uuid && e.label == "CHANNEL_HANGUP_COMPLETE")
        .expect("the leg's CHANNEL_HANGUP_COMPLETE");
    late.insert(complete + 1, stop);
    assert!(!diff_stop_places(&late, &evs).is_empty());
}

/// Calls no capture shows: either leg recorded, either side hanging up, SIP and loopback
/// (tone and park). Each recording stops where the captures' recorded legs stop theirs,
/// once, with its file complete.
#[tokio::test]
async fn recordings_stop_where_the_captures_stop_them_on_any_leg_whoever_hangs_up() {
    use callrec_model::EventFormat;
    use callrec_sim::{CallSpec, Side};
    let captured = captured_recordings();
    let calls = [
        ("SIP", CallSpec::internal("1001", "1000")),
        (
            "loopback tone",
            CallSpec::outbound("1001", "9999").loopback("9999"),
        ),
        (
            "loopback park",
            CallSpec::outbound("1001", "9998").loopback("9998"),
        ),
    ];
    let mut problems = Vec::new();
    for (kind, spec) in calls {
        for recorded in [Side::Caller, Side::Callee] {
            for hangs_up in [Side::Caller, Side::Callee] {
                let what = format!("{kind}, {recorded:?} recorded, {hangs_up:?} hangs up");
                let spool = tempfile::tempdir().expect("tempdir");
                let sim = Simulator::start(SimConfig {
                    spool_dir: spool.path().into(),
                    ..SimConfig::default()
                })
                .await
                .expect("simulator");
                let mut tap = sim.subscribe();
                let call = sim.place_call(spec.clone().ring(Duration::from_secs(1)));
                sim.advance(Duration::from_secs(2)).expect("clock");
                let leg = match recorded {
                    Side::Caller => &call.caller_uuid,
                    Side::Callee => &call.callee_uuid,
                };
                let path = spool.path().join("leg.wav");
                let reply = sim.api(&format!("uuid_record {leg} start {}", path.display()));
                assert_eq!(reply, "+OK Success\n", "{what}");
                sim.advance(Duration::from_secs(3)).expect("clock");
                sim.hangup_call(&call, hangs_up);
                sim.advance(Duration::from_secs(1)).expect("clock");
                let mut evs = Vec::new();
                while let Ok(ev) = tap.try_recv() {
                    evs.extend(
                        capture::frames(&ev.frame(EventFormat::Plain))
                            .iter()
                            .map(Ev::of),
                    );
                }
                let stops: Vec<&Ev> = evs.iter().filter(|e| e.label == "RECORD_STOP").collect();
                assert_eq!(stops.len(), 1, "{what}: RECORD_STOPs");
                assert_eq!(stops[0].uuid.as_deref(), Some(leg.as_str()), "{what}");
                let size: u64 = stops[0]
                    .get("variable_record_file_size")
                    .and_then(|v| v.parse().ok())
                    .expect("record_file_size");
                assert!(size > 44, "{what}: audio was recorded");
                assert_eq!(
                    std::fs::metadata(&path).expect("the file").len(),
                    size,
                    "{what}: the file is complete"
                );
                problems.extend(
                    diff_stop_places(&evs, &captured)
                        .into_iter()
                        .map(|p| format!("{what}: {p}")),
                );
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

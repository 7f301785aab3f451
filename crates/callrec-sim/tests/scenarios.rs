//! The scenarios of the captures, run on the simulator, give the same events as the real
//! switch: per channel the same event names in the same order with the same header names,
//! and the same non-channel events (API, BACKGROUND_JOB, SHUTDOWN, MODULE_UNLOAD).
//!
//! Nothing here is copied from the captures by hand: each test reads the commands the
//! capture's client sent and the times the switch stamped on their API events, replays them
//! against the simulator at those simulated times, and compares the two event streams.

mod support;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use callrec_sim::{ClockMode, SimConfig, Simulator};
use chrono::TimeZone;
use support::compare::{Ev, RACES, diff_sequence, diff_streams, per_channel};
use support::{RawClient, RawFrame, fixture, split_commands, split_frames};

const CAPTURE_RECORDINGS: &str = "/usr/local/freeswitch/var/lib/freeswitch/recordings/";

/// A captured scenario: the event stream, the command connection's traffic.
struct Captured {
    events: Vec<RawFrame>,
    commands: Vec<String>,
    replies: Vec<RawFrame>,
}

fn load(events: &str, commands_sent: &str, commands_received: &str) -> Captured {
    Captured {
        events: split_frames(&fixture(events))
            .into_iter()
            .filter(RawFrame::is_event)
            .collect(),
        commands: split_commands(&fixture(commands_sent))
            .into_iter()
            .map(|(line, _)| line)
            .filter(|l| !l.starts_with("auth "))
            .collect(),
        replies: split_frames(&fixture(commands_received))
            .into_iter()
            .filter(RawFrame::is_reply)
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
    events: Vec<RawFrame>,
    replies: Vec<Option<RawFrame>>,
    uuids: HashMap<String, String>,
    notice: Option<RawFrame>,
    spool: tempfile::TempDir,
}

/// Replays the capture's commands at the capture's times; `at_end` runs after the last.
async fn run(cap: &Captured, format: &str, at_end: impl FnOnce(&Simulator)) -> Run {
    let spool = tempfile::tempdir().expect("tempdir");
    let sim = simulator(cap.start(), spool.path()).await;
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
    let mut replies: Vec<Option<RawFrame>> = Vec::new();
    let mut pending: Option<usize> = None;
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
    }
    if let Some(k) = pending.take() {
        advance_to(&sim, cap.end());
        replies[k] = commands.next_reply(Duration::from_secs(2)).await;
    }
    advance_to(&sim, cap.end());
    at_end(&sim);
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
            got.push(f);
        } else if f.content_type() == "text/disconnect-notice" {
            notice = Some(f);
        }
    }
    if notice.is_none()
        && let Some(f) = events.next_frame(Duration::from_millis(200)).await
        && f.content_type() == "text/disconnect-notice"
    {
        notice = Some(f);
    }
    assert_eq!(got.len(), fired, "every fired event reached the listener");
    Run {
        events: got,
        replies,
        uuids,
        notice,
        spool,
    }
}

/// Maps the capture's originate reply UUID to the simulator's.
fn learn_uuid(
    cap: &Captured,
    i: usize,
    reply: Option<&RawFrame>,
    uuids: &mut HashMap<String, String>,
) {
    if !cap.commands[i].starts_with("api originate") {
        return;
    }
    let text = |f: &RawFrame| String::from_utf8_lossy(&f.body).trim().to_string();
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

fn reply_text(f: &RawFrame) -> String {
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
    let captured_notice = split_frames(&fixture("shutdown.events-plain.received.esl"))
        .into_iter()
        .find(|f| f.content_type() == "text/disconnect-notice")
        .expect("captured notice");
    let notice = run.notice.as_ref().expect("the listener got a notice");
    assert_eq!(notice.bytes, captured_notice.bytes);
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
        let evs: Vec<Ev> = split_frames(&fixture(f))
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
        let ab = adjacent.iter().any(|(x, y)| x == a && y == b);
        let ba = adjacent.iter().any(|(x, y)| x == b && y == a);
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

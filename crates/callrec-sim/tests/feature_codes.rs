//! A feature code dialled on the simulator reaches a listener over the outbound Event
//! Socket exactly as the real switch's did: the listener sends the commands of the capture
//! and must read back the same replies, the same channel-data header names, the same events
//! (names, order, header names) and the same linger notice.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use callrec_sim::{SimConfig, Simulator};
use support::compare::Ev;
use support::{RawFrame, fixture, split_commands, split_frames};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The listener side of an outbound session, reading raw frames.
struct Listener {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Listener {
    async fn frame(&mut self, timeout: Duration) -> Option<RawFrame> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(rel) = self.buf.windows(2).position(|w| w == b"\n\n") {
                let head = String::from_utf8_lossy(&self.buf[..rel]).into_owned();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("Content-Length: "))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                if self.buf.len() >= rel + 2 + len {
                    let bytes: Vec<u8> = self.buf.drain(..rel + 2 + len).collect();
                    return split_frames(&bytes).into_iter().next();
                }
            }
            let mut chunk = vec![0u8; 64 * 1024];
            let n = tokio::time::timeout_at(deadline, self.stream.read(&mut chunk))
                .await
                .ok()?
                .ok()?;
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    async fn send(&mut self, line: &str, headers: &[(String, String)]) {
        let mut cmd = format!("{line}\n");
        for (n, v) in headers {
            cmd.push_str(&format!("{n}: {v}\n"));
        }
        cmd.push('\n');
        self.stream.write_all(cmd.as_bytes()).await.expect("send");
    }
}

fn decoded_names(f: &RawFrame) -> BTreeSet<String> {
    f.envelope.iter().map(|(n, _)| n.clone()).collect()
}

/// Drives the session with the capture's commands; `advance` moves the simulated clock
/// while a playback runs.
async fn run_session(
    listener: TcpListener,
    sent: &str,
    advance: impl Fn(Duration),
) -> Vec<RawFrame> {
    let (stream, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
        .await
        .expect("the switch connects to the feature-code listener")
        .expect("accept");
    let mut l = Listener {
        stream,
        buf: Vec::new(),
    };
    let mut frames = Vec::new();
    for (line, headers) in split_commands(&fixture(sent)) {
        l.send(&line, &headers).await;
        let playback = headers
            .iter()
            .any(|(n, v)| n == "execute-app-name" && v == "playback");
        // Read up to the reply, then what the command set off.
        loop {
            let f = l.frame(Duration::from_secs(5)).await.expect("reply");
            let reply = f.is_reply();
            frames.push(f);
            if reply {
                break;
            }
        }
        if playback {
            advance(Duration::from_secs(1));
        }
        while let Some(f) = l.frame(Duration::from_millis(300)).await {
            frames.push(f);
        }
    }
    frames
}

fn assert_same_session(what: &str, sim: &[RawFrame], cap: &[RawFrame]) {
    let kinds = |fs: &[RawFrame]| -> Vec<String> {
        fs.iter()
            .map(|f| {
                if f.is_event() {
                    Ev::of(f).label
                } else {
                    format!(
                        "{} {}",
                        f.content_type(),
                        f.header("Reply-Text").unwrap_or("")
                    )
                }
            })
            .collect()
    };
    assert_eq!(kinds(sim), kinds(cap), "{what}: frames");
    for (s, c) in sim.iter().zip(cap) {
        if s.is_event() {
            let (a, b) = (Ev::of(s).names, Ev::of(c).names);
            let extra: Vec<&String> = a.difference(&b).collect();
            let missing: Vec<&String> = b.difference(&a).collect();
            assert!(
                extra.is_empty() && missing.is_empty(),
                "{what}: {} header names differ: extra {extra:?}, missing {missing:?}",
                Ev::of(c).label
            );
        } else {
            assert_eq!(
                decoded_names(s),
                decoded_names(c),
                "{what}: headers of {} {:?}",
                c.content_type(),
                c.header("Reply-Text")
            );
        }
    }
}

async fn feature_listener() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr").to_string();
    (l, addr)
}

#[tokio::test]
async fn loopback_feature_code_session_matches_the_capture() {
    let (listener, addr) = feature_listener().await;
    let spool = tempfile::tempdir().expect("tempdir");
    let sim = Simulator::start(SimConfig {
        spool_dir: spool.path().into(),
        feature_code_socket: Some(addr),
        dialplan_sleep: Duration::from_secs(10),
        ..SimConfig::default()
    })
    .await
    .expect("simulator");
    // outbound.commands.sent.esl: originate the *48 call as the capture did.
    let (line, _) = split_commands(&fixture("outbound.commands.sent.esl"))
        .into_iter()
        .find(|(l, _)| l.starts_with("api originate"))
        .expect("captured originate");
    let mut client = support::RawClient::connect(sim.esl_addr(), "ClueCon").await;
    client.send(&line).await;
    sim.wait_for(Duration::from_secs(5), "the loopback legs", |s| {
        s.channels().len() == 2
    })
    .await
    .expect("originate runs");
    sim.advance(Duration::from_secs(10)).expect("manual clock");
    let frames = run_session(listener, "feature-code-outbound.sent.esl", |d| {
        sim.advance(d).expect("manual clock")
    })
    .await;
    let reply = client
        .next_reply(Duration::from_secs(5))
        .await
        .expect("originate reply");
    assert!(String::from_utf8_lossy(&reply.body).starts_with("+OK "));
    let cap = split_frames(&fixture("feature-code-outbound.received.esl"));
    assert_same_session("loopback *48", &frames, &cap);
}

#[tokio::test]
async fn sip_feature_code_session_matches_the_capture() {
    let (listener, addr) = feature_listener().await;
    let spool = tempfile::tempdir().expect("tempdir");
    let sim = Simulator::start(SimConfig {
        spool_dir: spool.path().into(),
        feature_code_socket: Some(addr),
        dialplan_sleep: Duration::from_secs(10),
        ..SimConfig::default()
    })
    .await
    .expect("simulator");
    let call = sim.dial_feature_code("1001", "*48");
    sim.advance(Duration::from_secs(10)).expect("manual clock");
    let frames = run_session(listener, "sip-hold-feature-code.sent.esl", |d| {
        sim.advance(d).expect("manual clock")
    })
    .await;
    let cap = split_frames(&fixture("sip-hold-feature-code.received.esl"));
    assert_same_session("SIP *48", &frames, &cap);
    let info = sim.feature_call(&call).expect("feature call");
    assert!(info.answered && info.hung_up);
    assert_eq!(info.prompts, vec!["tone_stream://%(500,0,800)".to_string()]);
}

//! A feature code dialled on the simulator reaches a listener over the outbound Event
//! Socket exactly as the real switch's did: the listener sends the commands of the capture
//! and must read back the same replies, the same channel-data header names, the same events
//! (names, order, header names) and the same linger notice.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use callrec_sim::{SimConfig, Simulator};
use callrec_testkit::capture::{self, Frame};
use support::RawPeer;
use support::compare::Ev;
use tokio::net::TcpListener;

fn decoded_names(f: &Frame) -> BTreeSet<String> {
    f.envelope.iter().map(|(n, _)| n.clone()).collect()
}

/// Drives the session with the capture's commands; `advance` moves the simulated clock
/// while a playback runs.
async fn run_session(listener: TcpListener, sent: &str, advance: impl Fn(Duration)) -> Vec<Frame> {
    let (stream, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
        .await
        .expect("the switch connects to the feature-code listener")
        .expect("accept");
    let mut peer = RawPeer::new(stream);
    for (line, headers) in capture::commands(&capture::read(sent)) {
        let playback = headers
            .iter()
            .any(|(n, v)| n == "execute-app-name" && v == "playback");
        // Up to the reply, then what the command set off.
        peer.command(&line, &headers).await;
        if playback {
            advance(Duration::from_secs(1));
        }
        while let Some(f) = peer.next_frame(Duration::from_millis(300)).await {
            peer.frames.push(f);
        }
    }
    peer.frames
}

fn assert_same_session(what: &str, sim: &[Frame], cap: &[Frame]) {
    let kinds = |fs: &[Frame]| -> Vec<String> {
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
    let (line, _) = capture::commands(&capture::read("outbound.commands.sent.esl"))
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
    let cap = capture::frames_of("feature-code-outbound.received.esl");
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
    let cap = capture::frames_of("sip-hold-feature-code.received.esl");
    assert_same_session("SIP *48", &frames, &cap);
    let info = sim.feature_call(&call).expect("feature call");
    assert!(info.answered && info.hung_up);
    assert_eq!(info.prompts, vec!["tone_stream://%(500,0,800)".to_string()]);
}

//! Every capture of the real switch replays through freeswitch-esl-tokio, frame by frame:
//! a fake switch plays the captured bytes back, paced by the client's commands, and a real
//! `EslClient` must read every reply and every event the capture holds, unchanged.

mod support;

use std::time::Duration;

use callrec_testkit::capture::{self, Frame};
use freeswitch_esl_tokio::{EslClient, EslCommand, EslEvent, EventFormat};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Plays `frames` to one peer: the greeting (if `greet`), then after every command the
/// frames up to and including its reply; when no reply is left, everything else, then close.
async fn play_switch_side(mut stream: TcpStream, frames: Vec<Frame>, greet: bool) {
    let mut cursor = 0;
    if greet {
        stream
            .write_all(&frames[0].bytes)
            .await
            .expect("write greeting");
        cursor = 1;
    }
    let mut buf = Vec::new();
    loop {
        // One command from the client: up to a blank line (no command carries a body here).
        while !buf.windows(2).any(|w| w == b"\n\n") {
            let mut chunk = [0u8; 4096];
            let n = match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            buf.extend_from_slice(&chunk[..n]);
        }
        let end = buf.windows(2).position(|w| w == b"\n\n").unwrap_or(0) + 2;
        buf.drain(..end);
        let next_reply = frames[cursor..].iter().position(Frame::is_reply);
        let upto = match next_reply {
            Some(k) => cursor + k + 1,
            None => frames.len(),
        };
        for f in &frames[cursor..upto] {
            stream.write_all(&f.bytes).await.expect("write frame");
        }
        cursor = upto;
        if !frames[cursor..].iter().any(Frame::is_reply) {
            for f in &frames[cursor..] {
                stream.write_all(&f.bytes).await.expect("write frame");
            }
            let _ = stream.shutdown().await;
            return;
        }
    }
}

/// What the client read: the text of each reply (Reply-Text or body) and each event's name.
#[derive(Debug, Default, PartialEq)]
struct Observed {
    replies: Vec<String>,
    events: Vec<String>,
}

fn expected(frames: &[Frame]) -> Observed {
    let mut o = Observed::default();
    for f in frames {
        match f.content_type() {
            "command/reply" if f.header("Event-Name").is_some() => {
                // The outbound `connect` reply: channel data, its Reply-Text encoded.
                o.replies.push("+OK\n".to_string());
            }
            "command/reply" => o
                .replies
                .push(f.header("Reply-Text").unwrap_or("").to_string()),
            "api/response" => o
                .replies
                .push(String::from_utf8_lossy(&f.body).into_owned()),
            ct if ct.starts_with("text/event-") => o.events.push(event_name(f)),
            _ => {}
        }
    }
    o
}

fn event_name(f: &Frame) -> String {
    if f.content_type() == "text/event-json" {
        let v: serde_json::Value = serde_json::from_slice(&f.body).expect("json event");
        return v["Event-Name"].as_str().unwrap_or("").to_string();
    }
    f.plain_headers()
        .iter()
        .rev()
        .find(|(n, _)| n == "Event-Name")
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

fn reply_text(r: &freeswitch_esl_tokio::EslResponse) -> String {
    match r.body() {
        Some(b) => b.to_string(),
        None => r.reply_text().unwrap_or("").to_string(),
    }
}

/// Sends one captured command through the client's typed API.
async fn send(client: &EslClient, line: &str, headers: &[(String, String)]) -> Option<String> {
    let result = if let Some(cmd) = line.strip_prefix("api ") {
        client.api(cmd).await
    } else if let Some(cmd) = line.strip_prefix("bgapi ") {
        client.bgapi(cmd).await
    } else if let Some(rest) = line.strip_prefix("event ") {
        let (format, events) = rest.split_once(' ').unwrap_or(("plain", rest));
        client
            .send_command(EslCommand::Events {
                format: format.into(),
                events: events.into(),
            })
            .await
    } else if line == "connect" {
        client.connect_session().await
    } else if line == "myevents" {
        return client
            .myevents(EventFormat::Plain)
            .await
            .ok()
            .map(|()| "+OK Events Enabled".into());
    } else if line == "linger" {
        return client
            .linger(None)
            .await
            .ok()
            .map(|()| "+OK will linger".into());
    } else if line == "sendmsg" {
        let mut ev = EslEvent::new();
        for (n, v) in headers {
            ev.set_header(n.clone(), v.clone());
        }
        client.sendmsg(None, ev).await
    } else {
        panic!("capture holds a command this test does not know: {line}");
    };
    result.ok().map(|r| reply_text(&r))
}

async fn drain(events: &mut freeswitch_esl_tokio::EslEventStream) -> Vec<String> {
    let mut names = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), events.recv()).await {
            Ok(Some(Ok(ev))) => names.push(ev.header_str("Event-Name").unwrap_or("").to_string()),
            Ok(Some(Err(e))) => panic!("the client rejected a captured event: {e}"),
            Ok(None) => return names,
            Err(_) => panic!("the event stream did not end"),
        }
    }
}

async fn replay_inbound(received: &str, sent: &str) {
    let frames = capture::frames_of(received);
    let commands = capture::commands(&capture::read(sent));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server_frames = frames.clone();
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.expect("accept");
        play_switch_side(stream, server_frames, true).await;
    });
    let (client, mut events) = EslClient::connect("127.0.0.1", port, "ClueCon")
        .await
        .expect("auth against the captured greeting");
    let mut observed = Observed {
        replies: vec![reply_text(client.auth_response().expect("auth reply"))],
        events: Vec::new(),
    };
    let want = expected(&frames);
    for (line, headers) in commands.iter().skip(1) {
        match send(&client, line, headers).await {
            Some(text) => observed.replies.push(text),
            None => {
                // The capture holds no reply (the switch shut down first).
                assert!(
                    observed.replies.len() >= want.replies.len(),
                    "{line}: no reply"
                );
                break;
            }
        }
    }
    observed.events = drain(&mut events).await;
    server.await.expect("server");
    assert_eq!(observed, want, "{received}");
}

async fn replay_outbound(received: &str, sent: &str) {
    let frames = capture::frames_of(received);
    let commands = capture::commands(&capture::read(sent));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server_frames = frames.clone();
    let server = tokio::spawn(async move {
        let stream = TcpStream::connect(addr).await.expect("switch connects out");
        play_switch_side(stream, server_frames, false).await;
    });
    let (client, mut events) = EslClient::accept_outbound(&listener).await.expect("accept");
    let mut observed = Observed::default();
    for (line, headers) in &commands {
        let text = send(&client, line, headers).await.expect("captured reply");
        observed.replies.push(text);
    }
    observed.events = drain(&mut events).await;
    server.await.expect("server");
    assert_eq!(observed, expected(&frames), "{received}");
}

macro_rules! inbound {
    ($name:ident, $received:literal, $sent:literal) => {
        #[tokio::test]
        async fn $name() {
            replay_inbound($received, $sent).await;
        }
    };
}

inbound!(
    record_events_plain,
    "record.events-plain.received.esl",
    "record.events-plain.sent.esl"
);
inbound!(
    record_events_json,
    "record.events-json.received.esl",
    "record.events-json.sent.esl"
);
inbound!(
    record_commands,
    "record.commands.received.esl",
    "record.commands.sent.esl"
);
inbound!(
    record_json_commands,
    "record-json.commands.received.esl",
    "record-json.commands.sent.esl"
);
inbound!(
    short_events,
    "short.events-plain.received.esl",
    "short.events-plain.sent.esl"
);
inbound!(
    short_commands,
    "short.commands.received.esl",
    "short.commands.sent.esl"
);
inbound!(
    shortmin_events,
    "shortmin.events-plain.received.esl",
    "shortmin.events-plain.sent.esl"
);
inbound!(
    shortmin_commands,
    "shortmin.commands.received.esl",
    "shortmin.commands.sent.esl"
);
inbound!(
    errors_events,
    "errors.events-plain.received.esl",
    "errors.events-plain.sent.esl"
);
inbound!(
    errors_commands,
    "errors.commands.received.esl",
    "errors.commands.sent.esl"
);
inbound!(
    shutdown_events,
    "shutdown.events-plain.received.esl",
    "shutdown.events-plain.sent.esl"
);
inbound!(
    shutdown_commands,
    "shutdown.commands.received.esl",
    "shutdown.commands.sent.esl"
);
inbound!(
    crash_events,
    "crash.events-plain.received.esl",
    "crash.events-plain.sent.esl"
);
inbound!(
    crash_commands,
    "crash.commands.received.esl",
    "crash.commands.sent.esl"
);
inbound!(
    sip_hold_events,
    "sip-hold.events-plain.received.esl",
    "sip-hold.events-plain.sent.esl"
);
inbound!(
    sip_hold_commands,
    "sip-hold.commands.received.esl",
    "sip-hold.commands.sent.esl"
);
inbound!(
    outbound_commands,
    "outbound.commands.received.esl",
    "outbound.commands.sent.esl"
);

#[tokio::test]
async fn feature_code_outbound_session() {
    replay_outbound(
        "feature-code-outbound.received.esl",
        "feature-code-outbound.sent.esl",
    )
    .await;
}

#[tokio::test]
async fn sip_hold_feature_code_session() {
    replay_outbound(
        "sip-hold-feature-code.received.esl",
        "sip-hold-feature-code.sent.esl",
    )
    .await;
}

#[test]
fn every_capture_file_is_replayed_here() {
    let mut names: Vec<String> = std::fs::read_dir(capture::dir())
        .expect("fixtures dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".received.esl"))
        .collect();
    names.sort();
    let source = include_str!("fixture_replay.rs");
    for n in names {
        assert!(source.contains(&format!("\"{n}\"")), "{n} is not replayed");
    }
}

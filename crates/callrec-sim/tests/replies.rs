//! Every form of reply the switch gives (+OK, -ERR, -USAGE, auth denied, the disconnect
//! notices, bgapi's Job-UUID and BACKGROUND_JOB) is byte for byte what the captures hold.
//! The expected texts are read from the capture of the command that produced them.

mod support;

use std::time::Duration;

use callrec_sim::{SimConfig, Simulator};
use callrec_testkit::capture::{self, Frame};
use freeswitch_esl_tokio::{EslClient, EslError};
use support::RawClient;
use support::compare::Ev;

/// The captured reply to the first command of `sent` that starts with `prefix`.
fn captured_reply(scenario: &str, prefix: &str) -> Frame {
    let sent: Vec<String> =
        capture::commands(&capture::read(&format!("{scenario}.commands.sent.esl")))
            .into_iter()
            .map(|(l, _)| l)
            .collect();
    let replies: Vec<Frame> = capture::frames_of(&format!("{scenario}.commands.received.esl"))
        .into_iter()
        .filter(Frame::is_reply)
        .collect();
    let i = sent
        .iter()
        .position(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("{scenario}: no command {prefix}"));
    replies[i].clone()
}

fn body(f: &Frame) -> String {
    String::from_utf8_lossy(&f.body).into_owned()
}

async fn sim() -> (Simulator, tempfile::TempDir) {
    let spool = tempfile::tempdir().expect("tempdir");
    let sim = Simulator::start(SimConfig {
        spool_dir: spool.path().into(),
        ..SimConfig::default()
    })
    .await
    .expect("simulator");
    (sim, spool)
}

/// A parked loopback call (extension 9998), answered; returns its A leg.
async fn parked_call(sim: &Simulator, client: &mut RawClient) -> String {
    client
        .send("api originate {origination_caller_id_number=1001}loopback/9998/default &park")
        .await;
    sim.wait_for(Duration::from_secs(5), "the loopback legs", |s| {
        s.channels().len() == 2
    })
    .await
    .expect("originate runs");
    sim.advance(Duration::from_secs(1)).expect("manual clock");
    let reply = client
        .next_reply(Duration::from_secs(5))
        .await
        .expect("reply");
    body(&reply)
        .trim()
        .strip_prefix("+OK ")
        .expect("+OK <uuid>")
        .to_string()
}

#[tokio::test]
async fn ok_replies_match_the_capture() {
    let (sim, spool) = sim().await;
    let mut c = RawClient::connect(sim.esl_addr(), "ClueCon").await;
    let a = parked_call(&sim, &mut c).await;
    let path = spool.path().join("x.wav");
    let got = c
        .command(&format!(
            "api uuid_record {a} start {} 0 {{callrec_id=t1}}",
            path.display()
        ))
        .await;
    assert_eq!(got.bytes, captured_reply("record", "api uuid_record").bytes);
    let got = c.command(&format!("api uuid_kill {a}")).await;
    assert_eq!(got.bytes, captured_reply("record", "api uuid_kill").bytes);
}

#[tokio::test]
async fn err_replies_match_the_capture() {
    let (sim, _spool) = sim().await;
    let mut c = RawClient::connect(sim.esl_addr(), "ClueCon").await;
    let errors = [
        "api uuid_record 00000000-0000-0000-0000-000000000000 start /tmp/x.wav",
        "api no_such_command foo",
        "api uuid_buglist 00000000-0000-0000-0000-000000000000",
    ];
    for cmd in errors {
        let got = c.command(cmd).await;
        assert_eq!(body(&got), body(&captured_reply("errors", cmd)), "{cmd}");
        assert_eq!(got.bytes, captured_reply("errors", cmd).bytes, "{cmd}");
    }
    // `pause` on a channel that is not recording.
    let a = parked_call(&sim, &mut c).await;
    let got = c
        .command(&format!("api uuid_record {a} pause /tmp/not-recording.wav"))
        .await;
    let want = capture::frames_of("errors.commands.received.esl")
        .into_iter()
        .find(|f| body(f).contains("Cannot pause"))
        .expect("captured -ERR Cannot pause");
    assert_eq!(got.bytes, want.bytes);
    // `uuid_hold off` on a loopback leg.
    c.command(&format!("api uuid_hold {a}")).await;
    let got = c.command(&format!("api uuid_hold off {a}")).await;
    assert_eq!(
        got.bytes,
        captured_reply("record", "api uuid_hold off").bytes
    );
}

#[tokio::test]
async fn usage_reply_matches_the_capture() {
    let (sim, _spool) = sim().await;
    let mut c = RawClient::connect(sim.esl_addr(), "ClueCon").await;
    let got = c.command("api uuid_record").await;
    let want = capture::frames_of("errors.commands.received.esl")
        .into_iter()
        .find(|f| body(f).starts_with("-USAGE"))
        .expect("captured -USAGE");
    assert_eq!(got.bytes, want.bytes);
}

#[tokio::test]
async fn wrong_password_is_denied_and_the_client_sees_an_auth_failure() {
    let (sim, _spool) = sim().await;
    // On the wire: the switch's reply, then the goodbye notice, then the socket closes.
    let mut raw = tokio::net::TcpStream::connect(sim.esl_addr())
        .await
        .expect("connect");
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    raw.write_all(b"auth wrong\n\n").await.expect("send");
    let mut all = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), raw.read_to_end(&mut all))
        .await
        .expect("the switch closes the socket")
        .expect("read");
    let frames = capture::frames(&all);
    assert_eq!(frames[0].content_type(), "auth/request");
    assert_eq!(
        frames[1].bytes,
        b"Content-Type: command/reply\nReply-Text: -ERR invalid\n\n"
    );
    assert_eq!(frames[2].content_type(), "text/disconnect-notice");
    assert_eq!(frames.len(), 3);
    // Through the client library: an authentication error, not a retryable one.
    let addr = sim.esl_addr();
    let err = EslClient::connect(&addr.ip().to_string(), addr.port(), "wrong")
        .await
        .expect_err("wrong password");
    assert!(
        matches!(err, EslError::AuthenticationFailed { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn exit_gets_the_goodbye_notice() {
    let (sim, _spool) = sim().await;
    let mut c = RawClient::connect(sim.esl_addr(), "ClueCon").await;
    let reply = c.command("exit").await;
    assert_eq!(reply.header("Reply-Text"), Some("+OK bye"));
    let notice = c.next_frame(Duration::from_secs(5)).await.expect("notice");
    assert_eq!(
        notice.bytes,
        b"Content-Type: text/disconnect-notice\nContent-Length: 67\n\n\
          Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"
    );
    assert!(
        c.next_frame(Duration::from_secs(2)).await.is_none(),
        "closed"
    );
}

#[tokio::test]
async fn shutdown_notice_matches_the_capture() {
    let (sim, _spool) = sim().await;
    let mut c = RawClient::connect(sim.esl_addr(), "ClueCon").await;
    sim.shutdown_switch();
    let notice = c.next_frame(Duration::from_secs(5)).await.expect("notice");
    let want = capture::frames_of("shutdown.events-plain.received.esl")
        .into_iter()
        .find(|f| f.content_type() == "text/disconnect-notice")
        .expect("captured notice");
    assert_eq!(notice.bytes, want.bytes);
}

#[tokio::test]
async fn bgapi_replies_with_a_job_uuid_then_fires_background_job() {
    let (sim, _spool) = sim().await;
    let mut c = RawClient::connect(sim.esl_addr(), "ClueCon").await;
    c.command("event plain BACKGROUND_JOB").await;
    let reply = c.command("bgapi status").await;
    let want = captured_reply("errors", "bgapi status");
    let job = reply
        .header("Job-UUID")
        .expect("Job-UUID header")
        .to_string();
    assert_eq!(
        reply.header("Reply-Text"),
        Some(format!("+OK Job-UUID: {job}").as_str())
    );
    let names = |f: &Frame| {
        f.envelope
            .iter()
            .map(|(n, _)| n.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&reply), names(&want));
    let event = c
        .next_event(Duration::from_secs(5))
        .await
        .expect("BACKGROUND_JOB");
    let ev = Ev::of(&event);
    assert_eq!(ev.label, "BACKGROUND_JOB");
    assert_eq!(ev.get("Job-UUID"), Some(job.as_str()));
    let captured = capture::frames_of("errors.events-plain.received.esl")
        .into_iter()
        .filter(Frame::is_event)
        .map(|f| Ev::of(&f))
        .find(|e| e.label == "BACKGROUND_JOB")
        .expect("captured BACKGROUND_JOB");
    assert_eq!(ev.names, captured.names);
    let text = String::from_utf8_lossy(&event.body).into_owned();
    let inner = text.split_once("\n\n").map(|(_, b)| b).unwrap_or("");
    assert!(inner.starts_with("UP 0 years"), "{inner}");
    assert!(inner.contains("FreeSWITCH (Version 1.11.3-dev  64bit) is ready"));
}

/// A command that writes nothing (a `hash select` of a missing key): `api` answers
/// `-ERR no reply`, while `bgapi`'s BACKGROUND_JOB carries the empty output, which
/// `switch_event_serialize` writes as no body at all (`mod_event_socket.c`, `api_exec`).
#[tokio::test]
async fn a_command_that_writes_nothing_is_no_reply_to_api_and_an_empty_job_to_bgapi() {
    let (sim, _spool) = sim().await;
    let mut c = RawClient::connect(sim.esl_addr(), "ClueCon").await;
    let reply = c.command("api hash select/callrec/user_none").await;
    assert_eq!(body(&reply), "-ERR no reply\n");

    c.command("event plain BACKGROUND_JOB").await;
    let reply = c.command("bgapi hash select/callrec/user_none").await;
    let job = reply.header("Job-UUID").expect("Job-UUID").to_string();
    let event = c
        .next_event(Duration::from_secs(5))
        .await
        .expect("BACKGROUND_JOB");
    assert_eq!(Ev::of(&event).get("Job-UUID"), Some(job.as_str()));
    let text = String::from_utf8_lossy(&event.body).into_owned();
    assert!(text.ends_with("\n\n"), "{text:?}");
    assert!(!text.contains("Content-Length"), "{text:?}");

    c.command("api hash insert/callrec/user_1001/5").await;
    c.command("bgapi hash select/callrec/user_1001").await;
    let event = c
        .next_event(Duration::from_secs(5))
        .await
        .expect("BACKGROUND_JOB");
    let text = String::from_utf8_lossy(&event.body).into_owned();
    assert!(text.ends_with("Content-Length: 1\n\n5"), "{text:?}");
}

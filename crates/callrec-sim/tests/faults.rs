//! Each fault does what it says, as a real `EslClient` sees it.

use std::time::Duration;

use callrec_sim::{CallSpec, MalformedFrame, ReplyFault, ReplyRule, SimConfig, Simulator};
use callrec_testkit::wait::Timeout;
use freeswitch_esl_tokio::connection::{ConnectionStatus, DisconnectReason};
use freeswitch_esl_tokio::{EslClient, EslError, EslEventStream, EventFormat};

const DEADLINE: Duration = Duration::from_secs(10);

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

async fn connect(sim: &Simulator) -> Result<(EslClient, EslEventStream), EslError> {
    let addr = sim.esl_addr();
    EslClient::connect(&addr.ip().to_string(), addr.port(), "ClueCon").await
}

/// Connects, retrying while the Event Socket comes back.
async fn reconnect(sim: &Simulator) -> (EslClient, EslEventStream) {
    Timeout::of(DEADLINE)
        .eventually_async("the switch to come back", || async {
            connect(sim).await.ok()
        })
        .await
}

/// Reads the stream until it ends; returns why it ended.
async fn ended(client: &EslClient, events: &mut EslEventStream) -> ConnectionStatus {
    tokio::time::timeout(DEADLINE, async {
        while let Some(item) = events.recv().await {
            let _ = item;
        }
    })
    .await
    .expect("the stream ends");
    client.status()
}

fn row_count(json: &str) -> u64 {
    let v: serde_json::Value = serde_json::from_str(json).expect("json");
    v["row_count"].as_u64().expect("row_count")
}

#[tokio::test]
async fn dropping_connections_cuts_every_socket_and_the_calls_carry_on() {
    let (sim, _spool) = sim().await;
    let (client, mut events) = connect(&sim).await.expect("connect");
    client
        .subscribe_all_events(EventFormat::Plain)
        .await
        .expect("subscribe");
    sim.place_call(CallSpec::internal("1001", "1000"));
    let legs = sim.channels().len();
    assert_eq!(legs, 2, "caller and ringing callee");
    sim.drop_connections();
    let status = ended(&client, &mut events).await;
    assert_eq!(
        status,
        ConnectionStatus::Disconnected(DisconnectReason::ConnectionClosed),
        "no notice, the socket just closes"
    );
    assert_eq!(sim.channels().len(), legs, "the call is still up");
    let (client, _events) = connect(&sim).await.expect("the switch still accepts");
    let rows = client.api("show channels as json").await.expect("api");
    assert_eq!(row_count(rows.body().unwrap_or("")), legs as u64);
}

#[tokio::test]
async fn restart_keeping_channels_only_drops_the_connections() {
    let (sim, _spool) = sim().await;
    let (client, mut events) = connect(&sim).await.expect("connect");
    let call = sim.place_call(CallSpec::internal("1001", "1000").ring(Duration::from_secs(1)));
    sim.advance(Duration::from_secs(2)).expect("clock");
    sim.restart(true);
    ended(&client, &mut events).await;
    let (client, _events) = reconnect(&sim).await;
    let exists = client
        .api(&format!("uuid_exists {}", call.caller_uuid))
        .await
        .expect("api");
    assert_eq!(exists.body(), Some("true"));
}

#[tokio::test]
async fn restart_losing_channels_comes_back_empty_with_a_new_core() {
    let (sim, _spool) = sim().await;
    let (client, mut events) = connect(&sim).await.expect("connect");
    client
        .subscribe_all_events(EventFormat::Plain)
        .await
        .expect("subscribe");
    sim.place_call(CallSpec::internal("1001", "1000"));
    sim.advance(Duration::from_secs(20)).expect("clock");
    let before = next_core_uuid(&mut events).await;
    sim.restart(false);
    ended(&client, &mut events).await;
    let (client, mut events) = reconnect(&sim).await;
    let rows = client.api("show channels as json").await.expect("api");
    assert_eq!(row_count(rows.body().unwrap_or("")), 0);
    client
        .subscribe_all_events(EventFormat::Plain)
        .await
        .expect("subscribe");
    sim.advance(Duration::from_secs(20)).expect("clock");
    let after = next_core_uuid(&mut events).await;
    assert_ne!(before, after, "a restarted switch has a new Core-UUID");
}

async fn next_core_uuid(events: &mut EslEventStream) -> String {
    tokio::time::timeout(DEADLINE, async {
        loop {
            let ev = events.recv().await.expect("stream open").expect("event");
            if let Some(u) = ev.header_str("Core-UUID") {
                return u.to_string();
            }
        }
    })
    .await
    .expect("an event")
}

#[tokio::test]
async fn kill_9_closes_without_notice_and_leaves_the_unpatched_header_and_the_flushed_blocks() {
    let (sim, spool) = sim().await;
    let (client, mut events) = connect(&sim).await.expect("connect");
    client
        .subscribe_all_events(EventFormat::Plain)
        .await
        .expect("subscribe");
    let call = sim.place_call(CallSpec::internal("1001", "1000").ring(Duration::from_secs(1)));
    sim.advance(Duration::from_secs(1)).expect("clock");
    let path = spool.path().join("during-crash.wav");
    let reply = client
        .api(&format!(
            "uuid_record {} start {} 0 {{callrec_id=cr1}}",
            call.caller_uuid,
            path.display()
        ))
        .await
        .expect("api");
    assert_eq!(reply.body(), Some("+OK Success\n"));
    sim.advance(Duration::from_secs(5)).expect("clock");
    sim.crash();
    let status = ended(&client, &mut events).await;
    assert_eq!(
        status,
        ConnectionStatus::Disconnected(DisconnectReason::ConnectionClosed)
    );
    // 4.52 s of stereo audio (the vanilla dialplan records SIP calls in stereo) is 144,640
    // bytes, of which the switch's writer had flushed two 64 KiB blocks; the header is still
    // the one written at the start: RIFF size 8, data size 0 (measured on the real switch).
    let bytes = std::fs::read(&path).expect("file");
    assert_eq!(bytes.len(), 44 + 2 * 65_536);
    assert_eq!(&bytes[4..8], &8u32.to_le_bytes(), "RIFF size");
    assert_eq!(&bytes[40..44], &0u32.to_le_bytes(), "data size");
    assert!(
        connect(&sim).await.is_err(),
        "a dead switch refuses connections"
    );
    sim.boot();
    let (client, _events) = reconnect(&sim).await;
    let exists = client
        .api(&format!("uuid_exists {}", call.caller_uuid))
        .await
        .expect("api");
    assert_eq!(exists.body(), Some("false"));
}

/// What a raw TCP peer reads from a socket until it ends: the bytes, and whether the end
/// was a reset.
async fn read_to_end(stream: std::net::TcpStream) -> (Vec<u8>, bool) {
    use tokio::io::AsyncReadExt;
    stream.set_nonblocking(true).expect("nonblocking");
    let mut stream = tokio::net::TcpStream::from_std(stream).expect("register");
    let mut got = Vec::new();
    let outcome = tokio::time::timeout(DEADLINE, stream.read_to_end(&mut got))
        .await
        .expect("the socket ends");
    (got, outcome.is_err())
}

// On the test's single thread nothing of the simulator runs between `crash()` returning
// and the next line, so the port must already be closed when `crash()` returns.
#[tokio::test(flavor = "current_thread")]
async fn a_killed_switch_refuses_connections_until_it_boots() {
    let (sim, _spool) = sim().await;
    let addr = sim.esl_addr();
    let (client, mut events) = connect(&sim).await.expect("connect");
    // A client whose handshake the kernel completed but that nobody accepted yet.
    let waiting = std::net::TcpStream::connect(addr).expect("handshake completes");
    sim.crash();
    let refused = std::net::TcpStream::connect(addr).expect_err("a dead switch's port refuses");
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    let (got, _reset) = read_to_end(waiting).await;
    assert!(
        got.is_empty(),
        "a dead switch greeted a client: {:?}",
        String::from_utf8_lossy(&got)
    );
    ended(&client, &mut events).await;
    assert!(connect(&sim).await.is_err(), "still dead");
    assert!(connect(&sim).await.is_err(), "and still dead");
    sim.boot();
    let (client, _events) = connect(&sim)
        .await
        .expect("a booted switch accepts at once");
    let v = client.api("version").await.expect("api");
    assert!(v.body().unwrap_or("").starts_with("FreeSWITCH Version"));
}

#[tokio::test(flavor = "current_thread")]
async fn a_shut_down_switch_refuses_connections_until_it_boots() {
    let (sim, _spool) = sim().await;
    let addr = sim.esl_addr();
    sim.shutdown_switch();
    let refused = std::net::TcpStream::connect(addr).expect_err("the port is closed");
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    sim.boot();
    connect(&sim)
        .await
        .expect("a booted switch accepts at once");
}

#[tokio::test]
async fn shutdown_ends_the_session_with_the_notice() {
    let (sim, _spool) = sim().await;
    let (client, mut events) = connect(&sim).await.expect("connect");
    sim.shutdown_switch();
    let status = ended(&client, &mut events).await;
    assert_eq!(
        status,
        ConnectionStatus::Disconnected(DisconnectReason::ServerNotice {
            controlled_session_uuid: None,
            body: Some("The system is being shut down.\n".into()),
        })
    );
}

/// `fsctl shutdown` with every leg of a SIP call and of a loopback call recorded: each
/// recording is closed (a complete WAV of the size its RECORD_STOP reports) and its
/// RECORD_STOP reaches the client before the notice that ends the session.
#[tokio::test]
async fn shutdown_stops_every_recording_on_every_leg_before_the_notice() {
    let (sim, spool) = sim().await;
    let (client, mut events) = connect(&sim).await.expect("connect");
    client
        .subscribe_all_events(EventFormat::Plain)
        .await
        .expect("subscribe");
    let calls = [
        sim.place_call(CallSpec::internal("1001", "1000").ring(Duration::from_secs(1))),
        sim.place_call(
            CallSpec::outbound("1002", "9999")
                .loopback("9999")
                .ring(Duration::from_secs(1)),
        ),
    ];
    sim.advance(Duration::from_secs(2)).expect("clock");
    let mut paths = Vec::new();
    for (n, call) in calls.iter().enumerate() {
        for (side, leg) in [("caller", &call.caller_uuid), ("callee", &call.callee_uuid)] {
            let path = spool.path().join(format!("call{n}-{side}.wav"));
            let reply = client
                .api(&format!("uuid_record {leg} start {}", path.display()))
                .await
                .expect("api");
            assert_eq!(reply.body(), Some("+OK Success\n"), "{side} of call {n}");
            paths.push(path);
        }
    }
    sim.advance(Duration::from_secs(3)).expect("clock");
    sim.shutdown_switch();
    let mut stopped = Vec::new();
    tokio::time::timeout(DEADLINE, async {
        while let Some(item) = events.recv().await {
            let ev = item.expect("parsed");
            if ev.header_str("Event-Name") == Some("RECORD_STOP") {
                let path = ev.header_str("Record-File-Path").expect("path").to_string();
                let size: u64 = ev
                    .header_str("variable_record_file_size")
                    .and_then(|v| v.parse().ok())
                    .expect("record_file_size");
                stopped.push((path, size));
            }
        }
    })
    .await
    .expect("the session ends");
    assert_eq!(
        client.status(),
        ConnectionStatus::Disconnected(DisconnectReason::ServerNotice {
            controlled_session_uuid: None,
            body: Some("The system is being shut down.\n".into()),
        }),
        "the notice came after every event"
    );
    for path in &paths {
        let shown = path.display().to_string();
        let size = stopped
            .iter()
            .find(|(p, _)| *p == shown)
            .map(|(_, s)| *s)
            .unwrap_or_else(|| panic!("no RECORD_STOP for {shown}"));
        assert!(size > 44, "{shown}: audio was recorded");
        assert_eq!(
            std::fs::metadata(path).expect("file").len(),
            size,
            "{shown}: closed at the size RECORD_STOP reports"
        );
    }
    assert_eq!(stopped.len(), paths.len(), "one RECORD_STOP per recording");
    let unstopped: Vec<_> = sim
        .recordings()
        .into_iter()
        .filter(|r| r.stopped.is_none())
        .map(|r| r.path)
        .collect();
    assert!(unstopped.is_empty(), "abandoned: {unstopped:?}");
}

#[tokio::test]
async fn a_delayed_reply_outlasts_a_short_command_timeout() {
    let (sim, _spool) = sim().await;
    let (client, _events) = connect(&sim).await.expect("connect");
    sim.add_reply_fault(ReplyRule {
        command_prefix: Some("api status".into()),
        fault: ReplyFault::Delay(Duration::from_secs(2)),
        remaining: Some(1),
    });
    client.set_command_timeout(Duration::from_millis(100));
    let err = client.api("status").await.expect_err("the reply is late");
    assert!(matches!(err, EslError::Timeout { .. }), "{err}");
    // The late reply is still written; the client discards it and carries on.
    client.set_command_timeout(Duration::from_secs(5));
    let v = client.api("version").await.expect("next command");
    assert!(v.body().unwrap_or("").starts_with("FreeSWITCH Version"));
}

#[tokio::test]
async fn a_withheld_reply_never_comes_but_the_command_ran() {
    let (sim, spool) = sim().await;
    let (client, mut events) = connect(&sim).await.expect("connect");
    client
        .subscribe_events_raw(EventFormat::Plain, "RECORD_START")
        .await
        .expect("subscribe");
    let call = sim.place_call(CallSpec::internal("1001", "1000").ring(Duration::from_secs(1)));
    sim.advance(Duration::from_secs(1)).expect("clock");
    sim.add_reply_fault(ReplyRule {
        command_prefix: Some("api uuid_record".into()),
        fault: ReplyFault::Withhold,
        remaining: Some(1),
    });
    client.set_command_timeout(Duration::from_millis(300));
    let path = spool.path().join("lost-reply.wav");
    let err = client
        .api(&format!(
            "uuid_record {} start {}",
            call.caller_uuid,
            path.display()
        ))
        .await
        .expect_err("no reply");
    assert!(matches!(err, EslError::Timeout { .. }), "{err}");
    let ev = tokio::time::timeout(DEADLINE, events.recv())
        .await
        .expect("event")
        .expect("open")
        .expect("parsed");
    assert_eq!(ev.header_str("Event-Name"), Some("RECORD_START"));
    assert_eq!(
        sim.channels()[0].recording,
        vec![path.display().to_string()]
    );
}

#[tokio::test]
async fn a_malformed_frame_is_the_clients_problem_not_the_switchs() {
    for kind in [
        MalformedFrame::BadContentLength,
        MalformedFrame::UnknownContentType,
        MalformedFrame::GarbageEvent,
    ] {
        let (sim, _spool) = sim().await;
        let (client, mut events) = connect(&sim).await.expect("connect");
        client
            .subscribe_all_events(EventFormat::Json)
            .await
            .expect("subscribe");
        sim.send_malformed_frame(kind);
        let outcome = tokio::time::timeout(DEADLINE, events.recv())
            .await
            .expect("something");
        match outcome {
            Some(Err(_)) | None => {}
            Some(Ok(ev)) => panic!("{kind:?} was read as an event: {:?}", ev.event_type()),
        }
        // The switch itself is fine and serves the next client.
        let (other, _e) = connect(&sim).await.expect("connect");
        let v = other.api("version").await.expect("api");
        assert!(v.body().unwrap_or("").starts_with("FreeSWITCH"), "{kind:?}");
    }
}

#[tokio::test]
async fn refused_auth_fails_even_with_the_right_password() {
    let (sim, _spool) = sim().await;
    sim.refuse_auth(true);
    let err = connect(&sim).await.expect_err("refused");
    assert!(
        matches!(err, EslError::AuthenticationFailed { .. }),
        "{err}"
    );
    sim.refuse_auth(false);
    connect(&sim).await.expect("accepted again");
}

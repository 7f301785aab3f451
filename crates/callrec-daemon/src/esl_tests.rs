//! The ESL session against the ESL crate's scripted switch (`mock`), fed with frames of the
//! real captures.

use std::sync::Arc;
use std::time::Duration;

use callrec_model::{PauseBehavior, RecordingId, RecordingMode};
use freeswitch_esl_tokio::EventFormat;
use freeswitch_esl_tokio::mock::{MockBackgroundJob, MockConnection, MockEslServer};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::core::{Core, StoreWork, system_clock};
use crate::decide::{Recorder, Settings, StoreOp};
use crate::directory::{Directory, DirectoryUser, SiteRules};
use crate::fixtures;
use crate::metrics::Metrics;

const DEADLINE: Duration = Duration::from_secs(10);

fn esl_settings(port: u16, password: &str) -> EslSettings {
    EslSettings {
        host: "127.0.0.1".into(),
        port,
        user: String::new(),
        password: password.into(),
        connect_timeout: Duration::from_secs(2),
        command_timeout: Duration::from_secs(2),
        liveness_timeout: Some(Duration::from_secs(30)),
        format: EventFormat::Plain,
        queue_size: 64,
        block_budget: Duration::from_millis(500),
        reconnect_initial: Duration::from_millis(20),
        reconnect_max: Duration::from_millis(200),
    }
}

fn core() -> (Arc<Core>, mpsc::UnboundedReceiver<StoreOp>) {
    let mut n = 0u32;
    let recorder = Recorder::new(
        Settings {
            spool_dir: "/spool".into(),
            format: "wav".into(),
            owner_headers: Settings::default_owner_headers(),
            feature_codes: callrec_config::FeatureCodesConfig::default(),
        },
        Directory::new(
            vec![SiteRules {
                pause_behavior: PauseBehavior::Silence,
                ..SiteRules::with_defaults("default")
            }],
            vec![DirectoryUser {
                id: None,
                site: "default".into(),
                extension: "1001".into(),
                mode: RecordingMode::Always,
                numbers: vec![],
            }],
        ),
        Box::new(move || {
            n += 1;
            format!("01900000-0000-7000-8000-{n:012}")
                .parse::<RecordingId>()
                .expect("id")
        }),
    );
    let (tx, mut work) = mpsc::unbounded_channel();
    let core = Arc::new(Core::new(
        recorder,
        Arc::new(Metrics::default()),
        tx,
        system_clock(),
        Duration::from_secs(2),
    ));
    // Stands in for the store writer: hands the operations to the test, answers at once.
    let (ops_tx, ops) = mpsc::unbounded_channel();
    let writer = core.clone();
    tokio::spawn(async move {
        while let Some(next) = work.recv().await {
            match next {
                StoreWork::Op(op) => {
                    let _ = ops_tx.send(op);
                }
                StoreWork::Resolve { ticket, outcome } => writer.resolve(ticket, outcome),
            }
        }
    });
    (core, ops)
}

async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, f)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Accepts the two connections of a session and answers their subscriptions.
async fn accept_session(server: &MockEslServer) -> (MockConnection, MockConnection) {
    let mut events = within("the event connection", server.accept())
        .await
        .expect("auth");
    let sub = events.read_command().await.expect("subscription");
    assert_eq!(
        sub,
        "event plain CHANNEL_ANSWER CHANNEL_BRIDGE CHANNEL_HOLD CHANNEL_UNHOLD CHANNEL_HANGUP_COMPLETE RECORD_START RECORD_STOP\n\n"
    );
    events
        .reply_ok_text("event listener enabled plain")
        .await
        .unwrap();
    assert_eq!(
        events.read_command().await.unwrap(),
        "event plain HEARTBEAT\n\n"
    );
    events
        .reply_ok_text("event listener enabled plain")
        .await
        .unwrap();

    let mut commands = within("the command connection", server.accept())
        .await
        .expect("auth");
    assert_eq!(
        commands.read_command().await.unwrap(),
        "event plain BACKGROUND_JOB\n\n"
    );
    commands
        .reply_ok_text("event listener enabled plain")
        .await
        .unwrap();
    assert_eq!(
        commands.read_command().await.unwrap(),
        "event plain HEARTBEAT\n\n"
    );
    commands
        .reply_ok_text("event listener enabled plain")
        .await
        .unwrap();
    (events, commands)
}

fn frame(file: &str, name: &str, nth: usize) -> String {
    let frames = fixtures::raw_frames(file);
    let (_, raw) = frames
        .iter()
        .filter(|(n, _)| n.as_deref() == Some(name))
        .nth(nth)
        .expect("the capture has this frame");
    String::from_utf8(raw.clone()).expect("utf-8 frame")
}

#[tokio::test]
async fn answer_from_the_wire_sends_uuid_record_through_bgapi_and_tracks_its_job() {
    let server = MockEslServer::bind("127.0.0.1:0", "ClueCon").await.unwrap();
    let (core, mut store) = core();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(supervise(
        core.clone(),
        esl_settings(server.port(), "ClueCon"),
        shutdown.clone(),
    ));
    let (mut events, mut commands) = accept_session(&server).await;

    events
        .send_raw(&frame(
            "record.events-plain.received.esl",
            "CHANNEL_ANSWER",
            0,
        ))
        .await
        .unwrap();
    let command = within("uuid_record", commands.read_command())
        .await
        .unwrap();
    let id = "01900000-0000-7000-8000-000000000001";
    assert_eq!(
        command,
        format!(
            "bgapi uuid_record b0121122-8b41-4d85-8be3-48d9a317c792 start /spool/{id}.wav 0 {{callrec_id={id},RECORD_MIN_SEC=3}}\n\n"
        )
    );
    commands.reply_bgapi("job-1").await.unwrap();
    // Another client's job result first: it must be ignored.
    commands
        .send_background_job(&MockBackgroundJob::new("someone-else", "status"), "+OK\n")
        .await
        .unwrap();
    commands
        .send_background_job(
            &MockBackgroundJob::new("job-1", "uuid_record"),
            "+OK Success\n",
        )
        .await
        .unwrap();

    let create = within("the row", store.recv()).await.unwrap();
    assert!(matches!(create, StoreOp::Create(ref r) if r.user == "1001"));
    assert!(matches!(
        within("the start segment", store.recv()).await.unwrap(),
        StoreOp::Segment { .. }
    ));
    assert_eq!(
        core.metrics
            .command_failures
            .get_or_create(&vec![("kind".into(), "unanswered".into())])
            .get(),
        0
    );
    assert!(*core.esl_up.borrow());

    shutdown.cancel();
    assert_eq!(within("shutdown", task).await.unwrap(), Ok(()));
}

#[tokio::test]
async fn a_refused_uuid_record_is_retried_once() {
    let server = MockEslServer::bind("127.0.0.1:0", "ClueCon").await.unwrap();
    let (core, mut store) = core();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(supervise(
        core.clone(),
        esl_settings(server.port(), "ClueCon"),
        shutdown.clone(),
    ));
    let (mut events, mut commands) = accept_session(&server).await;
    events
        .send_raw(&frame(
            "record.events-plain.received.esl",
            "CHANNEL_ANSWER",
            0,
        ))
        .await
        .unwrap();
    for job in ["job-1", "job-2"] {
        let command = within("uuid_record", commands.read_command())
            .await
            .unwrap();
        assert!(
            command.starts_with("bgapi uuid_record b0121122"),
            "{command}"
        );
        commands.reply_bgapi(job).await.unwrap();
        commands
            .send_background_job(
                &MockBackgroundJob::new(job, "uuid_record"),
                "-ERR Cannot locate session!\n",
            )
            .await
            .unwrap();
    }
    let mut ops = Vec::new();
    while ops.len() < 3 {
        ops.push(within("store ops", store.recv()).await.unwrap());
    }
    assert!(
        matches!(&ops[2], StoreOp::Fail { reason, .. } if reason.contains("Cannot locate session")),
        "{ops:?}"
    );
    assert_eq!(
        Metrics::count(&core.metrics.command_failures, "kind", "record_start"),
        2
    );
    shutdown.cancel();
    within("shutdown", task).await.unwrap().unwrap();
}

#[tokio::test]
async fn wrong_password_is_a_configuration_error_naming_the_setting() {
    let server = MockEslServer::bind("127.0.0.1:0", "right").await.unwrap();
    let (core, _store) = core();
    let task = tokio::spawn(supervise(
        core,
        esl_settings(server.port(), "wrong"),
        CancellationToken::new(),
    ));
    let accepted = server.accept().await;
    assert!(accepted.is_err(), "the mock refuses the wrong password");
    let err = within("the supervisor to give up", task)
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, EslConfigError::BadCredentials { .. }));
    assert!(err.to_string().contains("`esl.password`"), "{err}");
}

#[tokio::test]
async fn a_dropped_connection_is_reestablished_and_reconciled() {
    let server = MockEslServer::bind("127.0.0.1:0", "ClueCon").await.unwrap();
    let (core, _store) = core();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(supervise(
        core.clone(),
        esl_settings(server.port(), "ClueCon"),
        shutdown.clone(),
    ));
    let (events, commands) = accept_session(&server).await;
    events.drop_connection().await;
    drop(commands);
    // The supervisor comes back with a fresh session.
    let (_events, _commands) = accept_session(&server).await;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while core.metrics.esl_connects.get() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "no second session");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        Metrics::count(&core.metrics.reconciliations, "reason", "connect"),
        2
    );
    shutdown.cancel();
    within("shutdown", task).await.unwrap().unwrap();
}

#[tokio::test]
async fn malformed_events_are_counted_and_the_session_goes_on() {
    let server = MockEslServer::bind("127.0.0.1:0", "ClueCon").await.unwrap();
    let (core, mut store) = core();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(supervise(
        core.clone(),
        esl_settings(server.port(), "ClueCon"),
        shutdown.clone(),
    ));
    let (mut events, mut commands) = accept_session(&server).await;
    // A channel event without Unique-ID, then one with a bad timestamp.
    events
        .send_event_plain("CHANNEL_ANSWER", [("Event-Date-Timestamp", "1")])
        .await
        .unwrap();
    events
        .send_event_plain(
            "CHANNEL_HOLD",
            [("Unique-ID", "x"), ("Event-Date-Timestamp", "soon")],
        )
        .await
        .unwrap();
    // Still alive: a real answer is acted on.
    events
        .send_raw(&frame(
            "record.events-plain.received.esl",
            "CHANNEL_ANSWER",
            0,
        ))
        .await
        .unwrap();
    let command = within("uuid_record", commands.read_command())
        .await
        .unwrap();
    assert!(command.starts_with("bgapi uuid_record"));
    assert!(matches!(
        within("row", store.recv()).await.unwrap(),
        StoreOp::Create(_)
    ));
    assert_eq!(core.metrics.malformed_frames.get(), 2);
    assert_eq!(core.metrics.esl_connects.get(), 1, "the same session");
    shutdown.cancel();
    within("shutdown", task).await.unwrap().unwrap();
}

#[tokio::test]
async fn an_unparseable_frame_is_counted_and_the_session_rebuilt() {
    let server = MockEslServer::bind("127.0.0.1:0", "ClueCon").await.unwrap();
    let (core, mut store) = core();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(supervise(
        core.clone(),
        esl_settings(server.port(), "ClueCon"),
        shutdown.clone(),
    ));
    let (mut events, _commands) = accept_session(&server).await;
    // A content type no switch sends: the framing after it cannot be trusted.
    events
        .send_raw("Content-Type: text/event-yaml\nContent-Length: 3\n\nx: 1")
        .await
        .unwrap();
    let (mut events, mut commands) = accept_session(&server).await;
    events
        .send_raw(&frame(
            "record.events-plain.received.esl",
            "CHANNEL_ANSWER",
            0,
        ))
        .await
        .unwrap();
    let command = within("uuid_record", commands.read_command())
        .await
        .unwrap();
    assert!(command.starts_with("bgapi uuid_record"));
    assert!(matches!(
        within("row", store.recv()).await.unwrap(),
        StoreOp::Create(_)
    ));
    assert_eq!(core.metrics.malformed_frames.get(), 1);
    shutdown.cancel();
    within("shutdown", task).await.unwrap().unwrap();
}

#[tokio::test]
async fn a_silent_switch_is_declared_dead_and_reconnected() {
    let server = MockEslServer::bind("127.0.0.1:0", "ClueCon").await.unwrap();
    let (core, _store) = core();
    let shutdown = CancellationToken::new();
    let mut settings = esl_settings(server.port(), "ClueCon");
    // No HEARTBEAT, no events: after this long the connection counts as dead.
    settings.liveness_timeout = Some(Duration::from_millis(300));
    let task = tokio::spawn(supervise(core.clone(), settings, shutdown.clone()));
    let (_events, _commands) = accept_session(&server).await;
    // The sockets stay open but silent; the daemon gives up on them and comes back.
    let (_events2, _commands2) = accept_session(&server).await;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while core.metrics.esl_connects.get() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "no second session");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    shutdown.cancel();
    within("shutdown", task).await.unwrap().unwrap();
}

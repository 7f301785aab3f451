//! The ESL session against the ESL crate's scripted switch (`mock`), fed with frames of the
//! real captures.

use std::sync::Arc;
use std::time::Duration;

use callrec_model::RecordingMode;
use callrec_testkit::wait::Timeout;
use freeswitch_esl_tokio::EventFormat;
use freeswitch_esl_tokio::mock::{MockBackgroundJob, MockConnection, MockEslServer};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::core::{Core, StoreWork};
use crate::directory::testing;
use crate::fixtures::{self, SPOOL};
use crate::metrics::Metrics;
use crate::recorder::StoreOp;

const WAIT: Timeout = Timeout::secs(10);

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
    let (tx, mut work) = mpsc::unbounded_channel();
    let core = fixtures::core(fixtures::recorder(&[("1001", RecordingMode::Always)]), tx);
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

/// The `record` capture's CHANNEL_ANSWER of the loopback B leg, which 1001's recording goes
/// on at once (the A leg's, sent alone, would wait for its B leg to be heard of).
fn loopback_b_answer() -> String {
    fixtures::event_frame("record.events-plain.received.esl", "CHANNEL_ANSWER", 1)
}

/// Accepts the two connections of a session and answers their subscriptions.
async fn accept_session(server: &MockEslServer) -> (MockConnection, MockConnection) {
    let mut events = WAIT
        .within("the event connection", server.accept())
        .await
        .expect("auth");
    let sub = events.read_command().await.expect("subscription");
    assert_eq!(
        sub,
        "event plain CHANNEL_PROGRESS CHANNEL_PROGRESS_MEDIA CHANNEL_ANSWER CHANNEL_BRIDGE CHANNEL_HOLD CHANNEL_UNHOLD CHANNEL_HANGUP_COMPLETE RECORD_START RECORD_STOP\n\n"
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

    let mut commands = WAIT
        .within("the command connection", server.accept())
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

    events.send_raw(&loopback_b_answer()).await.unwrap();
    let command = WAIT
        .within("uuid_record", commands.read_command())
        .await
        .unwrap();
    let id = "01900000-0000-7000-8000-000000000001";
    assert_eq!(
        command,
        format!(
            "bgapi uuid_record 2622a231-8464-4481-95ad-8418d1f467c0 start {SPOOL}/{id}.wav 0 {{callrec_id={id},RECORD_MIN_SEC=3}}\n\n"
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

    let create = WAIT.within("the row", store.recv()).await.unwrap();
    assert!(matches!(create, StoreOp::Create(ref r) if r.user == testing::id_of("1001")));
    assert!(matches!(
        WAIT.within("the start segment", store.recv())
            .await
            .unwrap(),
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
    assert_eq!(WAIT.within("shutdown", task).await.unwrap(), Ok(()));
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
    events.send_raw(&loopback_b_answer()).await.unwrap();
    for job in ["job-1", "job-2"] {
        let command = WAIT
            .within("uuid_record", commands.read_command())
            .await
            .unwrap();
        assert!(
            command.starts_with("bgapi uuid_record 2622a231"),
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
        ops.push(WAIT.within("store ops", store.recv()).await.unwrap());
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
    WAIT.within("shutdown", task).await.unwrap().unwrap();
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
    let err = WAIT
        .within("the supervisor to give up", task)
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
    WAIT.eventually("a second session", || core.metrics.esl_connects.get() >= 2)
        .await;
    assert_eq!(
        Metrics::count(&core.metrics.reconciliations, "reason", "connect"),
        2
    );
    shutdown.cancel();
    WAIT.within("shutdown", task).await.unwrap().unwrap();
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
    events.send_raw(&loopback_b_answer()).await.unwrap();
    let command = WAIT
        .within("uuid_record", commands.read_command())
        .await
        .unwrap();
    assert!(command.starts_with("bgapi uuid_record"));
    assert!(matches!(
        WAIT.within("row", store.recv()).await.unwrap(),
        StoreOp::Create(_)
    ));
    assert_eq!(core.metrics.malformed_frames.get(), 2);
    assert_eq!(core.metrics.esl_connects.get(), 1, "the same session");
    shutdown.cancel();
    WAIT.within("shutdown", task).await.unwrap().unwrap();
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
    events.send_raw(&loopback_b_answer()).await.unwrap();
    let command = WAIT
        .within("uuid_record", commands.read_command())
        .await
        .unwrap();
    assert!(command.starts_with("bgapi uuid_record"));
    assert!(matches!(
        WAIT.within("row", store.recv()).await.unwrap(),
        StoreOp::Create(_)
    ));
    assert_eq!(core.metrics.malformed_frames.get(), 1);
    shutdown.cancel();
    WAIT.within("shutdown", task).await.unwrap().unwrap();
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
    WAIT.eventually("a second session", || core.metrics.esl_connects.get() >= 2)
        .await;
    shutdown.cancel();
    WAIT.within("shutdown", task).await.unwrap().unwrap();
}

#[tokio::test]
async fn a_job_that_wrote_nothing_is_an_empty_output_and_no_malformed_frame() {
    let (core, _ops) = core();
    // Plain events leave an empty body out; JSON carries it as "".
    assert_eq!(
        job_result(&core, "hash_dump db callrec", None).ok(),
        Some(String::new())
    );
    assert_eq!(
        job_result(&core, "hash_dump db callrec", Some("")).ok(),
        Some(String::new())
    );
    assert_eq!(
        job_result(&core, "uuid_buglist x", Some("+OK\n")).ok(),
        Some(String::new())
    );
    assert!(matches!(
        job_result(&core, "uuid_record x stop all", Some("-ERR Cannot stop record session!\n")),
        Err(QueryError::Refused { reply, .. }) if reply.starts_with("-ERR Cannot stop")
    ));
    assert_eq!(core.metrics.malformed_frames.get(), 0);
}

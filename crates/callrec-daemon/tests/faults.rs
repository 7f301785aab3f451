//! What goes wrong on the wire and at the switch, and what the daemon does about it
//! (SPEC §3.6, §9): dropped connections, restarts, a switch down at start, a switch killed
//! mid-recording, a wrong password, malformed frames, unanswered commands, shutdown.

mod support;

use std::time::Duration;

use callrec_daemon::DaemonError;
use callrec_model::{RecordingMode, RecordingState};
use callrec_sim::{CallSpec, MalformedFrame, ReplyFault, ReplyRule, Side};
use callrec_testkit::wait::{eventually, eventually_async};
use support::{Bed, Setup};

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

async fn sessions(bed: &Bed, n: u64) {
    eventually(&format!("ESL session #{n}"), || {
        (bed.handle.metrics().esl_connects.get() >= n && bed.handle.readiness().esl_connected)
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn esl_dropped_mid_call_and_restored_recording_continues_and_is_stored() {
    let bed = Bed::start(Setup::users(&[("1001", RecordingMode::Always)])).await;
    bed.sim.place_call(
        CallSpec::inbound("02079460000", "1001")
            .ring(secs(1.0))
            .talk(secs(8.0), Side::Caller),
    );
    bed.advance(secs(1.0));
    bed.recording_on_switch(1).await;
    bed.advance(secs(2.0));
    bed.sim.drop_connections();
    sessions(&bed, 2).await;
    assert_eq!(
        bed.handle.live_calls().len(),
        1,
        "the call is still tracked"
    );
    bed.advance(secs(6.0));
    let stored = bed.wait_recordings(RecordingState::Stored, 1).await;
    assert!(stored[0].duration_ms.unwrap() > 7_000);
    bed.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hangup_missed_while_disconnected_is_found_by_reconciliation_and_stored() {
    let bed = Bed::start(Setup::users(&[("1001", RecordingMode::Always)])).await;
    bed.sim.place_call(
        CallSpec::outbound("1001", "02079461111")
            .ring(secs(1.0))
            .talk(secs(5.0), Side::Caller),
    );
    bed.advance(secs(1.0));
    bed.recording_on_switch(1).await;
    // The connection drops and the call ends before the daemon is back: its RECORD_STOP
    // and hangups are never seen.
    bed.sim.drop_connections();
    bed.advance(secs(5.0));
    sessions(&bed, 2).await;
    let stored = bed.wait_recordings(RecordingState::Stored, 1).await;
    assert!(stored[0].duration_ms.unwrap() > 4_000);
    assert!(bed.handle.live_calls().is_empty());
    bed.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_armed_before_answer_whose_answer_and_hangup_were_missed_is_stored() {
    // The CI failure of 2026-12-04: the recording was armed while the call rang (early
    // media), the connection dropped before CHANNEL_ANSWER reached the daemon, and the call
    // ended before it was back. The switch wrote the whole call; nothing indexed it and the
    // file stayed in the spool. Now the channel found gone hands the armed file to the store
    // writer, which stores it because it holds audio.
    let bed = Bed::start(Setup::users(&[("1001", RecordingMode::Always)])).await;
    reconciled(&bed).await;
    bed.sim.place_call(
        CallSpec::outbound("1001", "02079461111")
            .with_early_media()
            .ring(secs(2.0))
            .talk(secs(5.0), Side::Caller),
    );
    bed.advance(secs(1.0));
    bed.recording_on_switch_only(1).await;
    assert!(bed.recordings().await.is_empty(), "armed: no row yet");
    bed.sim.drop_connections();
    bed.advance(secs(7.0));
    sessions(&bed, 2).await;
    let stored = bed.wait_recordings(RecordingState::Stored, 1).await;
    let seconds = stored[0].duration_ms.unwrap() as f64 / 1000.0;
    assert!((4.5..=5.5).contains(&seconds), "{seconds} s");
    let left: Vec<_> = std::fs::read_dir(&bed.config.storage.spool_dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "wav"))
        .collect();
    assert!(left.is_empty(), "nothing left in the spool: {left:?}");
    bed.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switch_restarted_with_the_calls_gone_every_file_it_wrote_is_stored() {
    let bed = Bed::start(Setup::users(&[("1001", RecordingMode::Always)])).await;
    // Loopback calls as in the `shutdown` capture.
    for n in ["02079460000", "02079460001"] {
        bed.sim.place_call(
            CallSpec::outbound("1001", n)
                .loopback("9999")
                .callrec_user("1001")
                .ring(secs(1.0)),
        );
    }
    bed.advance(secs(1.0));
    bed.recording_on_switch(2).await;
    bed.advance(secs(4.0));
    // `fsctl shutdown`: calls hang up, recordings are closed, then the switch goes away.
    bed.sim.shutdown_switch();
    let stored = bed.wait_recordings(RecordingState::Stored, 2).await;
    assert!(stored.iter().all(|r| r.duration_ms.unwrap() > 3_000));
    bed.sim.boot();
    sessions(&bed, 2).await;
    // And it records again.
    bed.sim.place_call(
        CallSpec::inbound("02079460002", "1001")
            .ring(secs(1.0))
            .talk(secs(4.0), Side::Caller),
    );
    bed.advance(secs(1.0));
    bed.recording_on_switch(1).await;
    bed.advance(secs(4.0));
    bed.wait_recordings(RecordingState::Stored, 3).await;
    bed.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switch_down_at_start_is_retried_until_it_is_up() {
    // A port nobody listens on yet: the switch is down when the daemon starts.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut setup = Setup::users(&[("1001", RecordingMode::Always)]);
    setup.esl_port = Some(port);
    let bed = Bed::start_unconnected(setup, None).await;
    eventually("a few failed connection attempts", || {
        (bed.handle
            .metrics_text()
            .contains("callrec_esl_connects_total 0"))
        .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!bed.handle.readiness().is_ready());
    // The switch comes up on that port.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let switch = callrec_sim::Simulator::start_on(
        listener,
        callrec_sim::SimConfig {
            spool_dir: bed.spool.clone(),
            ..callrec_sim::SimConfig::default()
        },
    )
    .await
    .unwrap();
    sessions(&bed, 1).await;
    assert!(bed.handle.readiness().is_ready());
    switch.place_call(
        CallSpec::inbound("02079460000", "1001")
            .ring(secs(1.0))
            .talk(secs(4.0), Side::Caller),
    );
    switch.advance(secs(1.0)).unwrap();
    eventually("the recording to start", || {
        switch
            .channels()
            .iter()
            .any(|c| !c.recording.is_empty())
            .then_some(())
    })
    .await;
    switch.advance(secs(4.0)).unwrap();
    bed.wait_recordings(RecordingState::Stored, 1).await;
    bed.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switch_killed_mid_recording_leaves_a_failed_recording_and_the_daemon_carries_on() {
    let bed = Bed::start(Setup::users(&[("1001", RecordingMode::Always)])).await;
    bed.sim
        .place_call(CallSpec::inbound("02079460000", "1001").ring(secs(1.0)));
    bed.advance(secs(1.0));
    bed.recording_on_switch(1).await;
    bed.advance(secs(3.0));
    // kill -9: the socket closes with no notice; the file is a bare 44-byte header (the
    // switch had not flushed a first 64 KiB block of audio).
    bed.sim.crash();
    eventually("the daemon to see the switch gone", || {
        (!bed.handle.readiness().esl_connected).then_some(())
    })
    .await;
    let spool_files: Vec<_> = std::fs::read_dir(&bed.spool).unwrap().collect();
    assert_eq!(spool_files.len(), 1);
    bed.sim.boot();
    sessions(&bed, 2).await;
    let failed = bed.wait_recordings(RecordingState::Failed, 1).await;
    let reason = failed[0].state_reason.clone().unwrap_or_default();
    assert!(!reason.is_empty(), "a failed recording says why");
    assert!(bed.handle.live_calls().is_empty());
    bed.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_stops_the_daemon_with_exit_78_naming_the_setting() {
    let mut setup = Setup::users(&[("1001", RecordingMode::Always)]);
    setup.password = "not-ClueCon".into();
    let bed = Bed::start_unconnected(setup, None).await;
    let err = bed.ended().await.unwrap_err();
    assert_eq!(err.exit_code(), 78);
    assert!(matches!(err, DaemonError::Esl(_)));
    assert!(err.to_string().contains("`esl.password`"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_are_counted_and_recording_goes_on() {
    let bed = Bed::start(Setup::users(&[("1001", RecordingMode::Always)])).await;
    for (n, kind) in [
        MalformedFrame::GarbageEvent,
        MalformedFrame::UnknownContentType,
        MalformedFrame::BadContentLength,
        MalformedFrame::TruncatedBody,
    ]
    .into_iter()
    .enumerate()
    {
        bed.sim.send_malformed_frame(kind);
        // A body that claims more than was sent swallows what follows until the frame is
        // complete; the next heartbeats fill it and the garbage ends the session.
        eventually_async(&format!("{kind:?} to be counted"), || async {
            if bed.handle.metrics().malformed_frames.get() > n as u64 {
                return Some(());
            }
            if kind == MalformedFrame::TruncatedBody {
                bed.advance(secs(20.0));
            }
            None
        })
        .await;
        sessions(&bed, 1).await;
    }
    // Still recording, through whatever reconnects the frames cost.
    bed.sim.place_call(
        CallSpec::inbound("02079460000", "1001")
            .ring(secs(1.0))
            .talk(secs(4.0), Side::Caller),
    );
    bed.advance(secs(1.0));
    bed.recording_on_switch(1).await;
    bed.advance(secs(4.0));
    bed.wait_recordings(RecordingState::Stored, 1).await;
    assert!(
        bed.handle
            .metrics_text()
            .contains("callrec_esl_malformed_frames_total")
    );
    bed.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_record_command_is_counted_and_reconciled() {
    let bed = Bed::start(Setup::users(&[("1001", RecordingMode::Always)])).await;
    // The switch runs the first command about the call (arming the ringing leg: its
    // `uuid_setvar`) but never answers it.
    bed.sim.add_reply_fault(ReplyRule {
        command_prefix: Some("bgapi uuid_".into()),
        fault: ReplyFault::Withhold,
        remaining: Some(1),
    });
    bed.sim.place_call(
        CallSpec::inbound("02079460000", "1001")
            .ring(secs(1.0))
            .talk(secs(4.0), Side::Caller),
    );
    bed.advance(secs(1.0));
    bed.recording_on_switch(1).await;
    eventually("the unanswered command to be counted", || {
        let text = bed.handle.metrics_text();
        text.contains("callrec_esl_command_failures_total{kind=\"unanswered\"}")
            .then_some(())
    })
    .await;
    bed.advance(secs(4.0));
    bed.wait_recordings(RecordingState::Stored, 1).await;
    bed.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_during_ingest_stores_everything_and_ends_cleanly() {
    let bed = Bed::start(Setup::users(&[("1001", RecordingMode::Always)])).await;
    let calls = 20;
    for n in 0..calls {
        bed.sim.place_call(
            CallSpec::inbound(&format!("0207946{n:04}"), "1001")
                .ring(secs(1.0))
                .talk(secs(4.0), Side::Caller),
        );
    }
    bed.advance(secs(1.0));
    bed.recording_on_switch(calls).await;
    bed.advance(secs(4.0));
    // The moment the switch has closed every file, stop: ingests are in flight.
    eventually("every RECORD_STOP to arrive", || {
        (bed.handle
            .metrics()
            .events_received
            .get_or_create(&vec![("event".into(), "RECORD_STOP".into())])
            .get()
            == calls as u64)
            .then_some(())
    })
    .await;
    let store = bed.store.clone();
    bed.stop().await.expect("a clean stop");
    let stored = store.read(|v| v.recordings_in_progress()).await.unwrap();
    assert!(stored.is_empty(), "nothing left half-done: {stored:?}");
}

/// Waits for the daemon's first reconciliation with the switch to finish.
async fn reconciled(bed: &Bed) {
    eventually("a reconciliation to finish", || {
        bed.handle
            .metrics_text()
            .contains("callrec_reconciliations_completed_total 1")
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_restarted_while_a_call_rings_records_it_once_from_the_armed_recording() {
    let bed = Bed::start(Setup::users(&[("1001", RecordingMode::Always)])).await;
    reconciled(&bed).await;
    // The far end plays early media while it rings (as carriers do), so 1001's leg has media
    // before the answer and is armed.
    bed.sim.place_call(
        CallSpec::outbound("1001", "02079461111")
            .with_early_media()
            .ring(secs(3.0))
            .talk(secs(6.0), Side::Caller),
    );
    bed.advance(secs(1.0));
    // Armed while ringing: the switch holds the media bug, the index nothing yet.
    bed.recording_on_switch_only(1).await;
    let armed: Vec<String> = bed
        .sim
        .channels()
        .iter()
        .flat_map(|c| c.recording.clone())
        .collect();
    assert_eq!(armed.len(), 1, "{armed:?}");
    assert!(bed.recordings().await.is_empty());
    // A new process while the call still rings: it must know the armed recording again,
    // or the answer starts a second one on top of it.
    let bed = bed.restart_daemon().await;
    // Answered once the new process has compared its table with the switch (an answer in
    // the milliseconds before that is the one window left: see the recorder's reconcile).
    reconciled(&bed).await;
    bed.advance(secs(3.0));
    let adopted = eventually("the call to be recording after its answer", || {
        let calls = bed.handle.live_calls();
        (calls.len() == 1 && calls[0].recording_id.is_some()).then_some(calls)
    })
    .await;
    bed.advance(secs(7.0));
    let stored = bed.wait_recordings(RecordingState::Stored, 1).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(Some(&stored[0].id), adopted[0].recording_id.as_ref());
    assert!(
        armed[0].contains(stored[0].id.as_str()),
        "the armed file {} is the one stored ({})",
        armed[0],
        stored[0].id
    );
    let all = bed.recordings().await;
    assert_eq!(
        all.len(),
        1,
        "one recording of the call, nothing else: {all:?}"
    );
    let left: Vec<_> = std::fs::read_dir(&bed.config.storage.spool_dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "wav"))
        .collect();
    assert!(
        left.is_empty(),
        "no second file left in the spool: {left:?}"
    );
    // From the answer: the 6 s of talk, not the ring.
    let detail = bed.detail(&stored[0].id).await;
    let seconds = detail.recording.duration_ms.unwrap_or(0) as f64 / 1000.0;
    assert!((5.5..=6.5).contains(&seconds), "{seconds} s");
    bed.stop().await.expect("a clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_ringing_while_the_daemon_restarts_are_recorded_on_each_users_own_leg() {
    // The new process first hears of these calls from `show channels` while they ring (no
    // early media: nothing is armed). An inbound call's outside leg carries 1002's number
    // as its destination, but the recording belongs on the leg to 1002's phone, as it does
    // when the daemon watched the call ring.
    let bed = Bed::start(Setup::users(&[
        ("1001", RecordingMode::Always),
        ("1002", RecordingMode::Always),
    ]))
    .await;
    reconciled(&bed).await;
    let out = bed.sim.place_call(
        CallSpec::outbound("1001", "02079461111")
            .ring(secs(2.0))
            .talk(secs(5.0), Side::Caller),
    );
    let inb = bed.sim.place_call(
        CallSpec::inbound("02079460000", "1002")
            .ring(secs(2.0))
            .talk(secs(5.0), Side::Caller),
    );
    bed.advance(secs(1.0));
    let bed = bed.restart_daemon().await;
    reconciled(&bed).await;
    bed.advance(secs(1.0));
    bed.recording_on_switch(2).await;
    bed.advance(secs(6.0));
    let stored = bed.wait_recordings(RecordingState::Stored, 2).await;
    assert_eq!(stored.len(), 2, "{stored:?}");
    let by_user: std::collections::HashMap<&str, &callrec_store::Recording> =
        stored.iter().map(|r| (r.user.as_str(), r)).collect();
    assert_eq!(by_user["1001"].call_uuid, out.caller_uuid);
    assert_eq!(by_user["1002"].call_uuid, inb.callee_uuid);
    assert_eq!(by_user["1002"].direction, callrec_model::Direction::Inbound);
    bed.stop().await.expect("a clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_restarted_mid_call_takes_the_running_recording_back_and_stores_it() {
    let bed = Bed::start(Setup::users(&[("1001", RecordingMode::AlwaysPausable)])).await;
    bed.sim.place_call(
        CallSpec::outbound("1001", "02079461111")
            .ring(secs(1.0))
            .talk(secs(8.0), Side::Caller),
    );
    bed.advance(secs(1.0));
    bed.recording_on_switch(1).await;
    let before = bed.handle.live_calls();
    bed.advance(secs(2.0));
    // A new process: nothing in memory, the call still up, the switch still recording.
    let bed = bed.restart_daemon().await;
    let adopted = eventually("the running recording to be taken back", || {
        let calls = bed.handle.live_calls();
        (calls.len() == 1 && calls[0].recording_id.is_some()).then_some(calls)
    })
    .await;
    assert_eq!(
        adopted[0].recording_id, before[0].recording_id,
        "the same recording, not a second one"
    );
    assert_eq!(adopted[0].user, "1001");
    // And it can be paused through the API, as before the restart.
    let done = bed
        .handle
        .recording_action(
            &adopted[0].call_uuid,
            callrec_model::RecordingAction::Pause,
            "admin",
            callrec_model::SegmentSource::Api,
        )
        .await
        .unwrap();
    assert_eq!(Some(done.recording), before[0].recording_id);
    bed.advance(secs(6.0));
    let stored = bed.wait_recordings(RecordingState::Stored, 1).await;
    assert_eq!(stored.len(), 1);
    let detail = bed.detail(&stored[0].id).await;
    let kinds: Vec<_> = detail.segments.iter().map(|s| (s.kind, s.source)).collect();
    assert_eq!(
        kinds,
        [
            (
                callrec_model::SegmentKind::Start,
                callrec_model::SegmentSource::Policy
            ),
            (
                callrec_model::SegmentKind::Pause,
                callrec_model::SegmentSource::Api
            ),
            (
                callrec_model::SegmentKind::Stop,
                callrec_model::SegmentSource::Policy
            ),
        ]
    );
    bed.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mode_changed_while_running_applies_to_the_next_call() {
    let bed = Bed::start(Setup::users(&[("1001", RecordingMode::Never)])).await;
    bed.store
        .write(|s| s.set_mode("default", "1001", RecordingMode::Always, "test"))
        .await
        .unwrap();
    // The daemon follows the directory's version.
    eventually_async("the new mode to reach the daemon", || async {
        bed.sim.place_call(
            CallSpec::inbound("02079460000", "1001")
                .ring(secs(1.0))
                .talk(secs(1.0), Side::Caller),
        );
        bed.advance(secs(1.0));
        let recorded = eventually("the call to be decided", || {
            let calls = bed.handle.live_calls();
            calls.first().map(|c| c.recording.as_str() == "recording")
        })
        .await;
        bed.advance(secs(1.0));
        eventually("the call to end", || {
            bed.handle.live_calls().is_empty().then_some(())
        })
        .await;
        recorded.then_some(())
    })
    .await;
    bed.stop().await.unwrap();
}

//! Automatic recording against the simulated switch: each mode, each direction, internal
//! calls between users, short recordings.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use callrec_model::{Direction, RecordingMode, RecordingState, SegmentKind, SegmentSource};
use callrec_sim::{CallSpec, Side};
use callrec_testkit::wait::eventually;
use support::{Bed, Setup};

const S: fn(u64) -> Duration = Duration::from_secs;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_mode_records_inbound_outbound_and_internal_calls_as_spec_says() {
    let bed = Bed::start(Setup::users(&[
        ("1001", RecordingMode::Always),
        ("1002", RecordingMode::AlwaysPausable),
        ("1003", RecordingMode::OnDemand),
        ("1004", RecordingMode::Never),
        ("1009", RecordingMode::Never),
    ]))
    .await;
    for ext in ["1001", "1002", "1003", "1004"] {
        bed.sim.place_call(
            CallSpec::inbound("02079460000", ext)
                .ring(S(1))
                .talk(S(6), Side::Caller),
        );
        bed.sim.place_call(
            CallSpec::outbound(ext, "02079461111")
                .ring(S(1))
                .talk(S(6), Side::Caller),
        );
        // The other party is a user who is never recorded, so only this user's leg counts.
        bed.sim.place_call(
            CallSpec::internal(ext, "1009")
                .ring(S(1))
                .talk(S(6), Side::Caller),
        );
    }
    bed.advance(S(1));
    // always and always_pausable: three calls each.
    bed.recording_on_switch(6).await;
    bed.advance(S(6));
    let stored = bed.wait_recordings(RecordingState::Stored, 6).await;

    let mut seen: HashMap<(String, Direction), usize> = HashMap::new();
    for r in &stored {
        *seen.entry((r.user.clone(), r.direction)).or_default() += 1;
        assert!(r.duration_ms.unwrap_or(0) > 4_000, "{r:?}");
    }
    for ext in ["1001", "1002"] {
        for direction in [Direction::Inbound, Direction::Outbound, Direction::Internal] {
            assert_eq!(
                seen.get(&(ext.to_owned(), direction)),
                Some(&1),
                "{ext} {direction}: {seen:?}"
            );
        }
    }
    let inbound = stored
        .iter()
        .find(|r| r.user == "1001" && r.direction == Direction::Inbound)
        .unwrap();
    assert_eq!(inbound.from.normalised, "+442079460000");
    assert!(
        bed.recordings()
            .await
            .iter()
            .all(|r| r.user != "1003" && r.user != "1004")
    );

    let detail = bed.detail(&inbound.id).await;
    let kinds: Vec<_> = detail.segments.iter().map(|s| (s.kind, s.source)).collect();
    assert_eq!(
        kinds,
        [
            (SegmentKind::Start, SegmentSource::Policy),
            (SegmentKind::Stop, SegmentSource::Policy)
        ]
    );
    bed.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_call_between_two_recorded_users_gives_one_recording_each() {
    let bed = Bed::start(Setup::users(&[
        ("1001", RecordingMode::Always),
        ("1000", RecordingMode::AlwaysPausable),
    ]))
    .await;
    let call = bed.sim.place_call(
        CallSpec::internal("1001", "1000")
            .ring(S(1))
            .talk(S(5), Side::Callee),
    );
    bed.advance(S(1));
    bed.recording_on_switch(2).await;
    bed.advance(S(5));
    let stored = bed.wait_recordings(RecordingState::Stored, 2).await;
    let by_user: HashMap<&str, &callrec_store::Recording> =
        stored.iter().map(|r| (r.user.as_str(), r)).collect();
    assert_eq!(by_user["1001"].call_uuid, call.caller_uuid);
    assert_eq!(by_user["1000"].call_uuid, call.callee_uuid);
    assert!(stored.iter().all(|r| r.direction == Direction::Internal));
    assert_ne!(by_user["1001"].file_name, by_user["1000"].file_name);
    bed.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_call_is_recorded_on_the_users_own_leg_whichever_leg_answers_first() {
    // Outbound: the far leg answers first and carries 1001's number as its caller ID; the
    // recording still goes on 1001's own leg (`user_name`). Inbound: on the leg to 1002's
    // phone (`dialed_user`), not the outside leg that only dialled 1002's number.
    let bed = Bed::start(Setup::users(&[
        ("1001", RecordingMode::Always),
        ("1002", RecordingMode::Always),
    ]))
    .await;
    let out = bed.sim.place_call(
        CallSpec::outbound("1001", "02079461111")
            .ring(S(1))
            .talk(S(5), Side::Caller),
    );
    let inb = bed.sim.place_call(
        CallSpec::inbound("02079460000", "1002")
            .ring(S(1))
            .talk(S(5), Side::Caller),
    );
    bed.advance(S(1));
    bed.recording_on_switch(2).await;
    bed.advance(S(5));
    let stored = bed.wait_recordings(RecordingState::Stored, 2).await;
    let by_user: HashMap<&str, &callrec_store::Recording> =
        stored.iter().map(|r| (r.user.as_str(), r)).collect();
    assert_eq!(by_user["1001"].call_uuid, out.caller_uuid);
    assert_eq!(by_user["1001"].direction, Direction::Outbound);
    assert_eq!(by_user["1002"].call_uuid, inb.callee_uuid);
    assert_eq!(by_user["1002"].direction, Direction::Inbound);
    bed.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loopback_call_is_one_recording_for_its_user() {
    let bed = Bed::start(Setup::users(&[("1001", RecordingMode::Always)])).await;
    bed.sim.place_call(
        CallSpec::outbound("1001", "442920123123")
            .loopback("9999")
            .callrec_user("1001")
            .ring(S(1))
            .talk(S(5), Side::Caller),
    );
    bed.advance(S(1));
    bed.recording_on_switch(1).await;
    bed.advance(S(5));
    bed.wait_recordings(RecordingState::Stored, 1).await;
    bed.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_shorter_than_min_seconds_is_discarded() {
    let bed = Bed::start(Setup::users(&[("1001", RecordingMode::Always)]).min_seconds(3)).await;
    bed.sim.place_call(
        CallSpec::outbound("1001", "02079461111")
            .ring(S(1))
            .talk(Duration::from_millis(1500), Side::Caller),
    );
    bed.advance(S(1));
    bed.recording_on_switch(1).await;
    bed.advance(S(2));
    let discarded = bed.wait_recordings(RecordingState::Discarded, 1).await;
    assert_eq!(
        discarded[0].state_reason.as_deref(),
        Some("input-too-short")
    );
    assert!(
        bed.recordings()
            .await
            .iter()
            .all(|r| r.state == RecordingState::Discarded)
    );
    bed.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_events_record_exactly_as_plain_ones() {
    let mut setup = Setup::users(&[
        ("1001", RecordingMode::Always),
        ("1000", RecordingMode::AlwaysPausable),
    ]);
    setup.event_format = callrec_model::EventFormat::Json;
    let bed = Bed::start(setup).await;
    bed.sim.place_call(
        CallSpec::internal("1001", "1000")
            .ring(S(1))
            .hold(Side::Caller, S(1), S(1))
            .talk(S(5), Side::Callee),
    );
    bed.advance(S(1));
    bed.recording_on_switch(2).await;
    bed.advance(S(5));
    let stored = bed.wait_recordings(RecordingState::Stored, 2).await;
    assert!(stored.iter().all(|r| r.direction == Direction::Internal));
    assert_eq!(bed.handle.metrics().malformed_frames.get(), 0);
    bed.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_the_session_the_calls_and_the_outcomes() {
    let bed = Bed::start(Setup::users(&[("1001", RecordingMode::Always)])).await;
    bed.sim.place_call(
        CallSpec::inbound("02079460000", "1001")
            .ring(S(1))
            .talk(S(4), Side::Caller),
    );
    bed.advance(S(1));
    bed.recording_on_switch(1).await;
    // The recording starts at the first leg's answer; the second leg's may still be on its
    // way.
    for line in [
        "callrec_esl_connected 1",
        "callrec_live_calls 1",
        "callrec_esl_events_received_total{event=\"CHANNEL_ANSWER\"} 2",
        "callrec_esl_events_dropped_total 0",
    ] {
        eventually(line, || {
            bed.handle.metrics_text().contains(line).then_some(())
        })
        .await;
    }
    bed.advance(S(4));
    bed.wait_recordings(RecordingState::Stored, 1).await;
    eventually("the stored outcome to be counted", || {
        bed.handle
            .metrics_text()
            .contains("callrec_recordings_finished_total{outcome=\"stored\"} 1")
            .then_some(())
    })
    .await;
    let text = bed.handle.metrics_text();
    assert!(text.contains("callrec_live_calls 0"), "{text}");
    assert!(
        text.contains("callrec_ingest_latency_seconds_count 1"),
        "{text}"
    );
    bed.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_logs_chain_head_is_saved_outside_the_index() {
    let away = tempfile::tempdir().unwrap();
    let heads = away.path().join("callrec-heads");
    let bed =
        Bed::start(Setup::users(&[("1001", RecordingMode::Always)]).audit_head_file(heads.clone()))
            .await;
    // Saved as soon as the daemon runs (the first tick is immediate).
    eventually("a head saved at start", || heads.exists()).await;
    bed.sim.place_call(
        CallSpec::inbound("02079460000", "1001")
            .ring(S(1))
            .talk(S(5), Side::Caller),
    );
    bed.advance(S(1));
    bed.recording_on_switch(1).await;
    bed.advance(S(5));
    bed.wait_recordings(callrec_model::RecordingState::Stored, 1)
        .await;
    let store = bed.store.clone();
    bed.stop().await.unwrap();
    // The last line is the head after the daemon's last write, and every line parses as
    // `callrec verify --head-file` reads it.
    let head = store.write_blocking(|s| s.audit_head()).unwrap().unwrap();
    let text = std::fs::read_to_string(&heads).unwrap();
    let saved: Vec<callrec_store::ChainHead> = text.lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(saved.last(), Some(&head), "{text}");
    assert!(saved.len() >= 2, "the head moved with the call: {text}");
    assert!(saved.windows(2).all(|w| w[0].seq < w[1].seq), "{text}");
}

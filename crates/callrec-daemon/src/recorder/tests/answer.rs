//! Answer: which calls are recorded, on which leg, with which owner and direction.

use super::*;

#[test]
fn answered_call_of_an_always_pausable_user_is_recorded_once_across_its_loopback_pair() {
    let mut rec = recorder(&[("1001", RecordingMode::AlwaysPausable)]);
    let effects = replay(&mut rec, "record.events-plain.received.esl");

    let rows = creates(&effects);
    assert_eq!(rows.len(), 1, "one recording for the two loopback legs");
    let row = rows[0];
    // On the B leg, though the A leg's answer comes first: a recording on the A leg ends
    // about 0.5 s before the call.
    assert_eq!(row.call_uuid, RECORD_B_LEG);
    assert_eq!(row.user, testing::id_of("1001"));
    // Neither number is 1001's: the leg's own direction says. The B leg called into the
    // dialplan (`Call-Direction: inbound`), so its user is calling out.
    assert_eq!(row.direction, Direction::Outbound);
    assert_eq!(row.from, "442920123123");
    assert_eq!(
        row.started_at.timestamp_micros(),
        1795533876529549,
        "the answer's event time"
    );
    let id = row.id.clone();
    assert_eq!(
        commands(&effects),
        vec![format!(
            "uuid_record {RECORD_B_LEG} start {SPOOL}/{id}.wav 0 {{callrec_id={id},RECORD_MIN_SEC=3}}"
        )]
    );
    // Start at answer, stop at RECORD_STOP, then the file goes to the store.
    let ops = store_ops(&effects);
    assert!(matches!(
        ops[1],
        StoreOp::Segment {
            kind: SegmentKind::Start,
            source: SegmentSource::Policy,
            ..
        }
    ));
    assert!(matches!(
        ops[2],
        StoreOp::Segment {
            kind: SegmentKind::Stop,
            at: 1795533890589557,
            ..
        }
    ));
    assert_eq!(
        ops[3],
        &StoreOp::Ingest {
            id,
            spool_path: format!("{SPOOL}/01900000-0000-7000-8000-000000000001.wav"),
            ended_at: 1795533890589557
        }
    );
    assert_eq!(ops.len(), 4);
    assert!(rec.table().is_empty(), "every leg hung up");
}

#[test]
fn each_mode_decides_whether_an_answered_call_is_recorded() {
    for (mode, recorded) in [
        (RecordingMode::Never, false),
        (RecordingMode::Always, true),
        (RecordingMode::AlwaysPausable, true),
        (RecordingMode::OnDemand, false),
    ] {
        let mut rec = recorder(&[("1001", mode)]);
        let effects = replay(&mut rec, "record.events-plain.received.esl");
        assert_eq!(creates(&effects).len(), usize::from(recorded), "{mode}");
    }
}

#[test]
fn a_call_of_an_unknown_user_or_a_disabled_site_is_not_recorded() {
    let mut rec = recorder(&[("1002", RecordingMode::Always)]);
    assert!(creates(&replay(&mut rec, "record.events-plain.received.esl")).is_empty());

    let mut disabled = site(PauseBehavior::Silence);
    disabled.settings.enabled = false;
    let mut rec = recorder_in(testing::index(
        vec![disabled],
        vec![user("1001", RecordingMode::Always)],
    ));
    assert!(creates(&replay(&mut rec, "record.events-plain.received.esl")).is_empty());
}

#[test]
fn internal_call_between_two_recorded_users_gives_two_recordings() {
    let mut rec = recorder(&[
        ("1001", RecordingMode::Always),
        ("1000", RecordingMode::Always),
    ]);
    let effects = replay(&mut rec, "sip-hold.events-plain.received.esl");
    let rows = creates(&effects);
    let mut by_leg: HashMap<&str, (UserId, Direction, &str, &str)> = HashMap::new();
    for r in &rows {
        by_leg.insert(&r.call_uuid, (r.user, r.direction, &r.from, &r.to));
    }
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(
        by_leg[SIP_A_LEG],
        (testing::id_of("1001"), Direction::Internal, "1001", "1000")
    );
    assert_eq!(
        by_leg[SIP_B_LEG],
        (testing::id_of("1000"), Direction::Internal, "1001", "1000")
    );
    assert!(
        !by_leg.contains_key(SIP_FEATURE_LEG),
        "the *48 call is never recorded"
    );
    let ingests = store_ops(&effects)
        .into_iter()
        .filter(|op| matches!(op, StoreOp::Ingest { .. }))
        .count();
    // The capture recorded only the A leg, so only its RECORD_STOP came; the B leg's
    // recording waits for its RECORD_STOP, and is taken as closed once that is overdue.
    assert_eq!(ingests, 1);
    let closing: Vec<_> = rec.table().closing().map(|c| c.channel.clone()).collect();
    assert_eq!(closing, vec![SIP_B_LEG.to_owned()]);
    let late = rec.expire_closing(1795534454386547 + 10_000_000, 5_000_000);
    assert!(matches!(
        store_ops(&late)[..],
        [
            StoreOp::Segment {
                kind: SegmentKind::Stop,
                ..
            },
            StoreOp::Ingest { .. }
        ]
    ));
}

#[test]
fn direction_is_taken_from_the_users_side() {
    // Only the caller is a user: outbound for 1001.
    let mut rec = recorder(&[("1001", RecordingMode::Always)]);
    let rows = replay(&mut rec, "sip-hold.events-plain.received.esl");
    let rows = creates(&rows);
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].user, rows[0].direction),
        (testing::id_of("1001"), Direction::Outbound)
    );
    assert_eq!(
        (rows[0].from.as_str(), rows[0].to.as_str()),
        ("1001", "1000")
    );

    // Only the callee is a user: inbound for 1000.
    let mut rec = recorder(&[("1000", RecordingMode::Always)]);
    let rows = replay(&mut rec, "sip-hold.events-plain.received.esl");
    let rows = creates(&rows);
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].user, rows[0].direction),
        (testing::id_of("1000"), Direction::Inbound)
    );

    // callrec_user names the caller of a loopback call (the `crash` capture): outbound.
    let mut rec = recorder(&[("1001", RecordingMode::Always)]);
    let rows = replay(&mut rec, "crash.events-plain.received.esl");
    let rows = creates(&rows);
    assert_eq!(
        (rows[0].user, rows[0].direction),
        (testing::id_of("1001"), Direction::Outbound)
    );
}

#[test]
fn too_short_recording_is_discarded_as_the_switch_says() {
    let mut rec = recorder(&[("1002", RecordingMode::Always)]);
    let effects = replay(&mut rec, "shortmin.events-plain.received.esl");
    let ops = store_ops(&effects);
    assert!(
        ops.iter()
            .any(|op| matches!(op, StoreOp::Discard { reason, .. } if reason == "input-too-short")),
        "{ops:?}"
    );
    assert!(!ops.iter().any(|op| matches!(op, StoreOp::Ingest { .. })));
}

#[test]
fn a_short_recording_without_a_minimum_is_ingested() {
    let mut rec = recorder(&[("1002", RecordingMode::Always)]);
    let ops = replay(&mut rec, "short.events-plain.received.esl");
    assert!(
        store_ops(&ops)
            .iter()
            .any(|op| matches!(op, StoreOp::Ingest { .. }))
    );
}

#[test]
fn switch_killed_mid_recording_leaves_the_recording_live_for_reconciliation() {
    let mut rec = recorder(&[("1001", RecordingMode::Always)]);
    let effects = replay(&mut rec, "crash.events-plain.received.esl");
    assert_eq!(creates(&effects).len(), 1);
    let live: Vec<_> = rec.table().recordings().collect();
    assert_eq!(
        live.len(),
        1,
        "no RECORD_STOP came: the recording is still tracked"
    );
    assert!(live[0].1.confirmed, "RECORD_START confirmed it");
}

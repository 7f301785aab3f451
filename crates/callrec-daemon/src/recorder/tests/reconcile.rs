//! Reconciliation after a reconnect or a restart, and commands the switch never answered.

use super::*;

fn switch_channel(uuid: &str, held: bool) -> SwitchChannel {
    SwitchChannel {
        uuid: uuid.into(),
        answered: true,
        held,
        early_media: false,
        direction: "outbound".into(),
        cid_num: "442920123123".into(),
        dest: "9999".into(),
        call_uuid: None,
    }
}

#[test]
fn reconciliation_finds_what_hung_up_while_away_and_what_was_answered() {
    let mut rec = recorder(&[("1001", RecordingMode::Always)]);
    let events = fixtures::plain_events("record.events-plain.received.esl");
    // The call is answered and recorded, then the connection drops.
    replay_until(&mut rec, &events, |h| {
        h.get("Event-Name").map(String::as_str) == Some("CHANNEL_HOLD")
    });
    let id = rec.table().recordings().next().unwrap().1.id.clone();
    let asked = rec.event_seq();
    // The switch now lists none of our channels, and one we never saw.
    let plan = rec.reconcile_plan(&[switch_channel("new-leg", true)], asked);
    assert_eq!(plan.gone.len(), 2, "both legs of the recorded call hung up");
    assert_eq!(plan.unknown.len(), 1);
    let mut effects = Vec::new();
    for uuid in &plan.gone {
        effects.extend(rec.channel_gone(uuid, 5));
    }
    assert!(matches!(
        store_ops(&effects)[..],
        [StoreOp::Segment { kind: SegmentKind::Stop, .. }, StoreOp::Ingest { id: i, .. }] if *i == id
    ));
    // The unknown channel is 1001's (callrec_user, from uuid_getvar) and its media bug writes
    // one of our files: tracked again, not started twice.
    let mut ev = ChannelEvent {
        kind: EventKind::Answer,
        uuid: "new-leg".into(),
        at: 6,
        owner_headers: vec![Some("1001".into()), None, None, None, None],
        ..ChannelEvent::empty()
    };
    let theirs = format!("{SPOOL}/01900000-0000-7000-8000-000000000042.wav");
    let rows = [InProgressRow {
        id: "01900000-0000-7000-8000-000000000042".parse().unwrap(),
        user: None,
        call_uuid: "new-leg".into(),
        spool_path: theirs.clone(),
        paused_since: None,
    }];
    assert!(
        rec.adopt_channel(&ev, true, std::slice::from_ref(&theirs), &rows)
            .is_empty()
    );
    let calls = rec.live_calls();
    assert_eq!(calls.len(), 1);
    assert!(calls[0].on_hold);
    assert_eq!(calls[0].recording, CallRecording::Recording);
    assert!(
        rec.orphaned_rows(&rows, 7).is_empty(),
        "its row is live again"
    );
    // An unknown answered channel without our media bug is recorded now (mode always).
    ev.uuid = "another-leg".into();
    let started = rec.adopt_channel(&ev, false, &[], &[]);
    assert_eq!(creates(&started).len(), 1);
}

#[test]
fn a_row_no_channel_carries_is_ingested() {
    let rec = recorder(&[("1001", RecordingMode::Always)]);
    let row = InProgressRow {
        id: "01900000-0000-7000-8000-000000000042".parse().unwrap(),
        user: None,
        call_uuid: "gone".into(),
        spool_path: format!("{SPOOL}/01900000-0000-7000-8000-000000000042.wav"),
        paused_since: None,
    };
    let effects = rec.orphaned_rows(std::slice::from_ref(&row), 9);
    assert!(matches!(&effects[..], [Effect::Store(StoreOp::Ingest { id, .. })] if *id == row.id));
}

/// An event about `uuid` of 1001's call that is not its answer (a hold), as the first thing
/// the daemon hears of the channel.
fn hold_of_1001(uuid: &str, at: Micros) -> ChannelEvent {
    ChannelEvent {
        kind: EventKind::Hold,
        uuid: uuid.into(),
        at,
        owner_headers: vec![Some("1001".into()), None, None, None, None],
        ..ChannelEvent::empty()
    }
}

fn answer_of_1001(uuid: &str, at: Micros) -> ChannelEvent {
    ChannelEvent {
        kind: EventKind::Answer,
        ..hold_of_1001(uuid, at)
    }
}

#[test]
fn a_restart_does_not_ingest_a_recording_whose_channel_spoke_before_reconciliation() {
    // The daemon restarts during 1001's recorded call. Before the first reconciliation asks
    // the switch, the user puts the call on hold: the channel is heard of, never answered.
    let mut rec = recorder(&[("1001", RecordingMode::AlwaysPausable)]);
    rec.on_event(&hold_of_1001("live-leg", 10));
    let asked = rec.event_seq();
    let id: RecordingId = "01900000-0000-7000-8000-000000000042".parse().unwrap();
    let theirs = format!("{SPOOL}/{id}.wav");
    let rows = [InProgressRow {
        id: id.clone(),
        user: None,
        call_uuid: "live-leg".into(),
        spool_path: theirs.clone(),
        paused_since: None,
    }];
    let plan = rec.reconcile_plan(&[switch_channel("live-leg", true)], asked);
    assert_eq!(
        plan.unknown.len(),
        1,
        "an answered channel the daemon never saw answered is taken in"
    );
    let effects = rec.adopt_channel(
        &answer_of_1001("live-leg", 20),
        true,
        std::slice::from_ref(&theirs),
        &rows,
    );
    assert!(effects.is_empty(), "tracked again, not started twice");
    assert!(
        rec.orphaned_rows(&rows, 30).is_empty(),
        "the switch still writes this file: it must not be ingested"
    );
    let calls = rec.live_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].recording, CallRecording::Recording);
    assert_eq!(calls[0].recording_id.as_ref(), Some(&id));
}

#[test]
fn a_call_whose_answer_was_dropped_is_recorded_at_reconciliation() {
    // The event queue overflowed and CHANNEL_ANSWER was lost; a later hold came through.
    // The drop triggers a reconciliation, which must record the call (mode always).
    let mut rec = recorder(&[("1001", RecordingMode::Always)]);
    rec.on_event(&hold_of_1001("leg", 10));
    let asked = rec.event_seq();
    let plan = rec.reconcile_plan(&[switch_channel("leg", true)], asked);
    assert_eq!(plan.unknown.len(), 1);
    let started = rec.adopt_channel(&answer_of_1001("leg", 20), true, &[], &[]);
    assert_eq!(creates(&started).len(), 1);
    // A second pass finds it answered and recorded: nothing more.
    let asked = rec.event_seq();
    let plan = rec.reconcile_plan(&[switch_channel("leg", true)], asked);
    assert!(plan.unknown.is_empty());
    assert!(
        rec.adopt_channel(&answer_of_1001("leg", 30), true, &[], &[])
            .is_empty()
    );
}

#[test]
fn a_timestamp_at_the_end_of_time_neither_panics_nor_ends_a_wait_or_a_recording_early() {
    // Event-Date-Timestamp is whatever the wire says. A leg answered, and a recorded leg
    // hung up, "at" i64::MAX must not overflow the grace arithmetic of the spool scan
    // (a panic there ends the reconciliation task for good) nor wrap into the past.
    let mut rec = recorder(&[("1001", RecordingMode::Always)]);
    let started = rec.on_event(&answer_of_1001("recorded-leg", 10));
    assert_eq!(creates(&started).len(), 1);
    confirm_commands(&mut rec, started);
    let mut hangup = answer_of_1001("recorded-leg", i64::MAX);
    hangup.kind = EventKind::HangupComplete;
    rec.on_event(&hangup);
    assert_eq!(rec.table().closing().count(), 1);
    assert!(rec.expire_closing(1_000, 5_000_000).is_empty());
    assert_eq!(
        rec.table().closing().count(),
        1,
        "still waits for RECORD_STOP"
    );

    // A leg waiting for its user's own leg (a peer not yet heard of), answered at i64::MAX.
    let waiting = ChannelEvent {
        kind: EventKind::Answer,
        uuid: "far-leg".into(),
        at: i64::MAX,
        other_leg: Some("own-leg".into()),
        caller_number: Some("1001".into()),
        owner_headers: vec![None, None, None, Some("1001".into()), None],
        ..ChannelEvent::empty()
    };
    assert!(rec.on_event(&waiting).is_empty(), "it waits");
    assert!(rec.expire_waits(1_000, 2_000_000).is_empty());
}

#[test]
fn a_pause_the_switch_never_answered_is_sent_again_not_confirmed() {
    // *48 while a card number is about to be read: the mask command gets no answer (the
    // command timed out), so the caller hears `not_allowed` and dials *48 again. Whether the
    // switch masked is unknown: the second *48 must send the mask again, never play
    // `paused` on the strength of the first, unconfirmed one.
    let (mut rec, call) = sip_call_on_hold(
        &[("1001", RecordingMode::AlwaysPausable)],
        PauseBehavior::Silence,
    );
    let FeatureDecision::Act { plan, .. } = rec.feature_code(&call) else {
        panic!("expected an action");
    };
    let Effect::Command(cmd) = &plan.effects[0] else {
        panic!("expected the mask command");
    };
    let lost = rec.on_command_result(cmd, CommandOutcome::Lost);
    assert!(matches!(
        lost.as_slice(),
        [Effect::Resolve {
            outcome: Err(ActionError::SwitchUnavailable { .. }),
            ..
        }]
    ));
    let again = ChannelEvent {
        at: call.at + 1_000_000,
        ..call.clone()
    };
    match rec.feature_code(&again) {
        FeatureDecision::Act { plan, on_success } => {
            assert_eq!(on_success, Prompt::Paused);
            assert!(commands(&plan.effects)[0].contains(" mask "));
        }
        FeatureDecision::Play(prompt) => {
            panic!("{prompt:?} played with no mask confirmed by the switch")
        }
    }
}

#[test]
fn after_a_resume_the_switch_never_answered_a_pause_is_sent_again() {
    // Paused, then *49 gets no answer: the switch may have unmasked. A later *48 must mask
    // again rather than answer "already paused".
    let (mut rec, call) = sip_call_on_hold(
        &[("1001", RecordingMode::AlwaysPausable)],
        PauseBehavior::Silence,
    );
    let FeatureDecision::Act { plan, .. } = rec.feature_code(&call) else {
        panic!("expected an action");
    };
    confirm_commands(&mut rec, plan.effects);
    let mut resume = call.clone();
    resume.destination = Some("*49".into());
    resume.at += 1_000_000;
    let FeatureDecision::Act { plan, .. } = rec.feature_code(&resume) else {
        panic!("expected an action");
    };
    let Effect::Command(cmd) = &plan.effects[0] else {
        panic!("expected the unmask command");
    };
    assert!(cmd.api_text().contains(" unmask "));
    rec.on_command_result(cmd, CommandOutcome::Lost);
    let again = ChannelEvent {
        at: call.at + 2_000_000,
        ..call.clone()
    };
    match rec.feature_code(&again) {
        FeatureDecision::Act { plan, .. } => {
            assert!(commands(&plan.effects)[0].contains(" mask "));
        }
        FeatureDecision::Play(prompt) => {
            panic!("{prompt:?} played although the switch may be recording")
        }
    }
}

#[test]
fn a_stop_the_switch_never_answered_does_not_forbid_pausing_for_the_rest_of_the_call() {
    // An API stop gets no answer (timed out): the switch may still be recording. The user
    // then dials *48 before reading a card number: the mask must be sent, not refused as
    // "the recording is stopping" for as long as the call lasts.
    let (mut rec, call) = sip_call_on_hold(
        &[("1001", RecordingMode::AlwaysPausable)],
        PauseBehavior::Silence,
    );
    let plan = rec
        .recording_action(
            SIP_A_LEG,
            RecordingAction::Stop,
            SegmentSource::Api,
            "admin",
            5,
        )
        .unwrap();
    let Effect::Command(cmd) = &plan.effects[0] else {
        panic!("expected the stop command");
    };
    rec.on_command_result(cmd, CommandOutcome::Lost);
    match rec.feature_code(&call) {
        FeatureDecision::Act { plan, .. } => {
            assert!(commands(&plan.effects)[0].contains(" mask "));
        }
        FeatureDecision::Play(prompt) => {
            panic!("{prompt:?} played although the switch may be recording")
        }
    }
}

#[test]
fn a_recording_taken_back_after_a_restart_while_masked_stays_paused_and_resumes() {
    // The daemon restarts while 1001's recording is masked (*48). Taken back, it must still
    // be paused: *49 then unmasks it. Held as running, *49 would answer "resumed" and send
    // nothing, and the rest of the call would be recorded as silence.
    let mut rec = recorder(&[("1001", RecordingMode::AlwaysPausable)]);
    let id: RecordingId = "01900000-0000-7000-8000-000000000042".parse().unwrap();
    let theirs = format!("{SPOOL}/{id}.wav");
    let rows = [InProgressRow {
        id: id.clone(),
        user: None,
        call_uuid: "live-leg".into(),
        spool_path: theirs.clone(),
        paused_since: Some(3),
    }];
    let asked = rec.event_seq();
    let plan = rec.reconcile_plan(&[switch_channel("live-leg", false)], asked);
    assert_eq!(plan.unknown.len(), 1);
    assert!(
        rec.adopt_channel(
            &answer_of_1001("live-leg", 20),
            false,
            std::slice::from_ref(&theirs),
            &rows,
        )
        .is_empty()
    );
    assert_eq!(rec.live_calls()[0].recording, CallRecording::Paused);
    let plan = rec
        .recording_action(
            "live-leg",
            RecordingAction::Resume,
            SegmentSource::Api,
            "1001@default",
            30,
        )
        .expect("a paused recording can be resumed");
    assert_eq!(
        commands(&plan.effects),
        vec![format!("uuid_record live-leg unmask {theirs}")]
    );
}

#[test]
fn a_row_whose_channel_is_still_up_is_not_ingested_under_the_switch() {
    // After a restart the switch still records a call whose user has since been removed
    // from the directory: the daemon cannot take the recording back (no owner), but the
    // switch is still writing its file, which must not be moved into the store until the
    // channel has gone.
    let mut rec = recorder(&[("1002", RecordingMode::Always)]);
    let id: RecordingId = "01900000-0000-7000-8000-000000000042".parse().unwrap();
    let theirs = format!("{SPOOL}/{id}.wav");
    let rows = [InProgressRow {
        id: id.clone(),
        user: None,
        call_uuid: "live-leg".into(),
        spool_path: theirs.clone(),
        paused_since: None,
    }];
    let asked = rec.event_seq();
    let plan = rec.reconcile_plan(&[switch_channel("live-leg", false)], asked);
    assert_eq!(plan.unknown.len(), 1);
    rec.adopt_channel(
        &answer_of_1001("live-leg", 20),
        false,
        std::slice::from_ref(&theirs),
        &rows,
    );
    assert!(
        rec.orphaned_rows(&rows, 30).is_empty(),
        "the switch is still writing it"
    );
    rec.channel_gone("live-leg", 40);
    assert!(matches!(
        &rec.orphaned_rows(&rows, 50)[..],
        [Effect::Store(StoreOp::Ingest { id: i, .. })] if *i == id
    ));
}

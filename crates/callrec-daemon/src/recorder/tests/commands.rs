//! The switch's replies: refused commands retried or undone, stops and late RECORD_STOPs.

use super::*;

#[test]
fn a_refused_command_is_retried_once_then_the_recording_is_failed() {
    let mut rec = recorder(&[("1001", RecordingMode::Always)]);
    let events = fixtures::plain_events("record.events-plain.received.esl");
    let answer = events
        .iter()
        .find(|h| is(h, "CHANNEL_ANSWER", RECORD_B_LEG))
        .unwrap();
    let effects = rec.on_event(&event(answer));
    let Some(Effect::Command(first)) = effects.last() else {
        panic!()
    };
    let retry = rec.on_command_result(
        first,
        CommandOutcome::Refused("-ERR Cannot locate session!".into()),
    );
    let [Effect::Command(second)] = retry.as_slice() else {
        panic!("{retry:?}")
    };
    assert_eq!(second.attempt, 2);
    assert_eq!(second.api_text(), first.api_text());
    let after = rec.on_command_result(
        second,
        CommandOutcome::Refused("-ERR Cannot locate session!".into()),
    );
    assert!(matches!(
        after.as_slice(),
        [Effect::Store(StoreOp::Fail { reason, .. })] if reason.contains("-ERR Cannot locate session!")
    ));
    assert!(rec.table().recordings().next().is_none());
}

#[test]
fn a_refused_pause_leaves_the_recording_running() {
    let (mut rec, call) = sip_call_on_hold(
        &[("1001", RecordingMode::AlwaysPausable)],
        PauseBehavior::Silence,
    );
    let FeatureDecision::Act { plan, .. } = rec.feature_code(&call) else {
        panic!()
    };
    let Effect::Command(cmd) = &plan.effects[0] else {
        panic!()
    };
    let retry = rec.on_command_result(cmd, CommandOutcome::Refused("-ERR x".into()));
    let Effect::Command(cmd) = &retry[0] else {
        panic!()
    };
    let after = rec.on_command_result(cmd, CommandOutcome::Refused("-ERR x".into()));
    assert!(matches!(
        after.as_slice(),
        [Effect::Resolve {
            outcome: Err(ActionError::SwitchRefused { .. }),
            ..
        }]
    ));
    let a = rec
        .live_calls()
        .into_iter()
        .find(|c| c.call_uuid == SIP_A_LEG)
        .unwrap();
    assert_eq!(a.recording, CallRecording::Recording);
}

#[test]
fn api_stop_is_recorded_as_the_api_actors_segment() {
    let (mut rec, _) = sip_call_on_hold(
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
    assert!(commands(&plan.effects)[0].starts_with(&format!("uuid_record {SIP_A_LEG} stop ")));
    confirm_commands(&mut rec, plan.effects);
    let events = fixtures::plain_events("sip-hold.events-plain.received.esl");
    let stop = events
        .iter()
        .find(|h| h.get("Event-Name").map(String::as_str) == Some("RECORD_STOP"))
        .unwrap();
    let effects = rec.on_event(&event(&echo_recording(&rec, stop)));
    assert!(matches!(
        store_ops(&effects)[0],
        StoreOp::Segment { kind: SegmentKind::Stop, source: SegmentSource::Api, actor, .. } if actor == "admin"
    ));
    assert_eq!(
        rec.recording_action(
            SIP_A_LEG,
            RecordingAction::Pause,
            SegmentSource::Api,
            "admin",
            6
        ),
        Err(ActionError::Conflict {
            action: "pause",
            reason: "not recording"
        })
    );
}

#[test]
fn an_unknown_call_is_reported_as_such() {
    let mut rec = recorder(&[("1001", RecordingMode::AlwaysPausable)]);
    assert_eq!(
        rec.recording_action("nope", RecordingAction::Pause, SegmentSource::Api, "a", 1),
        Err(ActionError::UnknownCall("nope".into()))
    );
}

#[test]
fn a_record_stop_after_the_hangup_still_decides_discard_or_ingest() {
    let mut rec = recorder(&[("1002", RecordingMode::Always)]);
    let mut events = fixtures::plain_events("shortmin.events-plain.received.esl");
    // Swap the recorded leg's RECORD_STOP and its CHANNEL_HANGUP_COMPLETE.
    let stop = events
        .iter()
        .position(|h| h.get("Event-Name").map(String::as_str) == Some("RECORD_STOP"))
        .unwrap();
    let hangup = events
        .iter()
        .rposition(|h| h.get("Event-Name").map(String::as_str) == Some("CHANNEL_HANGUP_COMPLETE"))
        .unwrap();
    assert!(hangup > stop);
    let mut stop_event = events.remove(stop);
    let id = {
        // Replay up to the hangup so the recording exists, then echo its id.
        let effects = replay_until(&mut rec, &events[..hangup - 1], |_| false);
        creates(&effects)[0].id.clone()
    };
    stop_event.insert("Recording-Variable-callrec_id".into(), id.to_string());
    let hangup_effects = rec.on_event(&event(&events[hangup - 1]));
    assert!(
        hangup_effects.is_empty(),
        "nothing decided before RECORD_STOP"
    );
    let effects = rec.on_event(&event(&stop_event));
    assert!(
        store_ops(&effects)
            .iter()
            .any(|op| matches!(op, StoreOp::Discard { reason, .. } if reason == "input-too-short")),
        "{effects:?}"
    );
    assert_eq!(rec.table().closing().count(), 0);
}

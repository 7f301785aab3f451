//! Feature codes and API actions: pause, resume and start, the call they act on, and what
//! the handset hears.

use super::*;

#[test]
fn pause_code_on_a_held_call_masks_its_recording() {
    let (mut rec, call) = sip_call_on_hold(
        &[("1001", RecordingMode::AlwaysPausable)],
        PauseBehavior::Silence,
    );
    assert_eq!(call.uuid, SIP_FEATURE_LEG);
    let FeatureDecision::Act { plan, on_success } = rec.feature_code(&call) else {
        panic!("expected an action");
    };
    assert_eq!(on_success, Prompt::Paused);
    let id = rec
        .table()
        .channel(SIP_A_LEG)
        .unwrap()
        .recording
        .as_ref()
        .unwrap()
        .id
        .clone();
    assert_eq!(
        commands(&plan.effects),
        vec![format!("uuid_record {SIP_A_LEG} mask {SPOOL}/{id}.wav")]
    );
    let Effect::Command(cmd) = &plan.effects[0] else {
        unreachable!()
    };
    let after = rec.on_command_result(cmd, CommandOutcome::Ok);
    assert_eq!(
        after,
        vec![
            Effect::Store(StoreOp::Segment {
                id: id.clone(),
                kind: SegmentKind::Pause,
                at: call.at,
                source: SegmentSource::Handset,
                actor: "1001@default".into(),
            }),
            Effect::Resolve {
                ticket: plan.ticket,
                outcome: Ok(ActionDone {
                    action: RecordingAction::Pause,
                    recording: id
                }),
            },
        ]
    );
    let calls = rec.live_calls();
    let a = calls.iter().find(|c| c.call_uuid == SIP_A_LEG).unwrap();
    assert_eq!(a.recording, CallRecording::Paused);
    assert!(a.on_hold);
}

#[test]
fn pause_in_skip_mode_uses_pause_and_resume() {
    let (mut rec, call) = sip_call_on_hold(
        &[("1001", RecordingMode::AlwaysPausable)],
        PauseBehavior::Skip,
    );
    let FeatureDecision::Act { plan, .. } = rec.feature_code(&call) else {
        panic!()
    };
    assert!(commands(&plan.effects)[0].starts_with(&format!("uuid_record {SIP_A_LEG} pause ")));
    confirm_commands(&mut rec, plan.effects);
    let plan = rec
        .recording_action(
            SIP_A_LEG,
            RecordingAction::Resume,
            SegmentSource::Api,
            "admin",
            call.at + 5,
        )
        .expect("resume accepted");
    assert!(commands(&plan.effects)[0].starts_with(&format!("uuid_record {SIP_A_LEG} resume ")));
}

#[test]
fn pause_is_refused_in_mode_always_and_start_in_mode_never() {
    let (mut rec, call) =
        sip_call_on_hold(&[("1001", RecordingMode::Always)], PauseBehavior::Silence);
    assert_eq!(
        rec.feature_code(&call),
        FeatureDecision::Play(Prompt::NotAllowed)
    );
    assert_eq!(
        rec.recording_action(
            SIP_A_LEG,
            RecordingAction::Resume,
            SegmentSource::Api,
            "a",
            1
        ),
        Err(ActionError::Refused {
            action: "resume",
            mode: RecordingMode::Always
        })
    );

    let (mut rec, _) = sip_call_on_hold(&[("1001", RecordingMode::Never)], PauseBehavior::Silence);
    assert_eq!(
        rec.recording_action(
            SIP_A_LEG,
            RecordingAction::Start,
            SegmentSource::Api,
            "a",
            1
        ),
        Err(ActionError::Refused {
            action: "start",
            mode: RecordingMode::Never
        })
    );
}

#[test]
fn start_code_records_an_on_demand_users_held_call() {
    let (mut rec, mut call) =
        sip_call_on_hold(&[("1001", RecordingMode::OnDemand)], PauseBehavior::Silence);
    assert!(
        rec.table().recordings().next().is_none(),
        "on demand: nothing yet"
    );
    call.destination = Some("*44".into());
    let FeatureDecision::Act { plan, on_success } = rec.feature_code(&call) else {
        panic!()
    };
    assert_eq!(on_success, Prompt::Started);
    let rows = creates(&plan.effects);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].call_uuid, SIP_A_LEG);
    assert!(matches!(
        store_ops(&plan.effects)[1],
        StoreOp::Segment {
            kind: SegmentKind::Start,
            source: SegmentSource::Handset,
            ..
        }
    ));
    assert!(commands(&plan.effects)[0].contains(" start "));
}

#[test]
fn feature_code_from_an_unknown_caller_is_not_allowed() {
    let (mut rec, mut call) =
        sip_call_on_hold(&[("1000", RecordingMode::Always)], PauseBehavior::Silence);
    call.owner_headers = vec![None; call.owner_headers.len()];
    call.caller_number = Some("5550000".into());
    assert_eq!(
        rec.feature_code(&call),
        FeatureDecision::Play(Prompt::NotAllowed)
    );
}

#[test]
fn a_second_pause_code_is_not_confirmed_while_the_first_awaits_the_switch() {
    let (mut rec, call) = sip_call_on_hold(
        &[("1001", RecordingMode::AlwaysPausable)],
        PauseBehavior::Silence,
    );
    let FeatureDecision::Act { plan, .. } = rec.feature_code(&call) else {
        panic!("expected the first *48 to mask");
    };
    // *48 again before the switch answered the mask: nobody knows yet whether it is paused.
    assert_eq!(
        rec.feature_code(&call),
        FeatureDecision::Play(Prompt::NotAllowed),
        "'paused' must not be played on the strength of a mask the switch may refuse"
    );
    // It does refuse it, twice: the recording runs on.
    let Effect::Command(cmd) = &plan.effects[0] else {
        panic!()
    };
    let retry = rec.on_command_result(cmd, CommandOutcome::Refused("-ERR x".into()));
    let Effect::Command(cmd) = &retry[0] else {
        panic!()
    };
    rec.on_command_result(cmd, CommandOutcome::Refused("-ERR x".into()));
    let a = rec
        .live_calls()
        .into_iter()
        .find(|c| c.call_uuid == SIP_A_LEG)
        .unwrap();
    assert_eq!(a.recording, CallRecording::Recording);
    // Once answered, a new *48 is sent to the switch again.
    assert!(matches!(
        rec.feature_code(&call),
        FeatureDecision::Act {
            on_success: Prompt::Paused,
            ..
        }
    ));
}

#[test]
fn a_second_start_code_is_not_confirmed_while_the_first_start_awaits_the_switch() {
    let (mut rec, mut call) =
        sip_call_on_hold(&[("1001", RecordingMode::OnDemand)], PauseBehavior::Silence);
    call.destination = Some("*44".into());
    let FeatureDecision::Act { plan, .. } = rec.feature_code(&call) else {
        panic!("expected the first *44 to start");
    };
    assert_eq!(
        rec.feature_code(&call),
        FeatureDecision::Play(Prompt::NotAllowed),
        "'started' must not be played before the switch started anything"
    );
    // The switch refuses the start, twice: nothing records.
    let start = plan
        .effects
        .iter()
        .find_map(|e| match e {
            Effect::Command(c) => Some(c.clone()),
            _ => None,
        })
        .unwrap();
    let retry = rec.on_command_result(&start, CommandOutcome::Refused("-ERR x".into()));
    let Effect::Command(cmd) = &retry[0] else {
        panic!()
    };
    rec.on_command_result(cmd, CommandOutcome::Refused("-ERR x".into()));
    assert!(rec.table().recordings().next().is_none());
    assert!(matches!(
        rec.feature_code(&call),
        FeatureDecision::Act {
            on_success: Prompt::Started,
            ..
        }
    ));
}

#[test]
fn a_feature_caller_is_known_by_who_authenticated_not_by_the_caller_id_they_present() {
    // 1001's call is on hold and recorded. Phone 1002 authenticated as itself (a switch user
    // callrec does not record), presents 1001 as its caller ID and dials *48.
    let (mut rec, mut call) = sip_call_on_hold(
        &[("1001", RecordingMode::AlwaysPausable)],
        PauseBehavior::Silence,
    );
    let user_name = Settings::default_owner_headers()
        .iter()
        .position(|h| h == "variable_user_name")
        .unwrap();
    call.owner_headers[user_name] = Some("1002".into());
    assert_eq!(call.caller_number.as_deref(), Some("1001"));
    assert_eq!(
        rec.feature_code(&call),
        FeatureDecision::Play(Prompt::NotAllowed),
        "a caller ID is whatever the phone sends: it must not pause 1001's recording"
    );
    // Without any authenticated or dialplan-set name, the caller ID alone is not enough either.
    call.owner_headers[user_name] = None;
    assert_eq!(
        rec.feature_code(&call),
        FeatureDecision::Play(Prompt::NotAllowed)
    );
    let a = rec
        .live_calls()
        .into_iter()
        .find(|c| c.call_uuid == SIP_A_LEG)
        .unwrap();
    assert_eq!(a.recording, CallRecording::Recording);
}

/// An event of the `record` capture made about a copy of that call: every channel id gets
/// `suffix`, so several such calls can run side by side.
fn copy_of_record_call(h: &Headers, suffix: &str) -> Headers {
    let mut h = h.clone();
    for key in [
        "Unique-ID",
        "variable_other_loopback_leg_uuid",
        "Channel-Call-UUID",
    ] {
        if let Some(v) = h.get_mut(key) {
            v.push_str(suffix);
        }
    }
    h
}

fn record_call_event(name: &str) -> Headers {
    fixtures::plain_events("record.events-plain.received.esl")
        .into_iter()
        .find(|h| h.get("Event-Name").map(String::as_str) == Some(name))
        .expect("the capture has this event")
}

/// Two answered loopback calls of user 1001, as the `record` capture's answers.
fn two_calls(rec: &mut Recorder) -> [String; 2] {
    let events = fixtures::plain_events("record.events-plain.received.esl");
    let answers: Vec<&Headers> = events
        .iter()
        .filter(|h| h.get("Event-Name").map(String::as_str) == Some("CHANNEL_ANSWER"))
        .collect();
    for suffix in ["1", "2"] {
        for h in &answers {
            let effects = rec.on_event(&event(&copy_of_record_call(h, suffix)));
            confirm_commands(rec, effects);
        }
    }
    // Recorded on their B legs (`waits_for_own_leg`).
    [format!("{RECORD_B_LEG}1"), format!("{RECORD_B_LEG}2")]
}

fn feature_call(code: &str) -> ChannelEvent {
    let mut call = event(&fixtures::connect_reply(
        "feature-code-outbound.received.esl",
    ));
    call.destination = Some(code.into());
    call
}

#[test]
fn with_two_calls_and_none_held_there_is_no_call_to_act_on() {
    let mut rec = recorder(&[("1001", RecordingMode::AlwaysPausable)]);
    two_calls(&mut rec);
    assert_eq!(
        rec.feature_code(&feature_call("*48")),
        FeatureDecision::Play(Prompt::NoCall)
    );
}

#[test]
fn the_most_recently_held_call_is_the_target() {
    let mut rec = recorder(&[("1001", RecordingMode::AlwaysPausable)]);
    let [first, _second] = two_calls(&mut rec);
    for (suffix, at) in [("2", 100), ("1", 200)] {
        let mut h = copy_of_record_call(&record_call_event("CHANNEL_HOLD"), suffix);
        h.insert("Event-Date-Timestamp".into(), at.to_string());
        rec.on_event(&event(&h));
    }
    let FeatureDecision::Act { plan, .. } = rec.feature_code(&feature_call("*48")) else {
        panic!()
    };
    assert!(commands(&plan.effects)[0].starts_with(&format!("uuid_record {first} mask")));
}

#[test]
fn with_a_single_unheld_call_that_call_is_the_target() {
    let mut rec = recorder(&[("1001", RecordingMode::AlwaysPausable)]);
    replay_until(
        &mut rec,
        &fixtures::plain_events("record.events-plain.received.esl"),
        |h| h.get("Event-Name").map(String::as_str) == Some("CHANNEL_HOLD"),
    );
    let FeatureDecision::Act { plan, on_success } = rec.feature_code(&feature_call("*48")) else {
        panic!()
    };
    assert_eq!(on_success, Prompt::Paused);
    confirm_commands(&mut rec, plan.effects);
    // *48 again: already paused, the handset hears that it is.
    assert_eq!(
        rec.feature_code(&feature_call("*48")),
        FeatureDecision::Play(Prompt::Paused)
    );
    let FeatureDecision::Act { on_success, .. } = rec.feature_code(&feature_call("*49")) else {
        panic!()
    };
    assert_eq!(on_success, Prompt::Resumed);
}

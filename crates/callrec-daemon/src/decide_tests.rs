//! Decisions on events parsed from the real captures: no socket, no clock.

use std::collections::HashMap;

use callrec_model::{
    Direction, PauseBehavior, RecordingId, RecordingMode, SegmentKind, SegmentSource, UserId,
};

use super::*;
use crate::directory::testing;
use crate::event::ChannelEvent;
use crate::fixtures::{self, Headers, SPOOL, recorder, recorder_in, recorder_with, site, user};

fn event(h: &Headers) -> ChannelEvent {
    ChannelEvent::from_headers(h, &Settings::default_owner_headers()).expect("well-formed event")
}

/// The switch echoes the recording variables and path the daemon passed; the captures were
/// made with other values, so RECORD_START/STOP are given the ones of the recording the
/// recorder holds on that channel, as the real switch would.
fn echo_recording(rec: &Recorder, h: &Headers) -> Headers {
    let mut h = h.clone();
    let name = h.get("Event-Name").cloned().unwrap_or_default();
    if name == "RECORD_START" || name == "RECORD_STOP" {
        let uuid = h.get("Unique-ID").cloned().unwrap_or_default();
        if let Some(r) = rec
            .table()
            .channel(&uuid)
            .and_then(|c| c.recording.as_ref())
        {
            h.insert("Recording-Variable-callrec_id".into(), r.id.to_string());
            h.insert("Record-File-Path".into(), r.path.clone());
        }
    }
    h
}

/// Feeds every event of a capture; the switch answers every command `+OK`.
fn replay(rec: &mut Recorder, file: &str) -> Vec<Effect> {
    replay_until(rec, &fixtures::plain_events(file), |_| false)
}

fn replay_until(
    rec: &mut Recorder,
    events: &[Headers],
    stop: impl Fn(&Headers) -> bool,
) -> Vec<Effect> {
    let mut all = Vec::new();
    for h in events {
        if stop(h) {
            break;
        }
        let h = echo_recording(rec, h);
        let Ok(ev) = ChannelEvent::from_headers(&h, &Settings::default_owner_headers()) else {
            continue;
        };
        let effects = rec.on_event(&ev);
        all.extend(confirm_commands(rec, effects));
    }
    all
}

fn confirm_commands(rec: &mut Recorder, effects: Vec<Effect>) -> Vec<Effect> {
    let mut out = Vec::new();
    for effect in effects {
        if let Effect::Command(cmd) = &effect {
            let more = rec.on_command_result(cmd, CommandOutcome::Ok);
            out.push(effect);
            out.extend(confirm_commands(rec, more));
        } else {
            out.push(effect);
        }
    }
    out
}

fn creates(effects: &[Effect]) -> Vec<&NewRecording> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Store(StoreOp::Create(r)) => Some(r),
            _ => None,
        })
        .collect()
}

fn commands(effects: &[Effect]) -> Vec<String> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Command(c) => Some(c.api_text()),
            _ => None,
        })
        .collect()
}

fn store_ops(effects: &[Effect]) -> Vec<&StoreOp> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Store(op) => Some(op),
            _ => None,
        })
        .collect()
}

const RECORD_A_LEG: &str = "b0121122-8b41-4d85-8be3-48d9a317c792";
const SIP_A_LEG: &str = "002f0cb7-5a36-473a-a9c2-0e375de09811";
const SIP_B_LEG: &str = "e9e4219a-ce92-468c-998b-11a45ceb6241";
const SIP_FEATURE_LEG: &str = "002476ae-c24e-4c8f-8202-0e7f3f2d2133";

#[test]
fn answered_call_of_an_always_pausable_user_is_recorded_once_across_its_loopback_pair() {
    let mut rec = recorder(&[("1001", RecordingMode::AlwaysPausable)]);
    let effects = replay(&mut rec, "record.events-plain.received.esl");

    let rows = creates(&effects);
    assert_eq!(rows.len(), 1, "one recording for the two loopback legs");
    let row = rows[0];
    assert_eq!(row.call_uuid, RECORD_A_LEG);
    assert_eq!(row.user, testing::id_of("1001"));
    assert_eq!(row.direction, Direction::Inbound);
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
            "uuid_record {RECORD_A_LEG} start {SPOOL}/{id}.wav 0 {{callrec_id={id},RECORD_MIN_SEC=3}}"
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

fn is(h: &Headers, name: &str, uuid: &str) -> bool {
    h.get("Event-Name").map(String::as_str) == Some(name)
        && h.get("Unique-ID").map(String::as_str) == Some(uuid)
}

fn feed(rec: &mut Recorder, h: &Headers) -> Vec<Effect> {
    let h = echo_recording(rec, h);
    match ChannelEvent::from_headers(&h, &Settings::default_owner_headers()) {
        Ok(ev) => {
            let effects = rec.on_event(&ev);
            confirm_commands(rec, effects)
        }
        Err(_) => Vec::new(),
    }
}

/// The events a subscription to [`crate::event::SUBSCRIBED_EVENTS`] receives.
fn subscribed(events: &[Headers]) -> Vec<Headers> {
    events
        .iter()
        .filter(|h| {
            h.get("Event-Name")
                .is_some_and(|n| crate::event::SUBSCRIBED_EVENTS.contains(&n.as_str()))
        })
        .cloned()
        .collect()
}

#[test]
fn the_users_own_leg_is_recorded_even_when_the_other_leg_answers_first() {
    // Only 1001 is a user. In the capture the B leg (towards 1000) answers first, and it
    // carries 1001 as its caller ID; 1001's own leg (`variable_user_name: 1001`) answers
    // a moment later. The recording belongs on 1001's own leg: whether the daemon heard of
    // that leg before (every event) or first hears of it at its answer (the events the daemon
    // subscribes to: no CHANNEL_CREATE).
    let all = fixtures::plain_events("sip-hold.events-plain.received.esl");
    let b_answer = all
        .iter()
        .position(|h| is(h, "CHANNEL_ANSWER", SIP_B_LEG))
        .unwrap();
    assert!(
        all[b_answer + 1..]
            .iter()
            .any(|h| is(h, "CHANNEL_ANSWER", SIP_A_LEG)),
        "the capture has the B leg answer first"
    );
    for (what, events) in [
        ("every event", all.clone()),
        ("subscribed", subscribed(&all)),
    ] {
        let mut rec = recorder(&[("1001", RecordingMode::AlwaysPausable)]);
        let weak = rec.owner_of(&event(&all[b_answer])).unwrap();
        assert_eq!(
            weak.user.extension, "1001",
            "the B leg is 1001's by caller ID"
        );

        let effects = replay_until(&mut rec, &events, |_| false);
        let rows = creates(&effects);
        assert_eq!(rows.len(), 1, "{what}: {rows:?}");
        assert_eq!(rows[0].call_uuid, SIP_A_LEG, "{what}");
        assert_eq!(
            (
                rows[0].direction,
                rows[0].from.as_str(),
                rows[0].to.as_str()
            ),
            (Direction::Outbound, "1001", "1000"),
            "{what}"
        );
        assert_eq!(
            rows[0].started_at.timestamp_micros(),
            1795534439406568,
            "{what}: from the answer, nothing lost by waiting for the user's leg"
        );
        assert!(
            commands(&effects)[0].starts_with(&format!("uuid_record {SIP_A_LEG} start ")),
            "{what}"
        );
    }
}

#[test]
fn a_leg_matched_by_a_channel_variable_does_not_wait() {
    // 1000's leg carries `variable_dialed_user: 1000`: it is 1000's own leg, recorded at its
    // answer, even though the other leg has not answered yet.
    let mut rec = recorder(&[("1000", RecordingMode::Always)]);
    let events = subscribed(&fixtures::plain_events(
        "sip-hold.events-plain.received.esl",
    ));
    let b_answer = events
        .iter()
        .position(|h| is(h, "CHANNEL_ANSWER", SIP_B_LEG))
        .unwrap();
    let mut effects = Vec::new();
    for h in &events[..=b_answer] {
        effects.extend(feed(&mut rec, h));
    }
    let rows = creates(&effects);
    assert_eq!(rows.len(), 1, "{effects:?}");
    assert_eq!(rows[0].call_uuid, SIP_B_LEG);
}

#[test]
fn a_recording_already_running_on_the_weaker_leg_is_kept_and_never_doubled() {
    // While the B leg waits for 1001's own leg, 1001 starts recording through the API: it
    // goes on the only answered leg, B. When 1001's own leg answers, no second recording.
    let mut rec = recorder(&[("1001", RecordingMode::AlwaysPausable)]);
    let events = subscribed(&fixtures::plain_events(
        "sip-hold.events-plain.received.esl",
    ));
    let b_answer = events
        .iter()
        .position(|h| is(h, "CHANNEL_ANSWER", SIP_B_LEG))
        .unwrap();
    let mut effects = Vec::new();
    for h in &events[..=b_answer] {
        effects.extend(feed(&mut rec, h));
    }
    assert!(creates(&effects).is_empty(), "B waits");
    let plan = rec
        .recording_action(
            SIP_B_LEG,
            RecordingAction::Start,
            SegmentSource::Api,
            "a",
            1,
        )
        .unwrap();
    effects.extend(confirm_commands(&mut rec, plan.effects));
    for h in &events[b_answer + 1..] {
        effects.extend(feed(&mut rec, h));
    }
    let rows = creates(&effects);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].call_uuid, SIP_B_LEG);
}

#[test]
fn a_waiting_leg_is_recorded_when_the_users_own_leg_leaves_unanswered() {
    let mut rec = recorder(&[("1001", RecordingMode::Always)]);
    let events = subscribed(&fixtures::plain_events(
        "sip-hold.events-plain.received.esl",
    ));
    let b_answer = events
        .iter()
        .position(|h| is(h, "CHANNEL_ANSWER", SIP_B_LEG))
        .unwrap();
    let mut effects = Vec::new();
    for h in &events[..=b_answer] {
        effects.extend(feed(&mut rec, h));
    }
    assert!(
        creates(&effects).is_empty(),
        "the B leg waits for 1001's own leg"
    );
    // 1001's leg goes away without answering (its hangup, brought forward).
    let a_gone = events
        .iter()
        .find(|h| is(h, "CHANNEL_HANGUP_COMPLETE", SIP_A_LEG))
        .unwrap();
    let mut a_gone = a_gone.clone();
    a_gone.insert(
        "Event-Date-Timestamp".into(),
        events[b_answer]["Event-Date-Timestamp"].clone(),
    );
    let effects = feed(&mut rec, &a_gone);
    let rows = creates(&effects);
    assert_eq!(rows.len(), 1, "{effects:?}");
    assert_eq!(rows[0].call_uuid, SIP_B_LEG);
}

#[test]
fn a_wait_for_a_leg_the_switch_never_mentions_again_ends_at_the_spool_scan() {
    let mut rec = recorder(&[("1001", RecordingMode::Always)]);
    let events = subscribed(&fixtures::plain_events(
        "sip-hold.events-plain.received.esl",
    ));
    let b_answer = events
        .iter()
        .position(|h| is(h, "CHANNEL_ANSWER", SIP_B_LEG))
        .unwrap();
    let mut effects = Vec::new();
    for h in &events[..=b_answer] {
        effects.extend(feed(&mut rec, h));
    }
    assert!(creates(&effects).is_empty(), "B waits for 1001's own leg");
    let answered = 1795534439406568;
    assert!(rec.expire_waits(answered + 1_000_000, 2_000_000).is_empty());
    let late = rec.expire_waits(answered + 2_500_000, 2_000_000);
    let rows = creates(&late);
    assert_eq!(rows.len(), 1, "{late:?}");
    assert_eq!(
        (
            rows[0].call_uuid.as_str(),
            rows[0].started_at.timestamp_micros()
        ),
        (SIP_B_LEG, answered + 2_500_000)
    );
    assert!(
        rec.expire_waits(answered + 10_000_000, 2_000_000)
            .is_empty(),
        "once"
    );
}

#[test]
fn a_waiting_leg_is_recorded_when_the_other_leg_proves_to_be_someone_elses() {
    // The same call, but the A leg authenticated as 1009 (mode never) while presenting 1001 as
    // its caller ID: the B leg is 1001's only leg after all, and is recorded when A answers.
    let mut rec = recorder(&[
        ("1001", RecordingMode::Always),
        ("1009", RecordingMode::Never),
    ]);
    let events: Vec<Headers> = subscribed(&fixtures::plain_events(
        "sip-hold.events-plain.received.esl",
    ))
    .into_iter()
    .map(|mut h| {
        if h.get("Unique-ID").map(String::as_str) == Some(SIP_A_LEG) {
            h.insert("variable_user_name".into(), "1009".into());
        }
        h
    })
    .collect();
    let effects = replay_until(&mut rec, &events, |_| false);
    let rows = creates(&effects);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (rows[0].call_uuid.as_str(), rows[0].user),
        (SIP_B_LEG, testing::id_of("1001"))
    );
    assert_eq!(rows[0].started_at.timestamp_micros(), 1795534439406568);
}

#[test]
fn an_api_start_goes_on_the_users_own_leg_whichever_leg_it_names() {
    let mut rec = recorder(&[("1001", RecordingMode::OnDemand)]);
    replay_until(
        &mut rec,
        &fixtures::plain_events("sip-hold.events-plain.received.esl"),
        |h| is(h, "CHANNEL_HANGUP_COMPLETE", SIP_B_LEG),
    );
    let calls = rec.live_calls();
    let mine: Vec<_> = calls.iter().filter(|c| c.user == "1001").collect();
    assert_eq!(mine.len(), 1, "{calls:?}");
    assert_eq!(
        mine[0].call_uuid, SIP_A_LEG,
        "the call is listed on 1001's own leg"
    );
    let plan = rec
        .recording_action(
            SIP_B_LEG,
            RecordingAction::Start,
            SegmentSource::Api,
            "a",
            1,
        )
        .unwrap();
    assert!(commands(&plan.effects)[0].starts_with(&format!("uuid_record {SIP_A_LEG} start ")));
}

/// The sip-hold capture up to the moment the *48 call reaches the listener.
/// User 1000, the callee, is a user in mode `never`, so the B leg is theirs.
fn sip_call_on_hold(
    users: &[(&str, RecordingMode)],
    pause: PauseBehavior,
) -> (Recorder, ChannelEvent) {
    let mut users = users.to_vec();
    if !users.iter().any(|(e, _)| *e == "1000") {
        users.push(("1000", RecordingMode::Never));
    }
    let mut rec = recorder_with(&users, pause);
    let events = fixtures::plain_events("sip-hold.events-plain.received.esl");
    replay_until(&mut rec, &events, |h| {
        h.get("Unique-ID").map(String::as_str) == Some(SIP_FEATURE_LEG)
            && h.get("Event-Name").map(String::as_str) == Some("CHANNEL_ANSWER")
    });
    let call = event(&fixtures::connect_reply(
        "sip-hold-feature-code.received.esl",
    ));
    (rec, call)
}

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
    [format!("{RECORD_A_LEG}1"), format!("{RECORD_A_LEG}2")]
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

#[test]
fn a_refused_command_is_retried_once_then_the_recording_is_failed() {
    let mut rec = recorder(&[("1001", RecordingMode::Always)]);
    let events = fixtures::plain_events("record.events-plain.received.esl");
    let answer = events
        .iter()
        .find(|h| h.get("Event-Name").map(String::as_str) == Some("CHANNEL_ANSWER"))
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

fn switch_channel(uuid: &str, held: bool) -> SwitchChannel {
    SwitchChannel {
        uuid: uuid.into(),
        answered: true,
        held,
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

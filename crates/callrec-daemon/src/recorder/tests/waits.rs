//! Legs that wait for their user's own leg before the decision to record.

use super::*;

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

/// The events with a header set on every event of leg `uuid`.
fn with_variable(events: Vec<Headers>, uuid: &str, (name, value): (&str, &str)) -> Vec<Headers> {
    events
        .into_iter()
        .map(|mut h| {
            if h.get("Unique-ID").map(String::as_str) == Some(uuid) {
                h.insert(name.into(), value.into());
            }
            h
        })
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
    let events = with_variable(
        subscribed(&fixtures::plain_events(
            "sip-hold.events-plain.received.esl",
        )),
        SIP_A_LEG,
        ("variable_user_name", "1009"),
    );
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

#[test]
fn the_loopback_a_legs_answer_heard_first_waits_for_its_b_leg_which_loses_nothing_at_the_end() {
    // The events the daemon subscribes to, as the `record` capture has them: the originated
    // (A) leg's CHANNEL_ANSWER comes before anything of the B leg (whose ringing has no
    // progress event). A recording on the A leg ends about 0.5 s before the call
    // (mod_loopback drops what it still queues at hangup), so the A leg waits, and 1001's
    // recording goes on the B leg when its answer arrives.
    let mut rec = recorder(&[("1001", RecordingMode::Always)]);
    let events = subscribed(&fixtures::plain_events("record.events-plain.received.esl"));
    let a_answer = events
        .iter()
        .position(|h| is(h, "CHANNEL_ANSWER", RECORD_A_LEG))
        .unwrap();
    assert!(
        events[..a_answer]
            .iter()
            .all(|h| h.get("Unique-ID").map(String::as_str) != Some(RECORD_B_LEG)),
        "the capture has nothing of the B leg before the A leg's answer"
    );
    let mut effects = Vec::new();
    for h in &events[..=a_answer] {
        effects.extend(feed(&mut rec, h));
    }
    assert!(commands(&effects).is_empty(), "{effects:?}");

    let effects = replay_until(&mut rec, &events[a_answer + 1..], |_| false);
    let rows = creates(&effects);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].call_uuid, RECORD_B_LEG);
    assert_eq!(rows[0].user, testing::id_of("1001"));
    assert!(
        commands(&effects)[0].starts_with(&format!("uuid_record {RECORD_B_LEG} start ")),
        "{:?}",
        commands(&effects)
    );
}

#[test]
fn a_loopback_a_leg_whose_b_leg_is_someone_elses_is_recorded_at_the_b_legs_answer() {
    // The same call, its B leg running the dialplan as 1009 (mode never): the A leg is
    // 1001's only leg, recorded once the B leg is heard of.
    let mut rec = recorder(&[
        ("1001", RecordingMode::Always),
        ("1009", RecordingMode::Never),
    ]);
    let events = with_variable(
        subscribed(&fixtures::plain_events("record.events-plain.received.esl")),
        RECORD_B_LEG,
        ("variable_callrec_user", "1009"),
    );
    let effects = replay_until(&mut rec, &events, |_| false);
    let rows = creates(&effects);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (rows[0].call_uuid.as_str(), rows[0].user),
        (RECORD_A_LEG, testing::id_of("1001"))
    );
}

#[test]
fn a_loopback_a_leg_whose_b_leg_is_never_heard_of_is_recorded_at_the_spool_scan() {
    let mut rec = recorder(&[("1001", RecordingMode::Always)]);
    let events = fixtures::plain_events("record.events-plain.received.esl");
    let answer = events
        .iter()
        .find(|h| is(h, "CHANNEL_ANSWER", RECORD_A_LEG))
        .unwrap();
    assert!(feed(&mut rec, answer).is_empty());
    let answered = 1795533876529549;
    assert!(rec.expire_waits(answered + 1_000_000, 2_000_000).is_empty());
    let rows_effects = rec.expire_waits(answered + 2_500_000, 2_000_000);
    let rows = creates(&rows_effects);
    assert_eq!(rows.len(), 1, "{rows_effects:?}");
    assert_eq!(rows[0].call_uuid, RECORD_A_LEG);
}

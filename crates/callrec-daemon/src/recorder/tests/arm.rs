//! Recordings armed before answer (`RECORD_ANSWER_REQ` on a leg with early media, the
//! `api_on_answer_callrec` variable on one without): armed while ringing, indexed at answer
//! without a second command, never indexed for a leg that is not recorded.

use super::*;

/// An event of a leg that 1001 owns by `callrec_user` (their own leg, not a number); a
/// progress event is CHANNEL_PROGRESS_MEDIA (media up before the answer).
fn of_1001(kind: EventKind, uuid: &str, at: Micros) -> ChannelEvent {
    ChannelEvent {
        kind,
        uuid: uuid.into(),
        at,
        owner_headers: vec![Some("1001".into()), None, None, None, None],
        early_media: kind == EventKind::Progress,
        ..ChannelEvent::empty()
    }
}

/// CHANNEL_PROGRESS of 1001's leg without media (a 180).
fn ringing_without_media(uuid: &str, at: Micros) -> ChannelEvent {
    ChannelEvent {
        early_media: false,
        ..of_1001(EventKind::Progress, uuid, at)
    }
}

#[test]
fn a_leg_ringing_without_media_is_armed_through_api_on_answer_not_uuid_record() {
    // `uuid_record` would pre-answer a leg without media (a calling phone then plays
    // silence instead of its ringback) or be refused (a leg the switch calls): measured on
    // the real switch, see the README. The command goes in a variable the switch runs as the
    // leg answers.
    let mut rec = recorder(&[("1001", RecordingMode::Always)]);
    let armed = rec.on_event(&ringing_without_media("leg", 1_000_000));
    let cmd = only_command(&armed).clone();
    assert_eq!(
        cmd.api_text(),
        format!(
            "uuid_setvar leg api_on_answer_callrec uuid_record leg start \
             {SPOOL}/01900000-0000-7000-8000-000000000001.wav 0 \
             {{callrec_id=01900000-0000-7000-8000-000000000001,RECORD_MIN_SEC=3}}"
        )
    );
    assert!(rec.on_command_result(&cmd, CommandOutcome::Ok).is_empty());

    // The answer indexes it; the switch started it itself.
    let answered = rec.on_event(&of_1001(EventKind::Answer, "leg", 5_000_000));
    assert!(commands(&answered).is_empty(), "{answered:?}");
    let created = creates(&answered);
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].id, cmd.recording);
    assert_eq!(created[0].started_at.timestamp_micros(), 5_000_000);
    // RECORD_START comes after CHANNEL_ANSWER (the switch runs the variable after firing
    // it) and confirms it: no second start, however many ticks pass.
    assert!(
        rec.on_event(&record_event(
            EventKind::RecordStart,
            "leg",
            &cmd,
            5_020_000
        ))
        .is_empty()
    );
    for tick in 1..=3 {
        assert!(
            rec.confirm_armed_starts(5_000_000 + tick * 1_000_000)
                .is_empty()
        );
    }
    let stopped = rec.on_event(&record_event(EventKind::RecordStop, "leg", &cmd, 9_000_000));
    assert!(
        store_ops(&stopped)
            .iter()
            .any(|op| matches!(op, StoreOp::Ingest { id, .. } if *id == cmd.recording)),
        "{stopped:?}"
    );
}

#[test]
fn an_arming_the_switch_took_after_the_answer_is_started_at_the_second_tick() {
    // The variable landed after the leg answered (a saturated switch): nothing runs it, no
    // RECORD_START comes. The recording is started with `uuid_record` on the same path (a
    // no-op on the switch had it started after all).
    let mut rec = recorder(&[("1001", RecordingMode::Always)]);
    let arm = only_command(&rec.on_event(&ringing_without_media("leg", 1_000_000))).clone();
    assert!(rec.on_command_result(&arm, CommandOutcome::Ok).is_empty());
    let answered = rec.on_event(&of_1001(EventKind::Answer, "leg", 5_000_000));
    assert_eq!(creates(&answered).len(), 1);

    assert!(
        rec.confirm_armed_starts(5_500_000).is_empty(),
        "one tick is too soon"
    );
    let late = rec.confirm_armed_starts(6_500_000);
    let start = only_command(&late);
    assert_eq!(
        start.api_text(),
        format!(
            "uuid_record leg start {SPOOL}/01900000-0000-7000-8000-000000000001.wav 0 \
             {{callrec_id=01900000-0000-7000-8000-000000000001,RECORD_MIN_SEC=3}}"
        )
    );
    assert_eq!(start.recording, arm.recording);
    assert!(
        rec.confirm_armed_starts(7_500_000).is_empty(),
        "started once"
    );
}

#[test]
fn an_arming_refused_by_the_switch_is_forgotten_and_the_answer_starts_the_recording() {
    let mut rec = recorder(&[("1001", RecordingMode::Always)]);
    let arm = only_command(&rec.on_event(&ringing_without_media("leg", 1_000_000))).clone();
    let refused = rec.on_command_result(
        &arm,
        CommandOutcome::Refused("-ERR No such channel!".into()),
    );
    assert!(
        store_ops(&refused)
            .iter()
            .any(|op| matches!(op, StoreOp::Disarmed { id, .. } if *id == arm.recording)),
        "{refused:?}"
    );
    let answered = rec.on_event(&of_1001(EventKind::Answer, "leg", 5_000_000));
    let start = only_command(&commands_of(&answered)).clone();
    assert!(
        start.api_text().starts_with("uuid_record leg start "),
        "{}",
        start.api_text()
    );
    assert_ne!(start.recording, arm.recording);
}

fn commands_of(effects: &[Effect]) -> Vec<Effect> {
    effects
        .iter()
        .filter(|e| matches!(e, Effect::Command(_)))
        .cloned()
        .collect()
}

/// The same, of a loopback leg paired with `peer`.
fn of_1001_paired(kind: EventKind, uuid: &str, peer: &str, at: Micros) -> ChannelEvent {
    ChannelEvent {
        loopback_peer: Some(peer.into()),
        ..of_1001(kind, uuid, at)
    }
}

fn record_event(kind: EventKind, uuid: &str, cmd: &SwitchCommand, at: Micros) -> ChannelEvent {
    ChannelEvent {
        record_path: Some(cmd.path.clone()),
        callrec_id: Some(cmd.recording.to_string()),
        ..of_1001(kind, uuid, at)
    }
}

fn only_command(effects: &[Effect]) -> &SwitchCommand {
    match effects {
        [Effect::Command(cmd)] => cmd,
        other => panic!("expected one command, got {other:?}"),
    }
}

#[test]
fn a_ringing_leg_is_armed_and_its_answer_indexes_it_without_a_second_command() {
    let mut rec = recorder(&[("1001", RecordingMode::Always)]);
    let armed = rec.on_event(&of_1001(EventKind::Progress, "leg", 1_000_000));
    let cmd = only_command(&armed).clone();
    assert_eq!(
        cmd.api_text(),
        format!(
            "uuid_record leg start {SPOOL}/01900000-0000-7000-8000-000000000001.wav 0 \
             {{callrec_id=01900000-0000-7000-8000-000000000001,RECORD_MIN_SEC=3,RECORD_ANSWER_REQ=true}}"
        )
    );
    assert!(rec.live_calls().iter().all(|c| c.recording_id.is_none()));
    assert!(rec.on_command_result(&cmd, CommandOutcome::Ok).is_empty());
    assert!(
        rec.on_event(&record_event(
            EventKind::RecordStart,
            "leg",
            &cmd,
            1_020_000
        ))
        .is_empty()
    );

    let answered = rec.on_event(&of_1001(EventKind::Answer, "leg", 5_000_000));
    assert!(commands(&answered).is_empty(), "{answered:?}");
    let created = creates(&answered);
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].id, cmd.recording);
    assert_eq!(created[0].spool_path, std::path::PathBuf::from(&cmd.path));
    // The switch writes from the answer, not from when the leg was armed.
    assert_eq!(created[0].started_at.timestamp_micros(), 5_000_000);
    assert!(store_ops(&answered).iter().any(|op| matches!(
        op,
        StoreOp::Segment {
            kind: SegmentKind::Start,
            at: 5_000_000,
            source: SegmentSource::Policy,
            ..
        }
    )));

    // It ends like any recording: RECORD_STOP ingests it.
    let stopped = rec.on_event(&record_event(EventKind::RecordStop, "leg", &cmd, 9_000_000));
    assert!(
        store_ops(&stopped)
            .iter()
            .any(|op| matches!(op, StoreOp::Ingest { id, .. } if *id == cmd.recording)),
        "{stopped:?}"
    );
}

#[test]
fn an_armed_recording_ending_unanswered_is_handed_to_the_store_writer_to_keep_only_with_audio() {
    // Unanswered, the switch wrote nothing and the store writer removes the file; but the
    // answer may only have been missed (a dropped connection or dropped events) while the
    // switch wrote the whole call: then the file holds audio and is indexed. The recorder
    // cannot tell; it hands over the row the recording would get.
    let mut rec = recorder(&[("1001", RecordingMode::AlwaysPausable)]);
    let cmd = only_command(&rec.on_event(&of_1001(EventKind::Progress, "leg", 1_000_000))).clone();
    let stopped = rec.on_event(&record_event(EventKind::RecordStop, "leg", &cmd, 7_000_000));
    let handed = |effects: &[Effect], cmd: &SwitchCommand, at: Micros| match effects {
        [Effect::Store(StoreOp::ArmedEnded { new, ended_at })] => {
            new.id == cmd.recording
                && new.spool_path == std::path::Path::new(&cmd.path)
                && new.call_uuid == cmd.channel
                && *ended_at == at
        }
        _ => false,
    };
    assert!(handed(&stopped, &cmd, 7_000_000), "{stopped:?}");
    assert!(
        rec.on_event(&of_1001(EventKind::HangupComplete, "leg", 7_000_000))
            .is_empty()
    );

    // The hangup without its RECORD_STOP (lost, or still to come) hands it over too.
    let cmd = only_command(&rec.on_event(&of_1001(EventKind::Progress, "leg2", 8_000_000))).clone();
    let gone = rec.on_event(&of_1001(EventKind::HangupComplete, "leg2", 9_000_000));
    assert!(handed(&gone, &cmd, 9_000_000), "{gone:?}");
    assert!(
        rec.on_event(&record_event(
            EventKind::RecordStop,
            "leg2",
            &cmd,
            9_100_000
        ))
        .is_empty()
    );
}

#[test]
fn only_modes_that_record_on_answer_arm_and_only_on_the_users_own_leg() {
    for mode in [RecordingMode::OnDemand, RecordingMode::Never] {
        let mut rec = recorder(&[("1001", mode)]);
        assert!(
            rec.on_event(&of_1001(EventKind::Progress, "leg", 1))
                .is_empty(),
            "{mode:?}"
        );
    }
    // A leg that is 1001's only by the caller ID it carries (the far leg of their call) is
    // not armed: their own leg may still prove to be another.
    let mut rec = recorder(&[("1001", RecordingMode::Always)]);
    let by_number = ChannelEvent {
        owner_headers: vec![None, None, None, Some("1001".into()), None],
        ..of_1001(EventKind::Progress, "far", 1)
    };
    assert!(rec.on_event(&by_number).is_empty());
}

#[test]
fn a_refused_arming_falls_back_to_a_start_at_answer() {
    let mut rec = recorder(&[("1001", RecordingMode::Always)]);
    let cmd = only_command(&rec.on_event(&of_1001(EventKind::Progress, "leg", 1_000_000))).clone();
    let refused = rec.on_command_result(
        &cmd,
        CommandOutcome::Refused("-ERR Cannot record session!".into()),
    );
    assert_eq!(
        refused,
        vec![Effect::Store(StoreOp::Disarmed {
            id: cmd.recording.clone(),
            spool_path: cmd.path.clone(),
        })]
    );
    let answered = rec.on_event(&of_1001(EventKind::Answer, "leg", 2_000_000));
    let started = commands(&answered);
    assert_eq!(started.len(), 1, "{answered:?}");
    assert!(started[0].contains(" start ") && !started[0].contains("RECORD_ANSWER_REQ"));
    assert_eq!(creates(&answered).len(), 1);
}

#[test]
fn one_leg_is_armed_per_user_and_call_and_an_armed_leg_not_recorded_is_stopped() {
    // Two legs of one call name 1001: b by `dialed_user` (third in `[match] headers`), a by
    // `callrec_user` (first). b rings first and is armed; a is not (one armed leg per user
    // and call).
    let mut rec = recorder(&[("1001", RecordingMode::Always)]);
    let b = |kind, at| ChannelEvent {
        owner_headers: vec![None, None, Some("1001".into()), None, None],
        ..of_1001_paired(kind, "b", "a", at)
    };
    let cmd = only_command(&rec.on_event(&b(EventKind::Progress, 1_000_000))).clone();
    assert!(
        rec.on_event(&of_1001_paired(EventKind::Progress, "a", "b", 1_000_000))
            .is_empty()
    );
    assert_eq!(cmd.channel, "b");

    // a, the more strongly 1001's, answers and is recorded: the recording armed on b is
    // stopped, its file removed, and nothing indexed for it.
    let answered = rec.on_event(&of_1001_paired(EventKind::Answer, "a", "b", 2_000_000));
    let cmds = commands(&answered);
    assert_eq!(cmds.len(), 2, "{answered:?}");
    assert_eq!(cmds[0], format!("uuid_record b stop {}", cmd.path));
    assert!(cmds[1].starts_with("uuid_record a start "));
    assert!(store_ops(&answered).iter().any(|op| matches!(
        op,
        StoreOp::Disarmed { id, .. } if *id == cmd.recording
    )));
    let created = creates(&answered);
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].call_uuid, "a");
    assert_ne!(created[0].id, cmd.recording);
    // b's own answer later records nothing more.
    assert!(creates(&rec.on_event(&b(EventKind::Answer, 2_100_000))).is_empty());
}

/// 1001's mode changed to `never` (the directory follower's update).
fn set_1001_never(rec: &mut Recorder) {
    rec.set_owners(testing::index(
        vec![fixtures::site(PauseBehavior::Silence)],
        vec![fixtures::user("1001", RecordingMode::Never)],
    ));
}

#[test]
fn a_mode_changed_to_never_before_answer_stops_the_armed_recording() {
    let mut rec = recorder(&[("1001", RecordingMode::Always)]);
    let cmd = only_command(&rec.on_event(&of_1001(EventKind::Progress, "leg", 1_000_000))).clone();
    set_1001_never(&mut rec);
    let answered = rec.on_event(&of_1001(EventKind::Answer, "leg", 2_000_000));
    assert_eq!(
        commands(&answered),
        vec![format!("uuid_record leg stop {}", cmd.path)]
    );
    assert!(creates(&answered).is_empty());
    assert!(
        store_ops(&answered)
            .iter()
            .any(|op| matches!(op, StoreOp::Disarmed { .. }))
    );
}

#[test]
fn of_a_loopback_pair_the_b_leg_is_armed_and_recorded_though_the_a_leg_answers_first() {
    // `originate {callrec_user=1001}loopback/…`: both legs are 1001's. The real switch says
    // the A leg rings first and answers first; a recording on it ends about 0.5 s early,
    // one on the B leg does not.
    let mut rec = recorder(&[("1001", RecordingMode::Always)]);
    let a = |kind, at| ChannelEvent {
        loopback_a: true,
        ..of_1001_paired(kind, "a", "b", at)
    };
    let b = |kind, at| of_1001_paired(kind, "b", "a", at);
    assert!(rec.on_event(&a(EventKind::Progress, 1_000_000)).is_empty());
    let cmd = only_command(&rec.on_event(&b(EventKind::Progress, 1_000_000))).clone();
    assert_eq!(cmd.channel, "b");

    let a_answered = rec.on_event(&a(EventKind::Answer, 2_000_000));
    assert!(
        a_answered.is_empty(),
        "the A leg waits for the armed B leg: {a_answered:?}"
    );
    let b_answered = rec.on_event(&b(EventKind::Answer, 2_000_000));
    assert!(commands(&b_answered).is_empty(), "{b_answered:?}");
    let created = creates(&b_answered);
    assert_eq!(created.len(), 1);
    assert_eq!(
        (created[0].call_uuid.as_str(), &created[0].id),
        ("b", &cmd.recording)
    );
}

/// A ringing channel as `show channels` lists it after a restart.
fn ringing_channel(uuid: &str) -> SwitchChannel {
    SwitchChannel {
        uuid: uuid.into(),
        answered: false,
        held: false,
        early_media: true,
        direction: "outbound".into(),
        cid_num: "02079461111".into(),
        dest: "1001".into(),
        call_uuid: None,
    }
}

const ARMED_BEFORE: &str = "01900000-0000-7000-8000-000000000042";

#[test]
fn a_leg_armed_before_a_restart_is_known_again_and_its_answer_indexes_it() {
    let mut rec = recorder(&[("1001", RecordingMode::Always)]);
    let plan = rec.reconcile_plan(&[ringing_channel("leg")], rec.event_seq());
    assert_eq!(plan.ringing.len(), 1);
    assert!(plan.unknown.is_empty());
    let theirs = format!("{SPOOL}/{ARMED_BEFORE}.wav");
    let adopted = rec.adopt_ringing(
        &of_1001(EventKind::Progress, "leg", 1_000_000),
        std::slice::from_ref(&theirs),
    );
    assert!(adopted.is_empty(), "not armed a second time: {adopted:?}");
    // Heard now: a second pass does not take it in again.
    assert!(
        rec.reconcile_plan(&[ringing_channel("leg")], rec.event_seq())
            .ringing
            .is_empty()
    );

    let answered = rec.on_event(&of_1001(EventKind::Answer, "leg", 5_000_000));
    assert!(commands(&answered).is_empty(), "{answered:?}");
    let created = creates(&answered);
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].id.as_str(), ARMED_BEFORE);
    assert_eq!(created[0].spool_path, std::path::PathBuf::from(&theirs));
    assert_eq!(created[0].started_at.timestamp_micros(), 5_000_000);
}

#[test]
fn a_ringing_leg_met_at_reconciliation_is_armed_if_its_owner_records_every_call() {
    let mut rec = recorder(&[
        ("1001", RecordingMode::Always),
        ("1002", RecordingMode::OnDemand),
    ]);
    let armed = rec.adopt_ringing(&of_1001(EventKind::Progress, "leg", 1_000_000), &[]);
    let cmd = only_command(&armed);
    assert!(
        cmd.api_text().ends_with("RECORD_ANSWER_REQ=true}"),
        "{}",
        cmd.api_text()
    );

    let on_demand = ChannelEvent {
        owner_headers: vec![Some("1002".into()), None, None, None, None],
        ..of_1001(EventKind::Progress, "other", 1_000_000)
    };
    assert!(rec.adopt_ringing(&on_demand, &[]).is_empty());
}

#[test]
fn a_recording_armed_before_a_restart_on_a_leg_nobody_owns_now_is_stopped_and_removed() {
    let mut rec = recorder(&[("1001", RecordingMode::Always)]);
    let theirs = format!("{SPOOL}/{ARMED_BEFORE}.wav");
    let nobody = ChannelEvent {
        owner_headers: vec![Some("1999".into()), None, None, None, None],
        ..of_1001(EventKind::Progress, "leg", 1_000_000)
    };
    let effects = rec.adopt_ringing(&nobody, std::slice::from_ref(&theirs));
    assert_eq!(
        commands(&effects),
        [format!("uuid_record leg stop {theirs}")]
    );
    assert!(matches!(
        store_ops(&effects)[..],
        [StoreOp::Disarmed { id, spool_path }] if id.as_str() == ARMED_BEFORE && *spool_path == theirs
    ));
}

#[test]
fn a_recording_armed_before_a_restart_and_answered_while_away_is_indexed_at_reconciliation() {
    let mut rec = recorder(&[("1001", RecordingMode::Always)]);
    let theirs = format!("{SPOOL}/{ARMED_BEFORE}.wav");
    // The switch started it at answer; the index never heard of it (no row).
    let effects = rec.adopt_channel(
        &of_1001(EventKind::Answer, "leg", 9_000_000),
        false,
        std::slice::from_ref(&theirs),
        &[],
    );
    assert!(
        commands(&effects).is_empty(),
        "not started twice: {effects:?}"
    );
    let created = creates(&effects);
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].id.as_str(), ARMED_BEFORE);
    assert_eq!(rec.live_calls()[0].recording, CallRecording::Recording);
}

#[test]
fn an_outside_callers_leg_naming_the_user_it_reached_is_not_armed_for_them() {
    // The switch sets `dialed_user` on the leg that bridges to `user/1002` too (the
    // `sip-hold` capture: 1001's inbound leg carries `dialed_user` 1000). Heard ringing with
    // media (the caller hears 1002's ringback), the outside caller's leg is 1002's only by the
    // number it dialled: it is not armed, and the leg to 1002's phone is the one recorded.
    let mut rec = recorder(&[("1002", RecordingMode::Always)]);
    let outside = |kind, at| ChannelEvent {
        kind,
        uuid: "outside".into(),
        at,
        call_direction: Some("inbound".into()),
        caller_number: Some("02079460000".into()),
        destination: Some("1002".into()),
        dialed_user: Some("1002".into()),
        owner_headers: vec![
            None,
            None,
            Some("1002".into()),
            Some("02079460000".into()),
            Some("1002".into()),
        ],
        early_media: kind == EventKind::Progress,
        other_leg: Some("phone".into()),
        ..ChannelEvent::empty()
    };
    let owner = rec
        .owner_of(&outside(EventKind::Progress, 1_000_000))
        .unwrap();
    assert!(owner.by_number, "{owner:?}");
    assert_eq!(owner.direction, Direction::Inbound);
    assert!(
        rec.on_event(&outside(EventKind::Progress, 1_000_000))
            .is_empty()
    );
    let phone = ChannelEvent {
        kind: EventKind::Answer,
        uuid: "phone".into(),
        at: 2_000_000,
        call_direction: Some("outbound".into()),
        caller_number: Some("02079460000".into()),
        destination: Some("1002-0x56345d2322d0".into()),
        dialed_user: Some("1002".into()),
        owner_headers: vec![
            None,
            None,
            Some("1002".into()),
            Some("02079460000".into()),
            None,
        ],
        other_leg: Some("outside".into()),
        ..ChannelEvent::empty()
    };
    let answered = rec.on_event(&phone);
    let started = commands(&answered);
    assert_eq!(started.len(), 1, "{answered:?}");
    assert!(started[0].starts_with("uuid_record phone start "));
    assert!(commands(&rec.on_event(&outside(EventKind::Answer, 2_000_000))).is_empty());
}

#[test]
fn an_armed_leg_whose_answer_was_missed_is_taken_in_once_and_ends_once() {
    // Armed while ringing; the connection drops and CHANNEL_ANSWER is lost; reconciliation
    // finds the leg answered with our armed file among its media bugs. The armed recording
    // becomes the recording: one row, and at the end one ingest, not an ingest and an
    // "armed ended" for the same file.
    for media_up in [true, false] {
        let mut rec = recorder(&[("1001", RecordingMode::Always)]);
        let ringing = ChannelEvent {
            early_media: media_up,
            ..of_1001(EventKind::Progress, "leg", 1_000_000)
        };
        let arm = only_command(&rec.on_event(&ringing)).clone();
        assert!(rec.on_command_result(&arm, CommandOutcome::Ok).is_empty());
        let adopted = rec.adopt_channel(
            &of_1001(EventKind::Answer, "leg", 5_000_000),
            false,
            std::slice::from_ref(&arm.path),
            &[],
        );
        assert!(commands(&adopted).is_empty(), "{adopted:?}");
        assert_eq!(creates(&adopted).len(), 1, "{adopted:?}");
        let mut ended = rec.on_event(&record_event(EventKind::RecordStop, "leg", &arm, 9_000_000));
        ended.extend(rec.on_event(&of_1001(EventKind::HangupComplete, "leg", 9_100_000)));
        let ops = store_ops(&ended);
        let ingests = ops
            .iter()
            .filter(|op| matches!(op, StoreOp::Ingest { id, .. } if *id == arm.recording))
            .count();
        let armed_ends = ops
            .iter()
            .filter(|op| matches!(op, StoreOp::ArmedEnded { .. } | StoreOp::Disarmed { .. }))
            .count();
        assert_eq!(
            (ingests, armed_ends),
            (1, 0),
            "media up {media_up}: {ended:?}"
        );
    }
}

#[test]
fn a_recording_taken_back_at_answer_that_the_switch_starts_anyway_is_stopped_and_removed() {
    // The CI failure of 2026-12-04: an arming taken back as its leg answered. The unset and
    // the stop race the channel's own thread, which runs `api_on_answer` a moment after
    // firing CHANNEL_ANSWER: the stop was refused ("Cannot stop record session!"), then the
    // switch started the recording, and its file was written by nobody's recording.
    let mut rec = recorder(&[("1001", RecordingMode::Always)]);
    let arm = only_command(&rec.on_event(&ringing_without_media("leg", 1_000_000))).clone();
    set_1001_never(&mut rec);
    let answered = rec.on_event(&of_1001(EventKind::Answer, "leg", 2_000_000));
    assert_eq!(
        commands(&answered),
        vec![
            "uuid_setvar leg api_on_answer_callrec".to_owned(),
            format!("uuid_record leg stop {}", arm.path)
        ]
    );
    // The switch ran the variable after all.
    let started = rec.on_event(&record_event(
        EventKind::RecordStart,
        "leg",
        &arm,
        2_020_000,
    ));
    assert_eq!(
        commands(&started),
        vec![format!("uuid_record leg stop {}", arm.path)],
        "stopped again"
    );
    assert!(creates(&started).is_empty());
    let stopped = rec.on_event(&record_event(EventKind::RecordStop, "leg", &arm, 2_100_000));
    assert!(
        matches!(store_ops(&stopped).as_slice(), [StoreOp::Disarmed { id, .. }] if *id == arm.recording),
        "its file removed: {stopped:?}"
    );
    assert!(creates(&stopped).is_empty());
}

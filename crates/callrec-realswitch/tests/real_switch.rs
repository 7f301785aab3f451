//! callrec against a real FreeSWITCH (issue 9): calls placed on the switch, recordings checked
//! through the API and in the WAV files the switch wrote.
//!
//! Run by `scripts/real-switch.sh` (which builds or reuses the switch and builds `callrec`);
//! only built with `--features real-switch`. Each test has its own switch (own configuration,
//! ports and directories) and its own callrec installation.
//!
//! Calls are loopback originates: `loopback/9999/default` answers and plays a 440 Hz tone
//! (1 s on, 0.5 s off) on the B leg while the A leg parks, with `callrec_user=1001` on the
//! call so that it is 1001's, as an authenticated phone's would be. The switch hangs each
//! call up a set time after answer (`sched_hangup`).
//!
//! `sim_vs_switch` (in `real_switch/`) needs no callrec: it runs scripted scenarios on the
//! switch and on the simulator and compares what the two sent.

use std::time::Duration;

use callrec_realswitch::{Callrec, Switch, free_addr, segment_kinds, segment_sources};

const SEC: Duration = Duration::from_secs(1);

/// How much shorter than `sched_hangup +N` a recording may be: the switch's scheduler runs
/// hangups on whole seconds (a `+3` call talks 2-3 s), a loopback A leg's recording ends about
/// 0.5 s before the call (mod_loopback queues frames; `../shared/freeswitch/README.md`: the
/// suite's calls are recorded on their B legs, but a test may record the A leg), and starting
/// it after answer costs a frame or two.
const SHORTFALL: f64 = 1.7;

/// How much longer than `sched_hangup +N` a recording may be: callrec records a loopback call
/// on its B leg, whose file ends with the B leg's own hangup, after the A leg's (60 calls of
/// `+5` to 9999: 4.04 to 5.24 s; on the A leg, 3.58 to 4.90 s).
const OVERRUN: f64 = 0.3;

fn switch_and_callrec(users: &[(&str, &str)]) -> (Switch, Callrec) {
    let switch = Switch::start(free_addr());
    let callrec = Callrec::start(&switch, users);
    (switch, callrec)
}

#[test]
fn an_always_call_is_recorded_once_from_answer_to_hangup() {
    let (switch, callrec) = switch_and_callrec(&[("1001", "always")]);
    let uuid = switch.call("callrec_user=1001", 5);
    let recs = callrec.stored(1, 30 * SEC);
    let rec = &recs[0];
    assert_eq!(rec["user"], "1001");
    // 9999 answers without ringing, and its B leg's answer reaches callrec after the A leg's:
    // the A leg waits and the B leg takes the recording (on the A leg it would end 0.5 s
    // early; before the wait, 60 calls of 60 were recorded there).
    assert_ne!(
        rec["call_uuid"].as_str(),
        Some(uuid.as_str()),
        "recorded on the loopback A leg: {rec:#}"
    );
    let wav = callrec.wav(rec["id"].as_str().unwrap());
    assert_eq!(wav.rate, 8000);
    assert!(
        (5.0 - SHORTFALL..=5.0 + OVERRUN).contains(&wav.seconds()),
        "a 5 s call gave {:.2} s of audio",
        wav.seconds()
    );
    let duration_ms = rec["duration_ms"].as_f64().unwrap_or(0.0);
    assert!(
        (duration_ms / 1000.0 - wav.seconds()).abs() < 0.05,
        "duration_ms {duration_ms} vs the file's {:.3} s",
        wav.seconds()
    );
    assert!(wav.peak(0.0, 1.0) > 1000, "the tone is in the recording");
    assert!(wav.silences(0.7).is_empty(), "{:?}", wav.silences(0.7));
    assert_eq!(
        segment_kinds(&callrec.recording(rec["id"].as_str().unwrap())),
        ["start", "stop"]
    );
    eprintln!("call {uuid}: recording {rec:#}");
    switch.wait_idle(10 * SEC);
}

/// A call with early media before its answer (a 183, as carriers' gateways send while the
/// far end rings) is armed while it rings (`RECORD_ANSWER_REQ`), so the switch starts writing
/// at the leg's first answered frame whatever the Event Socket's delay: here every event
/// reaches callrec 600 ms late (a relay holds them back), which a start sent on
/// CHANNEL_ANSWER would pay in lost audio. The 9995 extension gives 2 s of early media, then
/// answers, starts a `record_session` of its own and plays the tone, 1 s on and 0.5 s off:
/// the recording must hold the whole first second of tone.
#[test]
fn a_call_with_early_media_is_recorded_from_its_first_answered_frame_even_with_late_events() {
    let switch = Switch::start(free_addr());
    let relay = callrec_realswitch::proxy::Proxy::start_delayed(
        switch.esl_port,
        Duration::from_millis(600),
    );
    let mut callrec = Callrec::install(&switch, relay.port, &[("1001", "always")]);
    callrec.serve();
    switch.call_to("9995", "callrec_user=1001", 5);
    let (id, rec) = only_recording(&callrec, 40 * SEC);
    switch.wait_idle(20 * SEC);
    let wav = callrec.wav(&id);
    let (start, end) = wav.first_sound(0.1).expect("sound in the recording");
    let leg = rec["call_uuid"].as_str().expect("the recorded leg");
    let lost_ms = lost_against_reference(&switch, &callrec, leg, &id);
    eprintln!(
        "first tone burst {start:.3}-{end:.3} s of {:.3} s, {lost_ms:.0} ms shorter than \
         record_session; {rec:#}",
        wav.seconds()
    );
    assert!(
        start <= 0.06,
        "the tone starts {start:.3} s into the recording: audio lost at the start"
    );
    // The tone's first second ends at 1 s after the answer, or a frame later (playback starts
    // once `answer` returns): a recording started X late ends that burst 1 s - X in.
    assert!(
        end >= 0.98,
        "the first tone burst ends {end:.3} s into the recording, not 1 s: audio lost at the start"
    );
    assert_eq!(segment_kinds(&rec), ["start", "stop"]);
}

/// A call that rings without media (a 180) is not touched while it rings: arming a recording
/// then would pre-answer the leg (`uuid_record` asks for media first), and a calling phone
/// would hear silence instead of its ringback. The 9997 extension rings 2 s (`ring_ready`);
/// no leg may be in the EARLY state while it does, and the call is recorded from its answer.
#[test]
fn a_call_ringing_without_media_is_not_pre_answered_by_callrec() {
    let (switch, callrec) = switch_and_callrec(&[("1001", "always")]);
    // Longer than the site's 3 s minimum with room to spare (see SHORTFALL).
    let uuid = switch.call_to("9997", "callrec_user=1001", 6);
    std::thread::sleep(SEC);
    let listing = switch.api("show channels as json");
    assert!(listing.contains(&uuid), "the call is up: {listing}");
    assert!(
        !listing.contains("\"EARLY\""),
        "a leg was pre-answered while ringing: {listing}"
    );
    let (_, rec) = only_recording(&callrec, 40 * SEC);
    assert_eq!(segment_kinds(&rec), ["start", "stop"]);
}

/// The recording's id and its metadata with segments.
fn only_recording(callrec: &Callrec, within: Duration) -> (String, serde_json::Value) {
    let recs = callrec.stored(1, within);
    let id = recs[0]["id"].as_str().unwrap().to_owned();
    let rec = callrec.recording(&id);
    (id, rec)
}

#[test]
fn a_never_call_is_not_recorded_and_star_44_is_refused() {
    let (switch, callrec) = switch_and_callrec(&[("1001", "never")]);
    let uuid = switch.call("callrec_user=1001", 6);
    std::thread::sleep(2 * SEC);
    let call = callrec
        .calls()
        .into_iter()
        .find(|c| c["recording"] == "off")
        .unwrap_or_else(|| panic!("the call is listed, not recording: {:#?}", callrec.calls()));
    switch.api(&format!(
        "uuid_hold {}",
        call["call_uuid"].as_str().unwrap()
    ));
    switch.dial("*44", "1001");
    let reply = callrec.http(
        "POST",
        &format!(
            "/api/v1/calls/{}/recording/start",
            call["call_uuid"].as_str().unwrap()
        ),
    );
    assert_eq!(reply.status, 409, "API start in never: {}", reply.text());
    switch.wait_idle(20 * SEC);
    // The spool scan (every 5 s here) would have found any file by now.
    std::thread::sleep(6 * SEC);
    assert!(
        callrec.recordings().is_empty(),
        "{:#?}",
        callrec.recordings()
    );
    let spool: Vec<_> = std::fs::read_dir(callrec.spool()).unwrap().collect();
    assert!(spool.is_empty(), "nothing written to the spool: {spool:?}");
    assert!(
        callrec.log().contains("not_allowed"),
        "*44 answered not_allowed (call {uuid}):\n{}",
        callrec.log_tail(40)
    );
}

/// callrec with `users` on its own switch, recordings of any length kept (`min_seconds = 0`):
/// a call held on a loopback leg stays held (`uuid_hold off` fails there) and the switch writes
/// nothing while a leg is on hold, so the file is shorter than the default 3 s minimum.
fn switch_and_callrec_keeping_short(users: &[(&str, &str)]) -> (Switch, Callrec) {
    let switch = Switch::start(free_addr());
    let mut callrec =
        Callrec::install_with(&switch, switch.esl_port, users, "[site]\nmin_seconds = 0\n");
    callrec.serve();
    (switch, callrec)
}

#[test]
fn star_48_and_star_49_dialled_while_on_hold_pause_and_resume_the_held_call() {
    let (switch, callrec) = switch_and_callrec_keeping_short(&[("1001", "always_pausable")]);
    switch.call("callrec_user=1001", 12);
    let leg = callrec.call_in("recording", 10 * SEC)["call_uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    std::thread::sleep(2 * SEC);
    // The seed procedure: hold the call, dial the code as a second call.
    switch.api(&format!("uuid_hold {leg}"));
    let held = callrec_realswitch::eventually(5 * SEC, "the call to show on hold", || {
        callrec.calls().into_iter().find(|c| c["on_hold"] == true)
    });
    assert_eq!(held["call_uuid"], leg.as_str());
    switch.dial("*48", "1001");
    callrec.call_in("paused", 10 * SEC);
    std::thread::sleep(3 * SEC);
    switch.dial("*49", "1001");
    callrec.call_in("recording", 10 * SEC);
    let (id, rec) = only_recording(&callrec, 40 * SEC);
    assert_eq!(
        segment_kinds(&rec),
        ["start", "pause", "resume", "stop"],
        "{rec:#}"
    );
    assert_eq!(
        segment_sources(&rec)[1..3],
        ["handset", "handset"],
        "{rec:#}"
    );
    let paused_ms = rec["paused_ms"].as_u64().unwrap_or(0);
    assert!((2500..=6000).contains(&paused_ms), "paused_ms {paused_ms}");
    // Nothing is written while the leg is held: the audio is the talk before the hold.
    let wav = callrec.wav(&id);
    assert!(
        (1.0..=3.2).contains(&wav.seconds()),
        "{:.2} s of audio before the hold",
        wav.seconds()
    );
    assert!(wav.peak(0.0, 1.0) > 1000, "the tone before the hold");
}

#[test]
fn pause_and_resume_through_the_api_mask_the_call() {
    let (switch, callrec) = switch_and_callrec(&[("1001", "always_pausable")]);
    switch.call("callrec_user=1001", 10);
    let leg = callrec.call_in("recording", 10 * SEC)["call_uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    std::thread::sleep(2 * SEC);
    let paused = callrec.json("POST", &format!("/api/v1/calls/{leg}/recording/pause"));
    assert_eq!(paused["recording"], "paused", "{paused:#}");
    std::thread::sleep(3 * SEC);
    let resumed = callrec.json("POST", &format!("/api/v1/calls/{leg}/recording/resume"));
    assert_eq!(resumed["recording"], "recording", "{resumed:#}");
    let (id, rec) = only_recording(&callrec, 30 * SEC);
    assert_eq!(
        segment_kinds(&rec),
        ["start", "pause", "resume", "stop"],
        "{rec:#}"
    );
    assert_eq!(segment_sources(&rec)[1..3], ["api", "api"], "{rec:#}");
    let wav = callrec.wav(&id);
    assert!(
        (10.0 - SHORTFALL..=10.0 + OVERRUN).contains(&wav.seconds()),
        "masking keeps the timeline: {:.2} s",
        wav.seconds()
    );
    let masked = wav.silences(2.0);
    assert_eq!(masked.len(), 1, "one masked stretch: {masked:?}");
    assert!(
        (2.5..=3.8).contains(&(masked[0].1 - masked[0].0)),
        "{masked:?}"
    );
    assert!(
        wav.peak(masked[0].1, wav.seconds()) > 1000,
        "tone after the resume"
    );
}

#[test]
fn a_pause_longer_than_max_pause_seconds_resumes_by_itself_and_plays_the_prompt() {
    // Issue 13: a forgotten resume must not leave the rest of the call unrecorded.
    let switch = Switch::start(free_addr());
    let mut callrec = Callrec::install_with(
        &switch,
        switch.esl_port,
        &[("1001", "always_pausable")],
        "[site]\nmax_pause_seconds = 3\n",
    );
    callrec.serve();
    switch.call("callrec_user=1001", 12);
    let leg = callrec.call_in("recording", 10 * SEC)["call_uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    std::thread::sleep(2 * SEC);
    let paused = callrec.json("POST", &format!("/api/v1/calls/{leg}/recording/pause"));
    assert_eq!(paused["recording"], "paused", "{paused:#}");
    // Nobody resumes it: the policy does, 3 s (and at most a second's check) later.
    let resumed = callrec.call_in("recording", 6 * SEC);
    assert_eq!(resumed["call_uuid"], leg.as_str());
    let (id, rec) = only_recording(&callrec, 30 * SEC);
    assert_eq!(
        segment_kinds(&rec),
        ["start", "pause", "resume", "stop"],
        "{rec:#}"
    );
    assert_eq!(segment_sources(&rec)[1..3], ["api", "policy"], "{rec:#}");
    let log = callrec.log();
    assert!(
        log.contains(&format!("uuid_broadcast {leg} ")),
        "{}",
        callrec.log_tail(40)
    );
    assert!(log.contains("resumed.wav aleg"), "{}", callrec.log_tail(40));
    assert!(
        !log.contains("a prompt could not be played"),
        "{}",
        callrec.log_tail(40)
    );
    let wav = callrec.wav(&id);
    let masked = wav.silences(2.0);
    assert_eq!(masked.len(), 1, "one masked stretch: {masked:?}");
    assert!(
        (2.8..=4.2).contains(&(masked[0].1 - masked[0].0)),
        "masked for the allowed 3 s (plus the check's second): {masked:?}"
    );
    assert!(
        wav.peak(masked[0].1, wav.seconds()) > 1000,
        "audio after the resume"
    );
}

#[test]
fn pause_is_refused_in_always_mode_from_the_api_and_the_handset() {
    let (switch, callrec) = switch_and_callrec_keeping_short(&[("1001", "always")]);
    switch.call("callrec_user=1001", 8);
    let leg = callrec.call_in("recording", 10 * SEC)["call_uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    let reply = callrec.http("POST", &format!("/api/v1/calls/{leg}/recording/pause"));
    assert_eq!(reply.status, 409, "{}", reply.text());
    switch.api(&format!("uuid_hold {leg}"));
    switch.dial("*48", "1001");
    std::thread::sleep(2 * SEC);
    assert_eq!(callrec.calls()[0]["recording"], "recording");
    let (id, rec) = only_recording(&callrec, 30 * SEC);
    assert_eq!(segment_kinds(&rec), ["start", "stop"], "{rec:#}");
    assert!(callrec.wav(&id).silences(1.0).is_empty(), "nothing masked");
    assert!(
        callrec.log().contains("not_allowed"),
        "{}",
        callrec.log_tail(30)
    );
}

#[test]
fn on_demand_records_from_star_44_on_and_from_an_api_start() {
    let (switch, callrec) = switch_and_callrec(&[("1001", "on_demand")]);
    // Handset: hold, *44.
    switch.call("callrec_user=1001", 9);
    let leg = callrec.call_in("off", 10 * SEC)["call_uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    std::thread::sleep(3 * SEC);
    let far_end = switch.api(&format!("uuid_getvar {leg} other_loopback_leg_uuid"));
    switch.api(&format!("uuid_hold {}", far_end.trim()));
    switch.dial("*44", "1001");
    callrec.call_in("recording", 10 * SEC);
    let (id, rec) = only_recording(&callrec, 30 * SEC);
    assert_eq!(segment_sources(&rec)[0], "handset", "{rec:#}");
    let seconds = callrec.wav(&id).seconds();
    assert!(
        (3.5..=6.2).contains(&seconds),
        "recorded from *44 (about 3 s in) to the end of a 9 s call: {seconds:.2} s"
    );

    // API: start.
    switch.call("callrec_user=1001", 10);
    let leg = callrec.call_in("off", 10 * SEC)["call_uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    std::thread::sleep(2 * SEC);
    let started = callrec.json("POST", &format!("/api/v1/calls/{leg}/recording/start"));
    assert_eq!(started["recording"], "recording", "{started:#}");
    let recs = callrec.stored(2, 30 * SEC);
    let rec = callrec.recording(recs[0]["id"].as_str().unwrap());
    assert_eq!(segment_sources(&rec)[0], "api", "{rec:#}");
}

#[test]
fn both_parties_of_an_internal_call_are_recorded_once_each() {
    let (switch, callrec) = switch_and_callrec(&[("1001", "always"), ("1000", "always")]);
    // 1001 calls 1000; the 7<ext> test extension answers as 1000 and plays the tone.
    switch.call_to("71000", "callrec_user=1001", 5);
    let recs = callrec.stored(2, 30 * SEC);
    let mut users: Vec<_> = recs.iter().map(|r| r["user"].as_str().unwrap()).collect();
    users.sort();
    assert_eq!(users, ["1000", "1001"], "{recs:#?}");
    for r in &recs {
        let seconds = callrec.wav(r["id"].as_str().unwrap()).seconds();
        assert!(
            (5.0 - SHORTFALL..=5.0 + OVERRUN).contains(&seconds),
            "{seconds:.2} s: {r:#}"
        );
    }
}

#[test]
fn a_transferred_call_stays_one_recording() {
    let (switch, callrec) = switch_and_callrec(&[("1001", "always")]);
    let a = switch.call("callrec_user=1001", 8);
    callrec.call_in("recording", 10 * SEC);
    let b = switch.api(&format!("uuid_getvar {a} other_loopback_leg_uuid"));
    let b = b.trim();
    std::thread::sleep(2 * SEC);
    // The far end is transferred (blind) to another extension that answers with the tone.
    let reply = switch.api(&format!("uuid_transfer {b} 9999 XML default"));
    assert!(reply.starts_with("+OK"), "transfer: {reply}");
    let (id, rec) = only_recording(&callrec, 30 * SEC);
    assert_eq!(segment_kinds(&rec), ["start", "stop"], "{rec:#}");
    // The transfer costs the recording a little more audio (the loopback queue again).
    let seconds = callrec.wav(&id).seconds();
    assert!(
        (8.0 - SHORTFALL - 0.5..=8.0 + OVERRUN).contains(&seconds),
        "{seconds:.2} s"
    );
}

#[test]
fn callrec_killed_and_restarted_mid_call_stores_the_recording_once() {
    let (switch, mut callrec) = switch_and_callrec(&[("1001", "always")]);
    switch.call("callrec_user=1001", 10);
    callrec.call_in("recording", 10 * SEC);
    std::thread::sleep(2 * SEC);
    callrec.kill();
    std::thread::sleep(2 * SEC);
    callrec.serve();
    let (id, _) = only_recording(&callrec, 40 * SEC);
    // The switch recorded on while callrec was down: the whole call is there.
    let seconds = callrec.wav(&id).seconds();
    assert!(
        (10.0 - SHORTFALL..=10.0 + OVERRUN).contains(&seconds),
        "{seconds:.2} s"
    );
}

#[test]
fn callrec_killed_while_the_call_ends_stores_it_once_after_restart() {
    let (switch, mut callrec) = switch_and_callrec(&[("1001", "always")]);
    switch.call("callrec_user=1001", 6);
    callrec.call_in("recording", 10 * SEC);
    callrec.kill();
    // RECORD_STOP and the hangup happen while callrec is down.
    switch.wait_idle(20 * SEC);
    callrec.serve();
    let (id, _) = only_recording(&callrec, 40 * SEC);
    let seconds = callrec.wav(&id).seconds();
    assert!(
        (6.0 - SHORTFALL..=6.0 + OVERRUN).contains(&seconds),
        "{seconds:.2} s"
    );
}

/// The leg of the SIP phone registered as `user`, as `show channels` lists it.
fn phone_leg(switch: &Switch, user: &str) -> Option<serde_json::Value> {
    let listing: serde_json::Value =
        serde_json::from_str(switch.api("show channels as json").trim()).ok()?;
    listing["rows"]
        .as_array()?
        .iter()
        .find(|row| {
            row["name"]
                .as_str()
                .is_some_and(|n| n.starts_with(&format!("sofia/internal/{user}")))
        })
        .cloned()
}

/// Length of the `record_session` the 9995 or 9997 extension started on `leg`, against callrec's
/// recording `id` of the same leg, ms.
fn lost_against_reference(switch: &Switch, callrec: &Callrec, leg: &str, id: &str) -> f64 {
    let reference = callrec_realswitch::Wav::parse(
        &std::fs::read(switch.recordings_dir().join(format!("early-{leg}.wav")))
            .expect("the dialplan's record_session"),
    )
    .expect("a WAV");
    (reference.seconds() - callrec.wav(id).seconds()) * 1000.0
}

/// A registered SIP phone (baresip) calls an extension that rings 2 s without media (a 180):
/// the phone's leg stays RINGING (callrec does not pre-answer it, so the phone plays its own
/// ringback), and the call is recorded once from the answer, losing not one frame against
/// the `record_session` the dialplan starts after its answer, although every event reaches
/// callrec 600 ms late: the leg is armed while it rings (`api_on_answer_callrec`), so the
/// switch starts the recording in the channel's thread as it answers.
#[test]
fn a_sip_phone_calling_out_keeps_its_ringback_and_is_recorded_from_its_answer() {
    // Without `dialplan/callrec-arm.xml`, so that callrec's own arming is what is tested
    // (with it, the dialplan arms the phone's leg itself).
    let switch = Switch::start_with(free_addr(), false);
    let relay = callrec_realswitch::proxy::Proxy::start_delayed(
        switch.esl_port,
        Duration::from_millis(600),
    );
    let mut callrec = Callrec::install(&switch, relay.port, &[("1001", "always")]);
    callrec.serve();
    let phone = callrec_realswitch::phone::Phone::register(&switch, "1001", 4, true);
    phone.command_with("dial", "9997");
    let leg = callrec_realswitch::eventually(10 * SEC, "the phone's call to ring", || {
        phone_leg(&switch, "1001")
    });
    std::thread::sleep(SEC);
    let ringing = phone_leg(&switch, "1001").expect("still ringing");
    assert_eq!(
        ringing["callstate"], "RINGING",
        "the phone's leg while the far end rings: {ringing:#}"
    );
    std::thread::sleep(5 * SEC);
    phone.command("hangup");
    let (id, rec) = only_recording(&callrec, 40 * SEC);
    switch.wait_idle(20 * SEC);
    assert_eq!(rec["call_uuid"], leg["uuid"]);
    assert_eq!(rec["user"], "1001");
    assert_eq!(segment_kinds(&rec), ["start", "stop"]);
    let lost_ms = lost_against_reference(&switch, &callrec, leg["uuid"].as_str().unwrap(), &id);
    eprintln!("{lost_ms:.0} ms lost against record_session; {rec:#}");
    assert!(
        lost_ms < 20.0,
        "{lost_ms:.0} ms lost against record_session\n{}",
        callrec.log_tail(40)
    );
}

/// In-switch arming (`dialplan/callrec-arm.xml`, installed as its comment says): a call whose
/// leg answers the moment the dialplan reaches it (9996 with no ring: no time in which an
/// Event Socket client could arm it), with every event reaching callrec a whole second late.
/// The switch arms the leg from the users callrec published to its hash and starts the
/// recording in the channel's thread at answer: callrec's file (named by the switch after the
/// leg, indexed under callrec's row) holds as much audio as the dialplan's own
/// `record_session` on the same leg, and callrec sent no command to start it.
#[test]
fn a_call_answered_at_once_is_recorded_from_its_first_frame_by_the_switchs_own_arming() {
    let switch = Switch::start(free_addr());
    let relay = callrec_realswitch::proxy::Proxy::start_delayed(
        switch.esl_port,
        Duration::from_millis(1000),
    );
    let mut callrec = Callrec::install(&switch, relay.port, &[("1001", "always")]);
    // Plain events here (the rest of the suite runs the default, JSON): the switch sends a
    // command that wrote nothing — `hash_dump` of the realm callrec publishes into, empty at
    // first — as a BACKGROUND_JOB with no body at all, which must read as an empty realm.
    callrec.esl_option("event_format = \"plain\"");
    callrec.serve();
    callrec_realswitch::eventually(
        20 * SEC,
        "callrec to publish 1001 to the switch's hash",
        || (switch.api("hash select/callrec/user_1001").trim() == "3").then_some(()),
    );
    let spool = switch.api("hash select/callrec/spool");
    assert_eq!(
        spool.trim(),
        callrec.spool().display().to_string(),
        "the spool path, slashes and all"
    );
    switch.call_to(
        "9996",
        "callrec_user=1001,callrec_bench_call=1,callrec_bench_ring_ms=0",
        6,
    );
    let (id, rec) = only_recording(&callrec, 40 * SEC);
    switch.wait_idle(20 * SEC);
    let reference = callrec_realswitch::Wav::parse(
        &std::fs::read(switch.recordings_dir().join("ref-1.wav"))
            .expect("the dialplan's record_session"),
    )
    .expect("a WAV");
    let lost_ms = (reference.seconds() - callrec.wav(&id).seconds()) * 1000.0;
    eprintln!("{lost_ms:.0} ms lost against record_session; {rec:#}");
    assert!(
        lost_ms < 20.0,
        "{lost_ms:.0} ms lost against record_session\n{}",
        callrec.log_tail(40)
    );
    assert_eq!(
        rec["call_uuid"].as_str(),
        Some(id.as_str()),
        "the file the switch armed (<spool>/<leg uuid>.wav) is the recording"
    );
    assert_eq!(segment_kinds(&rec), ["start", "stop"]);
    let log = callrec.log();
    assert!(
        !log.contains("starting it now"),
        "callrec had to start it itself: {}",
        callrec.log_tail(40)
    );
}

/// A registered SIP phone calls an extension that answers after 2 s of early media (a 183,
/// as a carrier's gateway sends while the far end rings): callrec arms the recording on the
/// phone's leg while it rings, and its file loses not one 20 ms frame against the
/// `record_session` the dialplan starts at answer on the same leg.
#[test]
fn a_sip_call_with_early_media_loses_not_one_frame_against_record_session() {
    let (switch, callrec) = switch_and_callrec(&[("1001", "always")]);
    let phone = callrec_realswitch::phone::Phone::register(&switch, "1001", 4, true);
    phone.command_with("dial", "9995");
    std::thread::sleep(7 * SEC);
    phone.command("hangup");
    let (id, rec) = only_recording(&callrec, 40 * SEC);
    switch.wait_idle(20 * SEC);
    let leg = rec["call_uuid"].as_str().expect("the recorded leg");
    let lost_ms = lost_against_reference(&switch, &callrec, leg, &id);
    eprintln!("{lost_ms:.0} ms lost against record_session; {rec:#}");
    assert!(
        lost_ms < 20.0,
        "{lost_ms:.0} ms lost against record_session\n{}",
        phone.log()
    );
    assert_eq!(segment_kinds(&rec), ["start", "stop"]);
}

/// The files the switch's media bugs write into `spool`, on any channel.
fn bug_targets_in(switch: &Switch, spool: &std::path::Path) -> Vec<String> {
    let listing: serde_json::Value =
        serde_json::from_str(switch.api("show channels as json").trim()).unwrap_or_default();
    let uuids: Vec<String> = listing["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|row| row["uuid"].as_str().map(str::to_owned))
        .collect();
    let spool = spool.to_string_lossy().into_owned();
    uuids
        .iter()
        .flat_map(|uuid| {
            let bugs = switch.api(&format!("uuid_buglist {uuid}"));
            bugs.split("<target>")
                .skip(1)
                .filter_map(|rest| {
                    rest.split_once("</target>")
                        .map(|(t, _)| t.trim().to_owned())
                })
                .collect::<Vec<_>>()
        })
        .filter(|target| target.starts_with(&spool))
        .collect()
}

/// The 9999/9996 tone starts within the recording's first 60 ms: no audio lost at the start.
#[track_caller]
fn assert_tone_from_the_start(wav: &callrec_realswitch::Wav) {
    let (start, _) = wav.first_sound(0.1).expect("sound in the recording");
    assert!(
        start <= 0.06,
        "the tone starts {start:.3} s into the recording: audio lost at the start"
    );
}

/// Once the switch has no call left, callrec's spool holds no file: every recording went to
/// the store, and no second one was left behind.
#[track_caller]
fn assert_spool_empty_once_idle(switch: &Switch, callrec: &Callrec) {
    switch.wait_idle(20 * SEC);
    let left: Vec<_> = std::fs::read_dir(callrec.spool())
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "nothing left in the spool: {left:?}");
}

/// callrec killed while a call rings, after it armed the recording (`RECORD_ANSWER_REQ`),
/// and started again before the answer: the new process knows the armed recording from the
/// switch's media bugs, so the call is recorded once, by that recording, from its first
/// answered frame, and no second file is left in the spool.
#[test]
fn callrec_killed_while_a_call_rings_records_it_once_from_the_answer() {
    let (switch, mut callrec) = switch_and_callrec(&[("1001", "always")]);
    let call = callrec_realswitch::switch::new_uuid();
    let armed = std::thread::scope(|scope| {
        scope.spawn(|| {
            switch.call_to(
                "9996",
                &format!("callrec_user=1001,callrec_bench_ring_ms=6000,callrec_bench_call={call}"),
                5,
            )
        });
        let armed =
            callrec_realswitch::eventually(10 * SEC, "the ringing call to be armed", || {
                bug_targets_in(&switch, &callrec.spool()).into_iter().next()
            });
        callrec.kill();
        std::thread::sleep(SEC / 2);
        callrec.serve();
        armed
    });
    let (id, rec) = only_recording(&callrec, 40 * SEC);
    assert!(
        armed.contains(&id),
        "the recording stored ({id}) is the one armed before the kill ({armed})"
    );
    let wav = callrec.wav(&id);
    assert_tone_from_the_start(&wav);
    assert_eq!(segment_kinds(&rec), ["start", "stop"]);
    assert_spool_empty_once_idle(&switch, &callrec);
    assert_eq!(
        callrec.all_recordings("state=discarded").len(),
        0,
        "no second recording of the call"
    );
}

/// callrec cannot hear an answer it was not connected for: at its first start (nothing
/// published to the switch yet, so the dialplan arms nothing) it reconciles with `show
/// channels`, adopts the call and starts recording it then, so the talk before is lost. Once
/// callrec has published its users, the switch arms such calls itself (next test).
#[test]
fn a_call_answered_while_callrec_is_down_is_recorded_from_when_callrec_starts() {
    let switch = Switch::start(free_addr());
    let mut callrec = Callrec::install(&switch, switch.esl_port, &[("1001", "always")]);
    switch.call("callrec_user=1001", 10);
    std::thread::sleep(3 * SEC);
    callrec.serve();
    let (id, _) = only_recording(&callrec, 40 * SEC);
    let seconds = callrec.wav(&id).seconds();
    assert!(
        (10.0 - 3.0 - SHORTFALL - 1.0..=10.0 - 3.0 + 0.5).contains(&seconds),
        "recorded from when callrec came up, about 3 s into a 10 s call: {seconds:.2} s"
    );
}

/// callrec down (killed) after it has published its users to the switch: a call answered
/// meanwhile is armed by the switch itself (`dialplan/callrec-arm.xml`, the hash outlives
/// callrec), so when callrec comes back 3 s into the call it takes in a recording that holds
/// the call from its first frame, not from its own start, and stores it once.
#[test]
fn a_call_answered_while_callrec_is_down_after_it_published_is_recorded_from_its_first_frame() {
    let (switch, mut callrec) = switch_and_callrec(&[("1001", "always")]);
    callrec_realswitch::eventually(
        20 * SEC,
        "callrec to publish 1001 to the switch's hash",
        || (switch.api("hash select/callrec/user_1001").trim() == "3").then_some(()),
    );
    callrec.kill();
    let a_leg = switch.call("callrec_user=1001", 10);
    std::thread::sleep(3 * SEC);
    callrec.serve();
    let (id, rec) = only_recording(&callrec, 40 * SEC);
    assert_ne!(rec["call_uuid"].as_str(), Some(a_leg.as_str()), "{rec:#}");
    assert_eq!(
        rec["call_uuid"].as_str(),
        Some(id.as_str()),
        "the recording is the one the switch armed on the B leg (named after it): {rec:#}"
    );
    let wav = callrec.wav(&id);
    assert_tone_from_the_start(&wav);
    assert!(
        (10.0 - SHORTFALL..=10.0 + OVERRUN).contains(&wav.seconds()),
        "the whole call, not from when callrec came back: {:.2} s",
        wav.seconds()
    );
    assert_spool_empty_once_idle(&switch, &callrec);
}

fn eventually_finished(callrec: &Callrec, n: usize, within: Duration) -> Vec<serde_json::Value> {
    callrec_realswitch::eventually(within, "recordings to finish", || {
        let all = callrec.recordings();
        (all.iter().filter(|r| r["state"] != "recording").count() >= n).then_some(all)
    })
}

#[test]
fn the_switch_shut_down_mid_call_leaves_the_recording_stored_and_callrec_reconnects() {
    let (mut switch, mut callrec) = switch_and_callrec(&[("1001", "always")]);
    switch.call("callrec_user=1001", 60);
    callrec.call_in("recording", 10 * SEC);
    std::thread::sleep(4 * SEC);
    // `fsctl shutdown` hangs the calls up, sends RECORD_STOP for each, then a disconnect notice.
    switch.shutdown();
    let (id, _) = only_recording(&callrec, 40 * SEC);
    let seconds = callrec.wav(&id).seconds();
    // From answer to the shutdown: the wait for the recording, 4 s, the shutdown itself.
    assert!((3.0..=8.0).contains(&seconds), "{seconds:.2} s");
    // callrec keeps retrying; the restarted switch records again.
    switch.restart();
    callrec.wait_ready(30 * SEC);
    switch.call("callrec_user=1001", 6);
    callrec.stored(2, 40 * SEC);
}

/// Kills the switch 4 s into a recorded call; returns the switch (restarted), callrec (ready
/// again) and the one recording row the call left, once it is no longer `recording`.
fn kill_the_switch_mid_call() -> (Switch, Callrec, serde_json::Value) {
    let (mut switch, mut callrec) = switch_and_callrec(&[("1001", "always")]);
    switch.call("callrec_user=1001", 60);
    callrec.call_in("recording", 10 * SEC);
    std::thread::sleep(4 * SEC);
    switch.kill();
    switch.restart();
    callrec.wait_ready(30 * SEC);
    let recs = eventually_finished(&callrec, 1, 60 * SEC);
    assert_eq!(recs.len(), 1, "one row for the call: {recs:#?}");
    let rec = recs[0].clone();
    (switch, callrec, rec)
}

#[test]
fn the_switch_killed_mid_call_leaves_one_row_and_callrec_records_the_next_call() {
    let (switch, callrec, rec) = kill_the_switch_mid_call();
    // The switch flushes its file in 64 KiB blocks (4.096 s at 8 kHz) and never finishes the
    // header: what is there is at most the talk before the kill.
    assert!(
        ["stored", "failed"].contains(&rec["state"].as_str().unwrap_or("")),
        "{rec:#}"
    );
    assert!(rec["duration_ms"].as_u64().unwrap_or(0) <= 6000, "{rec:#}");
    // (Over the 3 s minimum even with the loopback shortfall: shorter is discarded.)
    switch.call("callrec_user=1001", 8);
    let recs = eventually_finished(&callrec, 2, 40 * SEC);
    assert_eq!(recs.len(), 2, "{recs:#?}");
    let next = &recs[0];
    assert_eq!(next["state"], "stored", "{next:#}");
    let seconds = callrec.wav(next["id"].as_str().unwrap()).seconds();
    assert!(
        (8.0 - SHORTFALL..=8.0 + OVERRUN).contains(&seconds),
        "{seconds:.2} s"
    );
}

/// Found on the real switch: a WAV cut short by a switch crash keeps the header the switch
/// wrote at the start (RIFF size 8, `data` size 0) before the audio it flushed, so a player
/// reading the header sees no audio. callrec once stored it as a complete recording whose
/// `duration_ms` counted the bytes after the header; SPEC §3.3 wants such a file marked
/// `failed` or repaired. The ingest now repairs it (the sizes rewritten from the file's
/// length): the served file's header and the index agree.
#[test]
fn a_recording_cut_by_a_switch_crash_is_not_served_as_complete() {
    let (_switch, callrec, rec) = kill_the_switch_mid_call();
    eprintln!(
        "after the kill: {} {} ms ({})",
        rec["state"], rec["duration_ms"], rec["state_reason"]
    );
    if rec["state"] == "stored" {
        let wav = callrec.wav(rec["id"].as_str().unwrap());
        let indexed = rec["duration_ms"].as_f64().unwrap_or(0.0) / 1000.0;
        assert!(
            (wav.seconds() - indexed).abs() < 0.1,
            "the index says {indexed:.2} s, the served file's header {:.2} s: {rec:#}",
            wav.seconds()
        );
        // And it says what happened to the file.
        let reason = rec["state_reason"].as_str().unwrap_or("");
        assert!(reason.starts_with("header repaired"), "{rec:#}");
    } else {
        assert_eq!(rec["state"], "failed", "{rec:#}");
    }
}

#[test]
fn the_event_socket_dropped_mid_call_loses_no_recording() {
    let switch = Switch::start(free_addr());
    let proxy = callrec_realswitch::proxy::Proxy::start(switch.esl_port);
    let mut callrec = Callrec::install(&switch, proxy.port, &[("1001", "always")]);
    callrec.serve();
    // One call that outlives the cut, one that ends while callrec cannot hear the switch.
    // (Both well over the 3 s minimum: the switch deletes shorter files itself, and with
    // the RECORD_STOP missed callrec cannot tell such a file from a lost one: it says failed.)
    switch.call("callrec_user=1001", 16);
    switch.call("callrec_user=1001", 6);
    callrec_realswitch::eventually(10 * SEC, "two calls recording", || {
        (callrec
            .calls()
            .iter()
            .filter(|c| c["recording"] == "recording")
            .count()
            == 2)
            .then_some(())
    });
    proxy.cut();
    std::thread::sleep(8 * SEC);
    proxy.restore();
    callrec.wait_ready(30 * SEC);
    let recs = callrec.stored(2, 60 * SEC);
    let mut seconds: Vec<f64> = recs
        .iter()
        .map(|r| callrec.wav(r["id"].as_str().unwrap()).seconds())
        .collect();
    seconds.sort_by(f64::total_cmp);
    assert!(
        (6.0 - SHORTFALL..=6.0 + OVERRUN).contains(&seconds[0]),
        "{seconds:?}"
    );
    assert!(
        (16.0 - SHORTFALL..=16.0 + OVERRUN).contains(&seconds[1]),
        "{seconds:?}"
    );
}

#[test]
fn three_hundred_concurrent_calls_are_each_stored_exactly_once() {
    const CALLS: usize = 300;
    let (switch, callrec) = switch_and_callrec(&[("1001", "always")]);
    let mut esl = switch.esl();
    let mut uuids = Vec::new();
    for i in 0..CALLS {
        let uuid = callrec_realswitch::switch::new_uuid();
        let reply = esl
            .command(&format!(
                "bgapi originate {{origination_uuid={uuid},callrec_user=1001,\
                 execute_on_answer='sched_hangup +20 normal_clearing'}}loopback/9999/default &park"
            ))
            .expect("bgapi");
        assert!(reply.starts_with("+OK"), "{reply}");
        uuids.push(uuid);
        // 25 calls (50 channels) a second, under the switch's 300 sessions/s.
        if i % 25 == 24 {
            std::thread::sleep(SEC);
        }
    }
    let peak = callrec_realswitch::eventually(60 * SEC, "the calls to be up", || {
        let n = switch.channel_count();
        (n >= CALLS).then_some(n)
    });
    eprintln!("{peak} channels up");
    let recs = callrec.stored(CALLS, 240 * SEC);
    let mut calls: Vec<_> = recs
        .iter()
        .map(|r| r["call_uuid"].as_str().unwrap())
        .collect();
    calls.sort();
    calls.dedup();
    assert_eq!(calls.len(), CALLS, "one recording per call");
    // (Not sha256: calls of the same length playing the same tone can be byte-identical.)
    let mut files: Vec<_> = recs
        .iter()
        .map(|r| r["file_name"].as_str().unwrap())
        .collect();
    files.sort();
    files.dedup();
    assert_eq!(files.len(), CALLS, "every recording its own file");
    // Under this load `uuid_record` sent on CHANNEL_ANSWER starts seconds late (seen: 12.8 s
    // of a 20 s call); the bound only catches recordings that barely started.
    let mut ms: Vec<u64> = recs
        .iter()
        .map(|r| r["duration_ms"].as_u64().unwrap_or(0))
        .collect();
    ms.sort_unstable();
    eprintln!(
        "recorded ms of 20 s calls: min {} p50 {} max {}",
        ms[0],
        ms[CALLS / 2],
        ms[CALLS - 1]
    );
    assert!(ms[0] >= 10_000, "a 20 s call recorded {} ms", ms[0]);
}

// The simulator checked against this switch: a module of this suite so that
// `scripts/real-switch.sh` runs it with the rest.
#[path = "real_switch/sim_vs_switch.rs"]
mod sim_vs_switch;

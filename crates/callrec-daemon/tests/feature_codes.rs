//! The handset feature codes (*48 pause, *49 resume, *44 start) against the simulated
//! switch: the seed procedure (hold, dial, unhold), target selection, mode rules, prompts,
//! and what pausing does to the stored audio.

mod support;

use std::time::Duration;

use callrec_model::{PauseBehavior, RecordingMode, RecordingState, SegmentKind, SegmentSource};
use callrec_sim::{CallSpec, Side};
use callrec_store::{Access, FilePurpose};
use callrec_testkit::wait::eventually;
use support::{Bed, Setup};

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// The longest run of silent frames in a stored recording, in seconds.
async fn longest_silence(bed: &Bed, id: &callrec_model::RecordingId) -> f64 {
    let id = id.clone();
    let file = bed
        .store
        .write(move |s| s.open_file(&id, &Access::system("test"), FilePurpose::Archive))
        .await
        .unwrap();
    let wav = callrec_sim::wav::WavInfo::read(&file.path).unwrap();
    // A frame is silent when every channel is (the caller's own leg records in stereo).
    let (mut best, mut run) = (0usize, 0usize);
    for frame in wav.samples.chunks(usize::from(wav.channels.max(1))) {
        run = if frame.iter().all(|s| *s == 0) {
            run + 1
        } else {
            0
        };
        best = best.max(run);
    }
    best as f64 / f64::from(wav.sample_rate)
}

/// The seed procedure on one call: answered at 1 s; on hold 3–5 s, *48 at 3.5 s; on hold
/// 9–11 s, *49 at 9.5 s; hung up at 15 s. Media flows (and is written) only off hold.
async fn pause_and_resume_from_the_handset(
    pause: PauseBehavior,
) -> (u64, u64, f64, Vec<(SegmentKind, SegmentSource, String)>) {
    let bed =
        Bed::start(Setup::users(&[("1001", RecordingMode::AlwaysPausable)]).pause(pause)).await;
    bed.sim.place_call(
        CallSpec::outbound("1001", "02079461111")
            .ring(secs(1.0))
            .hold(Side::Caller, secs(2.0), secs(2.0))
            .hold(Side::Caller, secs(8.0), secs(2.0))
            .talk(secs(14.0), Side::Caller),
    );
    bed.advance(secs(1.0));
    bed.recording_on_switch(1).await;
    bed.advance(secs(2.5));
    on_hold(&bed, 1).await;
    let (_, prompt) = bed.dial("1001", "*48").await;
    assert_eq!(prompt, "paused.wav");
    bed.advance(secs(6.0));
    on_hold(&bed, 1).await;
    let (_, prompt) = bed.dial("1001", "*49").await;
    assert_eq!(prompt, "resumed.wav");
    bed.advance(secs(5.5));
    let stored = bed.wait_recordings(RecordingState::Stored, 1).await;
    let rec = &stored[0];
    let detail = bed.detail(&rec.id).await;
    let segments = detail
        .segments
        .iter()
        .map(|s| (s.kind, s.source, s.actor.clone()))
        .collect();
    let silence = longest_silence(&bed, &rec.id).await;
    let out = (rec.duration_ms.unwrap(), rec.paused_ms, silence, segments);
    bed.stop().await.unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_as_silence_keeps_the_timeline_and_skip_drops_the_paused_audio() {
    let (silence_ms, silence_paused, silence_gap, segments) =
        pause_and_resume_from_the_handset(PauseBehavior::Silence).await;
    let (skip_ms, skip_paused, skip_gap, skip_segments) =
        pause_and_resume_from_the_handset(PauseBehavior::Skip).await;

    let expected = [
        (
            SegmentKind::Start,
            SegmentSource::Policy,
            "callrec".to_owned(),
        ),
        (
            SegmentKind::Pause,
            SegmentSource::Handset,
            "1001@default".to_owned(),
        ),
        (
            SegmentKind::Resume,
            SegmentSource::Handset,
            "1001@default".to_owned(),
        ),
        (
            SegmentKind::Stop,
            SegmentSource::Policy,
            "callrec".to_owned(),
        ),
    ];
    assert_eq!(segments, expected);
    assert_eq!(skip_segments, expected);
    // Paused from 3.5 s to 9.5 s either way.
    assert!(
        (5_900..=6_100).contains(&silence_paused),
        "{silence_paused}"
    );
    assert!((5_900..=6_100).contains(&skip_paused), "{skip_paused}");
    // Masked: the file keeps the whole call's audio, the paused span silent (at least the
    // 4 s off hold; the switch writes nothing while no media flows).
    assert!(silence_gap >= 3.9, "silence run {silence_gap} s");
    assert!(silence_ms >= 9_400, "silence: {silence_ms} ms");
    // Skipped: nothing silent, and shorter by exactly the paused audio.
    assert!(skip_gap < 0.1, "silence run {skip_gap} s");
    let shorter = silence_ms as f64 - skip_ms as f64;
    assert!(
        (shorter - silence_gap * 1000.0).abs() <= 100.0,
        "skip ({skip_ms} ms) is shorter by {shorter} ms; the masked span was {silence_gap} s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_longer_than_max_pause_seconds_resumes_by_itself_with_the_prompt() {
    // PCI DSS: a forgotten *49 must not leave the rest of the call unrecorded. Answered at
    // 1 s; on hold 3–5 s, *48 at 3.5 s; the site allows 5 s of pause: at 8.5 s the policy
    // resumes and the user hears "resumed"; hung up at 15 s.
    let bed =
        Bed::start(Setup::users(&[("1001", RecordingMode::AlwaysPausable)]).max_pause(5)).await;
    bed.sim.place_call(
        CallSpec::outbound("1001", "02079461111")
            .ring(secs(1.0))
            .hold(Side::Caller, secs(2.0), secs(2.0))
            .talk(secs(14.0), Side::Caller),
    );
    bed.advance(secs(1.0));
    bed.recording_on_switch(1).await;
    bed.advance(secs(2.5));
    on_hold(&bed, 1).await;
    assert_eq!(bed.dial("1001", "*48").await.1, "paused.wav");
    // 4.9 s later, still paused (the daemon checks every second of wall time; the switch's
    // clock stands still meanwhile).
    bed.advance(secs(4.9));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(bed.handle.live_calls()[0].recording.as_str(), "paused");
    bed.advance(secs(0.1));
    eventually("the policy to resume the recording", || {
        (bed.handle.live_calls()[0].recording.as_str() == "recording").then_some(())
    })
    .await;
    let leg = bed.handle.live_calls()[0].call_uuid.clone();
    let heard = eventually("the resumed prompt played to the user's leg", || {
        bed.sim
            .channels()
            .into_iter()
            .find(|c| c.uuid == leg)
            .filter(|c| !c.broadcasts.is_empty())
            .map(|c| c.broadcasts)
    })
    .await;
    assert_eq!(heard.len(), 1, "{heard:?}");
    assert!(heard[0].ends_with("/resumed.wav"), "{heard:?}");
    assert!(std::path::Path::new(&heard[0]).is_absolute(), "{heard:?}");

    bed.advance(secs(6.5));
    let stored = bed.wait_recordings(RecordingState::Stored, 1).await;
    let detail = bed.detail(&stored[0].id).await;
    let segments: Vec<_> = detail
        .segments
        .iter()
        .map(|s| (s.kind, s.source, s.actor.as_str()))
        .collect();
    assert_eq!(
        segments,
        [
            (SegmentKind::Start, SegmentSource::Policy, "callrec"),
            (SegmentKind::Pause, SegmentSource::Handset, "1001@default"),
            (SegmentKind::Resume, SegmentSource::Policy, "callrec"),
            (SegmentKind::Stop, SegmentSource::Policy, "callrec"),
        ]
    );
    assert!(
        (4_900..=5_100).contains(&stored[0].paused_ms),
        "{}",
        stored[0].paused_ms
    );
    // Masked from the end of the hold (5 s; nothing is written on hold) to the resume.
    let silence = longest_silence(&bed, &stored[0].id).await;
    assert!((3.4..=3.6).contains(&silence), "silent for {silence} s");
    bed.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codes_on_a_single_unheld_call_act_on_that_call() {
    let bed = Bed::start(Setup::users(&[("1001", RecordingMode::AlwaysPausable)])).await;
    bed.sim
        .place_call(CallSpec::inbound("02079460000", "1001").ring(secs(1.0)));
    bed.advance(secs(1.0));
    bed.recording_on_switch(1).await;
    assert_eq!(bed.dial("1001", "*48").await.1, "paused.wav");
    assert_eq!(bed.handle.live_calls()[0].recording.as_str(), "paused");
    assert_eq!(bed.dial("1001", "*49").await.1, "resumed.wav");
    assert_eq!(bed.handle.live_calls()[0].recording.as_str(), "recording");
    bed.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_two_calls_and_none_held_the_user_hears_no_call() {
    let bed = Bed::start(Setup::users(&[("1001", RecordingMode::AlwaysPausable)])).await;
    bed.sim
        .place_call(CallSpec::inbound("02079460000", "1001").ring(secs(1.0)));
    bed.sim
        .place_call(CallSpec::outbound("1001", "02079461111").ring(secs(1.0)));
    bed.advance(secs(1.0));
    bed.recording_on_switch(2).await;
    assert_eq!(bed.dial("1001", "*48").await.1, "no_call.wav");
    assert!(
        bed.handle
            .live_calls()
            .iter()
            .all(|c| c.recording.as_str() == "recording")
    );
    bed.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_held_call_is_the_target_when_another_is_not_held() {
    let bed = Bed::start(Setup::users(&[("1001", RecordingMode::AlwaysPausable)])).await;
    let held = bed.sim.place_call(
        CallSpec::inbound("02079460000", "1001")
            .ring(secs(1.0))
            .hold(Side::Callee, secs(1.0), secs(30.0)),
    );
    bed.sim
        .place_call(CallSpec::outbound("1001", "02079461111").ring(secs(1.0)));
    bed.advance(secs(1.0));
    bed.recording_on_switch(2).await;
    bed.advance(secs(1.5));
    on_hold(&bed, 1).await;
    assert_eq!(bed.dial("1001", "*48").await.1, "paused.wav");
    let calls = bed.handle.live_calls();
    let paused: Vec<_> = calls
        .iter()
        .filter(|c| c.recording.as_str() == "paused")
        .map(|c| c.call_uuid.clone())
        .collect();
    assert_eq!(paused, vec![held.callee_uuid.clone()]);
    bed.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_and_resume_are_not_allowed_in_mode_always() {
    let bed = Bed::start(Setup::users(&[("1001", RecordingMode::Always)])).await;
    bed.sim
        .place_call(CallSpec::inbound("02079460000", "1001").ring(secs(1.0)));
    bed.advance(secs(1.0));
    bed.recording_on_switch(1).await;
    assert_eq!(bed.dial("1001", "*48").await.1, "not_allowed.wav");
    assert_eq!(bed.dial("1001", "*49").await.1, "not_allowed.wav");
    assert_eq!(bed.handle.live_calls()[0].recording.as_str(), "recording");
    bed.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_is_refused_in_mode_never() {
    let bed = Bed::start(Setup::users(&[("1001", RecordingMode::Never)])).await;
    bed.sim
        .place_call(CallSpec::inbound("02079460000", "1001").ring(secs(1.0)));
    bed.advance(secs(1.0));
    eventually_answered(&bed).await;
    assert_eq!(bed.dial("1001", "*44").await.1, "not_allowed.wav");
    assert_eq!(bed.handle.live_calls()[0].recording.as_str(), "off");
    bed.stop().await.unwrap();
}

/// The daemon has seen the hold (a phone is put on hold seconds before the code is dialled;
/// here the two happen in the same instant of switch time).
async fn on_hold(bed: &Bed, n: usize) {
    eventually("the hold to reach the daemon", || {
        (bed.handle.live_calls().iter().filter(|c| c.on_hold).count() == n).then_some(())
    })
    .await;
}

async fn eventually_answered(bed: &Bed) {
    eventually("the call to show as live", || {
        (!bed.handle.live_calls().is_empty()).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_on_demand_records_the_held_call_for_the_rest_of_it() {
    let bed = Bed::start(Setup::users(&[("1001", RecordingMode::OnDemand)])).await;
    bed.sim.place_call(
        CallSpec::outbound("1001", "02079461111")
            .ring(secs(1.0))
            .hold(Side::Caller, secs(2.0), secs(2.0))
            .talk(secs(10.0), Side::Caller),
    );
    bed.advance(secs(1.0));
    eventually_answered(&bed).await;
    assert_eq!(bed.handle.live_calls()[0].recording.as_str(), "off");
    bed.advance(secs(2.5));
    on_hold(&bed, 1).await;
    assert_eq!(bed.dial("1001", "*44").await.1, "started.wav");
    bed.recording_on_switch(1).await;
    // The call ends 10 s after the answer, at 11 s.
    bed.advance(secs(8.0));
    let stored = bed.wait_recordings(RecordingState::Stored, 1).await;
    let detail = bed.detail(&stored[0].id).await;
    assert_eq!(detail.segments[0].kind, SegmentKind::Start);
    assert_eq!(detail.segments[0].source, SegmentSource::Handset);
    assert_eq!(detail.segments[0].actor, "1001@default");
    bed.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_who_is_no_user_is_not_allowed() {
    let bed = Bed::start(Setup::users(&[("1001", RecordingMode::AlwaysPausable)])).await;
    assert_eq!(bed.dial("5555", "*48").await.1, "not_allowed.wav");
    bed.stop().await.unwrap();
}

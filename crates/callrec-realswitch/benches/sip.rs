//! SIP calls from a registered phone against a real FreeSWITCH (issue 9; SPEC §8: not one
//! 20 ms frame lost at start or end, p99, against the dialplan's `record_session` on the
//! same SIP call).
//!
//! `CALLREC_FREESWITCH_PREFIX=/opt/freeswitch-test cargo bench -p callrec-realswitch
//! --features real-switch --bench sip` (needs `baresip`, `CALLREC_BIN` or
//! `target/debug/callrec`). Settings by environment: `CALLS` (100), `RATE` calls a second (5),
//! `EXT` the extension dialled (9995; 9994 rings without media instead), `ARMING` (1: the
//! switch has `dialplan/callrec-arm.xml`, so it arms the phone's leg itself; 0: callrec arms
//! it over the Event Socket).
//!
//! One baresip phone registered as 1001 (mode `always`) dials the 9995 test extension
//! `CALLS` times: the switch pre-answers the phone's leg (early media, as a carrier's gateway
//! gives while the far end rings; with `EXT=9994` it only rings, a 180) for 2 s, answers, starts a `record_session` of its own on
//! that leg and hangs up 8 s later. callrec arms its recording on the same leg while it
//! rings. Per call, on the switch's clock (20 ms steps): answer → start for callrec and for
//! the `record_session` (the floor); audio lost by callrec's file at the start (its start
//! minus the reference's) and at the end (where each file's audio ends: start plus length);
//! and, with no clock involved, how much shorter callrec's file is than the reference. A
//! second `record_session` on the same leg against the first is the floor of the last three.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use callrec_realswitch::bench::{
    answer_to_start, cpu_secs, env_or, peak_rss_mib, read_wav, summary, watch,
};
use callrec_realswitch::phone::Phone;
use callrec_realswitch::{Callrec, Switch, free_addr};

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` and `cargo test --benches` ask for a listing.
    }
    let calls = env_or("CALLS", 100);
    let rate = env_or("RATE", 5).max(1);
    let ext = env_or("EXT", 9995);
    let ring = if ext == 9994 {
        "2 s ringing without media"
    } else {
        "2 s early media"
    };
    println!("sip: {calls} calls to {ext} from a registered phone at {rate}/s, {ring}, 8 s talk");

    let arming = env_or("ARMING", 1) != 0;
    let switch = Switch::start_with(free_addr(), arming);
    switch.api(&format!("fsctl sps {}", (rate * 4).max(300)));
    let seen = watch(&switch);
    let mut callrec = Callrec::install(&switch, switch.esl_port, &[("1001", "always")]);
    callrec.serve();
    println!("in-switch arming {}", if arming { "on" } else { "off" });
    if arming {
        callrec_realswitch::eventually(
            Duration::from_secs(30),
            "1001 published to the switch's hash",
            || (switch.api("hash select/callrec/user_1001").trim() == "3").then_some(()),
        );
    }
    let phone = Phone::register(&switch, "1001", calls as u32 + 10, true);

    let (spid, cpid) = (
        switch.pid().expect("switch pid"),
        callrec.pid().expect("callrec pid"),
    );
    let (s0, c0, t0) = (cpu_secs(spid), cpu_secs(cpid), Instant::now());
    let mut refused = Vec::new();
    for i in 0..calls {
        let due = t0 + Duration::from_secs_f64(i as f64 / rate as f64);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let answer = phone.command_with("dial", &ext.to_string());
        if !answer.contains("\"ok\":true") {
            refused.push(format!("dial {i}: {answer}"));
        }
    }
    println!(
        "  {calls} calls dialled in {:.1} s; the phone refused {} dials{}",
        t0.elapsed().as_secs_f64(),
        refused.len(),
        refused
            .iter()
            .map(|r| format!("\n    {r}"))
            .collect::<String>()
    );
    std::thread::sleep(Duration::from_secs(3));
    switch.wait_idle(Duration::from_secs(180));
    let (wall, switch_cpu, callrec_cpu) = (t0.elapsed(), cpu_secs(spid) - s0, cpu_secs(cpid) - c0);

    // Every call stored exactly once.
    let waited = Instant::now();
    let recs = loop {
        let mut recs = callrec.all_recordings("");
        recs.extend(callrec.all_recordings("state=discarded"));
        if recs.iter().filter(|r| r["state"] != "recording").count() >= calls as usize
            || waited.elapsed() > Duration::from_secs(120)
        {
            break recs;
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    let mut by_state: HashMap<String, usize> = HashMap::new();
    let mut by_leg: HashMap<String, usize> = HashMap::new();
    for r in &recs {
        *by_state
            .entry(r["state"].as_str().unwrap_or("?").to_owned())
            .or_default() += 1;
        *by_leg
            .entry(r["call_uuid"].as_str().unwrap_or("").to_owned())
            .or_default() += 1;
    }
    let refs: Vec<String> = std::fs::read_dir(switch.recordings_dir())
        .map(|d| {
            d.filter_map(Result::ok)
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    Some(
                        name.strip_prefix("early-")?
                            .strip_suffix(".wav")?
                            .to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let once = refs
        .iter()
        .filter(|leg| by_leg.get(*leg) == Some(&1))
        .count();
    println!(
        "calls answered (a record_session each): {}; recordings: {} rows, by state {by_state:?}; \
         answered calls recorded exactly once: {once}",
        refs.len(),
        recs.len()
    );

    let seen = seen.lock().expect("the watcher");
    let (mut latency, mut latency_ref, mut lost_start, mut lost_end) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut shorter, mut floor_shorter, mut floor_end) = (Vec::new(), Vec::new(), Vec::new());
    let mut unmeasured = 0;
    for rec in recs.iter().filter(|r| r["state"] == "stored") {
        let (Some(id), Some(leg)) = (rec["id"].as_str(), rec["call_uuid"].as_str()) else {
            continue;
        };
        let reference = switch.recordings_dir().join(format!("early-{leg}.wav"));
        let reference2 = switch.recordings_dir().join(format!("early2-{leg}.wav"));
        let ours_path = callrec.spool().join(format!("{id}.wav"));
        let (
            Some((ours_ms, _)),
            Some((ref_ms, _)),
            Some((ref2_ms, _)),
            Some(theirs),
            Some(theirs2),
        ) = (
            answer_to_start(&seen, &ours_path.display().to_string()),
            answer_to_start(&seen, &reference.display().to_string()),
            answer_to_start(&seen, &reference2.display().to_string()),
            read_wav(&reference),
            read_wav(&reference2),
        )
        else {
            unmeasured += 1;
            continue;
        };
        let ours = callrec.wav(id);
        latency.push(ours_ms);
        latency_ref.push(ref_ms);
        lost_start.push(ours_ms - ref_ms);
        let end = |start_ms: f64, seconds: f64| start_ms + seconds * 1000.0;
        lost_end.push(end(ref_ms, theirs.seconds()) - end(ours_ms, ours.seconds()));
        floor_end.push(end(ref_ms, theirs.seconds()) - end(ref2_ms, theirs2.seconds()));
        shorter.push((theirs.seconds() - ours.seconds()) * 1000.0);
        floor_shorter.push((theirs.seconds() - theirs2.seconds()) * 1000.0);
    }
    if unmeasured > 0 {
        println!("{unmeasured} stored calls without the switch's timestamps or a reference");
    }
    summary("answer -> start, callrec", latency);
    summary(
        "  floor: answer -> start, the dialplan's record_session",
        latency_ref,
    );
    summary(
        "audio lost at the start, callrec vs record_session",
        lost_start,
    );
    summary("audio lost at the end, callrec vs record_session", lost_end);
    summary("  floor: second record_session vs the first", floor_end);
    summary(
        "length: how much shorter callrec's file is than record_session's",
        shorter,
    );
    summary("  floor: the second record_session's", floor_shorter);
    println!(
        "wall {:.1} s, switch CPU {switch_cpu:.1} s, callrec CPU {callrec_cpu:.1} s; peak RSS: \
         switch {:.0} MiB, callrec {:.0} MiB",
        wall.as_secs_f64(),
        peak_rss_mib(spid),
        peak_rss_mib(cpid)
    );
    if std::env::var_os("KEEP").is_some() {
        let kept = switch.recordings_dir().join("../baresip.log");
        let _ = std::fs::copy(phone.dir().join("baresip.log"), &kept);
    }
    drop(phone);
    if std::env::var_os("KEEP").is_some() {
        panic!("KEEP is set: the switch's and callrec's directories are kept");
    }
}

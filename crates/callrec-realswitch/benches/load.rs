//! Load on a real FreeSWITCH (issue 9): many concurrent calls recorded by callrec, each
//! compared with the switch's own `record_session` of the same leg.
//!
//! `CALLREC_FREESWITCH_PREFIX=/opt/freeswitch-test cargo bench -p callrec-realswitch
//! --features real-switch --bench load` (`scripts/real-switch.sh` builds the switch; this
//! needs `CALLREC_BIN` or `target/debug/callrec`). Settings by environment: `CALLS` (600),
//! `RATE` calls a second (50), `TALK` seconds after answer (8), `RING_MS` before answer (1000),
//! `EXT` the extension (9996; 9993 answers at once, with no ringing and no early media, as
//! 9999 or an IVR does: `RING_MS` unused), `ARMING` (1: the switch has
//! `dialplan/callrec-arm.xml`, as the README installs it; 0: it has not, and callrec arms every
//! leg over the Event Socket).
//!
//! Every call goes to the 9996 test extension (or 9993): it rings `RING_MS`, answers, starts
//! two `record_session`s of its own on its leg (`ref`, `ref2`) and plays a tone. A watcher on the
//! Event Socket notes, on the switch's clock (20 ms steps), when each leg answered and when
//! each recording started (RECORD_START, which a recording armed before answer fires when it
//! is armed). Per call:
//!
//! - answer → start: when callrec's recording started after its leg's answer (0 when armed
//!   in time), beside the same for the dialplan's first `record_session` (the floor);
//! - audio lost at the start, against `record_session`: callrec's answer → start minus the
//!   reference's;
//! - audio lost at the end: where each file's audio ends, its start plus its length, the
//!   reference's minus callrec's (a loopback A leg's recording ends 0.5 s early);
//!
//! with the second `record_session` against the first as the floor of the last two. Two
//! phases on one switch and one callrec: the user in mode `never` (callrec hears every
//! event, records nothing: the floor for CPU and memory), then `always`. CPU seconds and
//! peak RSS of the switch and of callrec come from `/proc`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use callrec_realswitch::bench::{
    answer_to_start, cpu_secs, env_or, peak_rss_mib, read_wav, summary, watch,
};
use callrec_realswitch::{Callrec, Switch, Wav, free_addr};

const SEC: Duration = Duration::from_secs(1);

struct Phase {
    wall: Duration,
    switch_cpu: f64,
    callrec_cpu: f64,
}

/// Places `calls` calls at `rate` a second, numbered from `first`, over `LANES` Event
/// Socket connections (1; one `bgapi` round trip at a time each: a loaded switch answers
/// them slowly, so one lane may fall behind `rate`); waits until the switch has no channel
/// left.
fn place_calls(switch: &Switch, first: u64, calls: u64, rate: u64, talk: u64, ring_ms: u64) {
    let lanes = env_or("LANES", 1).max(1);
    let ext = env_or("EXT", 9996);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for lane in 0..lanes {
            scope.spawn(move || {
                let mut esl = switch.esl();
                for i in (lane..calls).step_by(lanes as usize) {
                    let n = first + i;
                    let due = started + Duration::from_secs_f64(i as f64 / rate as f64);
                    std::thread::sleep(due.saturating_duration_since(Instant::now()));
                    let reply = esl
                        .command(&format!(
                            "bgapi originate {{callrec_user=1001,callrec_bench_call={n},\
                             callrec_bench_ring_ms={ring_ms},origination_caller_id_number=9{n:06},\
                             execute_on_answer='sched_hangup +{talk} normal_clearing'}}loopback/{ext}/default &park"
                        ))
                        .expect("bgapi originate");
                    assert!(reply.starts_with("+OK"), "{reply}");
                }
            });
        }
    });
    println!(
        "  {calls} calls placed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    std::thread::sleep(Duration::from_millis(ring_ms) + SEC);
    switch.wait_idle(Duration::from_secs(talk + 120));
}

fn run_phase(
    switch: &Switch,
    callrec: &Callrec,
    first: u64,
    calls: u64,
    rate: u64,
    talk: u64,
    ring_ms: u64,
) -> Phase {
    let (spid, cpid) = (
        switch.pid().expect("switch pid"),
        callrec.pid().expect("callrec pid"),
    );
    let (s0, c0, t0) = (cpu_secs(spid), cpu_secs(cpid), Instant::now());
    place_calls(switch, first, calls, rate, talk, ring_ms);
    Phase {
        wall: t0.elapsed(),
        switch_cpu: cpu_secs(spid) - s0,
        callrec_cpu: cpu_secs(cpid) - c0,
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` and `cargo test --benches` ask for a listing.
    }
    let calls = env_or("CALLS", 600);
    let rate = env_or("RATE", 50);
    let talk = env_or("TALK", 8);
    let ring_ms = env_or("RING_MS", 1000);
    // ARMING=0: without `dialplan/callrec-arm.xml` (callrec arms every leg over the Event
    // Socket), for the comparison.
    let arming = env_or("ARMING", 1) != 0;
    let ext = env_or("EXT", 9996);
    println!(
        "load: {calls} calls to {ext} at {rate}/s, {}, {talk} s after answer, in-switch arming {}",
        if ext == 9993 {
            "answered at once".to_owned()
        } else {
            format!("ringing {ring_ms} ms")
        },
        if arming { "on" } else { "off" }
    );

    let switch = Switch::start_with(free_addr(), arming);
    switch.api(&format!("fsctl sps {}", (rate * 4).max(300)));
    let seen = watch(&switch);
    let mut callrec = Callrec::install(&switch, switch.esl_port, &[("1001", "never")]);
    callrec.serve();

    println!("phase 1: mode never (callrec hears every event, records nothing)");
    let idle = run_phase(&switch, &callrec, 0, calls, rate, talk, ring_ms);
    callrec.cli(&["user", "set-mode", "1001", "always"]);
    std::thread::sleep(3 * SEC); // the daemon reloads the directory within a second
    if arming {
        callrec_realswitch::eventually(30 * SEC, "1001 published to the switch's hash", || {
            (switch.api("hash select/callrec/user_1001").trim() == "3").then_some(())
        });
    }
    println!("phase 2: mode always");
    let busy = run_phase(&switch, &callrec, calls, calls, rate, talk, ring_ms);

    // Every call stored exactly once.
    let waited = Instant::now();
    let all = || {
        let mut recs = callrec.all_recordings("");
        recs.extend(callrec.all_recordings("state=discarded"));
        recs
    };
    let recs = loop {
        let recs = all();
        if recs.len() >= calls as usize || waited.elapsed() > 300 * SEC {
            break recs;
        }
        std::thread::sleep(2 * SEC);
    };
    let mut by_state: HashMap<String, usize> = HashMap::new();
    let mut by_call: HashMap<u64, Vec<&serde_json::Value>> = HashMap::new();
    for r in &recs {
        *by_state
            .entry(r["state"].as_str().unwrap_or("?").to_owned())
            .or_default() += 1;
        let from = r["from"]["raw"].as_str().unwrap_or("");
        let digits: String = from.chars().filter(char::is_ascii_digit).collect();
        if let Some(n) = digits
            .len()
            .checked_sub(6)
            .and_then(|i| digits[i..].parse::<u64>().ok())
        {
            by_call.entry(n).or_default().push(r);
        }
    }
    let once = (calls..2 * calls)
        .filter(|n| by_call.get(n).is_some_and(|v| v.len() == 1))
        .count();
    println!(
        "recordings: {} rows, by state {by_state:?}; calls recorded exactly once: {once} of {calls}",
        recs.len()
    );

    let refs = switch.recordings_dir();
    let spool = callrec.spool();
    let seen = seen.lock().unwrap();
    let (mut latency, mut latency_ref, mut lost_start, mut lost_end, mut floor_end) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut shorter, mut floor_shorter) = (Vec::new(), Vec::new());
    let (mut unmeasured, mut other_leg) = (0, 0);
    for n in calls..2 * calls {
        let Some([rec]) = by_call.get(&n).map(Vec::as_slice) else {
            continue;
        };
        if rec["state"] != "stored" {
            continue;
        }
        let id = rec["id"].as_str().unwrap();
        let (r1, r2) = (
            refs.join(format!("ref-{n}.wav")),
            refs.join(format!("ref2-{n}.wav")),
        );
        let ours_path = spool.join(format!("{id}.wav"));
        let (Some((ours_ms, ours_leg)), Some((ref_ms, ref_leg)), Some((ref2_ms, _))) = (
            answer_to_start(&seen, &ours_path.display().to_string()),
            answer_to_start(&seen, &r1.display().to_string()),
            answer_to_start(&seen, &r2.display().to_string()),
        ) else {
            unmeasured += 1;
            continue;
        };
        let (Some(a), Some(b)) = (read_wav(&r1), read_wav(&r2)) else {
            unmeasured += 1;
            continue;
        };
        let ours = callrec.wav(id);
        if ours_leg != ref_leg {
            other_leg += 1;
        }
        // Where each file's audio ends, from its leg's answer (ms).
        let end = |start_ms: f64, wav: &Wav| start_ms + wav.seconds() * 1000.0;
        latency.push(ours_ms);
        latency_ref.push(ref_ms);
        lost_start.push(ours_ms - ref_ms);
        lost_end.push(end(ref_ms, &a) - end(ours_ms, &ours));
        floor_end.push(end(ref_ms, &a) - end(ref2_ms, &b));
        // With no clock involved (the switch's timestamps step by 20 ms).
        shorter.push((a.seconds() - ours.seconds()) * 1000.0);
        floor_shorter.push((a.seconds() - b.seconds()) * 1000.0);
    }
    if unmeasured > 0 {
        println!(
            "{unmeasured} stored calls without the switch's timestamps or a reference (left out)"
        );
    }
    println!("{other_leg} recorded on the other loopback leg than the references");
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
    for (name, p) in [("never (floor)", &idle), ("always", &busy)] {
        println!(
            "phase {name}: wall {:.1} s, switch CPU {:.1} s, callrec CPU {:.1} s",
            p.wall.as_secs_f64(),
            p.switch_cpu,
            p.callrec_cpu
        );
    }
    println!(
        "peak RSS: switch {:.0} MiB, callrec {:.0} MiB",
        peak_rss_mib(switch.pid().unwrap_or(0)),
        peak_rss_mib(callrec.pid().unwrap_or(0))
    );
    if std::env::var_os("KEEP").is_some() {
        panic!("KEEP is set: the switch's and callrec's directories are kept");
    }
}

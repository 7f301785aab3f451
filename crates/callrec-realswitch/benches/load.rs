//! Load on a real FreeSWITCH (issue 9): many concurrent calls recorded by callrec, each
//! compared with the switch's own `record_session` of the same leg.
//!
//! `CALLREC_FREESWITCH_PREFIX=/opt/freeswitch-test cargo bench -p callrec-realswitch
//! --features real-switch --bench load` (`scripts/real-switch.sh` builds the switch; this
//! needs `CALLREC_BIN` or `target/debug/callrec`). Settings by environment: `CALLS` (600),
//! `RATE` calls a second (50), `TALK` seconds after answer (8), `RING_MS` before answer (1000).
//!
//! Every call goes to the 9996 test extension: it rings `RING_MS`, answers, starts two
//! `record_session`s of its own on the same leg (`ref`, `ref2`) and plays a tone, 1 s on and
//! 0.5 s off, from the answer. For each call the bench reads callrec's stored file through
//! the API and the two references from the switch's recordings directory, and measures where
//! each file's first tone burst ends and how much audio follows it:
//!
//! - audio lost at the start = (reference's first burst end) - (callrec's first burst end);
//! - audio lost at the end = (audio after the first burst in the reference) - (the same in
//!   callrec's file);
//!
//! with the floor beside each: the same differences between the two references, which the
//! switch starts one after the other on the same leg. Two phases on one switch and one
//! callrec: the user in mode `never` (callrec hears every event, records nothing: the floor
//! for CPU and memory), then `always`. CPU seconds and peak RSS of the switch and of callrec
//! come from `/proc`.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use callrec_realswitch::{Callrec, Switch, Wav, free_addr};

const SEC: Duration = Duration::from_secs(1);

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// CPU seconds (user + system) of a process so far.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // After the command name: state is field 0, utime 11, stime 12 (proc(5) fields 14, 15).
    (ticks(11) + ticks(12)) / 100.0
}

/// Peak resident memory of a process (VmHWM), MiB.
fn peak_rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn summary(name: &str, mut ms: Vec<f64>) {
    ms.sort_by(f64::total_cmp);
    println!(
        "{name}: n {} p50 {:.0} ms, p90 {:.0}, p99 {:.0}, max {:.0}",
        ms.len(),
        percentile(&ms, 0.5),
        percentile(&ms, 0.9),
        percentile(&ms, 0.99),
        ms.last().copied().unwrap_or(f64::NAN)
    );
}

/// Where the first tone burst ends, and how much audio follows it (seconds).
fn shape(wav: &Wav) -> Option<(f64, f64)> {
    let (_, end) = wav.first_sound(0.1)?;
    Some((end, wav.seconds() - end))
}

fn read_wav(path: &Path) -> Option<Wav> {
    Wav::parse(&std::fs::read(path).ok()?)
}

struct Phase {
    wall: Duration,
    switch_cpu: f64,
    callrec_cpu: f64,
}

/// Places `calls` calls at `rate` a second, numbered from `first`; waits until the switch
/// has no channel left.
fn place_calls(switch: &Switch, first: u64, calls: u64, rate: u64, talk: u64, ring_ms: u64) {
    let mut esl = switch.esl();
    let started = Instant::now();
    for i in 0..calls {
        let n = first + i;
        let due = started + Duration::from_secs_f64(i as f64 / rate as f64);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let reply = esl
            .command(&format!(
                "bgapi originate {{callrec_user=1001,callrec_bench_call={n},\
                 callrec_bench_ring_ms={ring_ms},origination_caller_id_number=9{n:06},\
                 execute_on_answer='sched_hangup +{talk} normal_clearing'}}loopback/9996/default &park"
            ))
            .expect("bgapi originate");
        assert!(reply.starts_with("+OK"), "{reply}");
    }
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
    println!("load: {calls} calls at {rate}/s, ringing {ring_ms} ms, {talk} s after answer");

    let switch = Switch::start(free_addr());
    switch.api(&format!("fsctl sps {}", (rate * 4).max(300)));
    let mut callrec = Callrec::install(&switch, switch.esl_port, &[("1001", "never")]);
    callrec.serve();

    println!("phase 1: mode never (callrec hears every event, records nothing)");
    let idle = run_phase(&switch, &callrec, 0, calls, rate, talk, ring_ms);
    callrec.cli(&["user", "set-mode", "1001", "always"]);
    std::thread::sleep(3 * SEC); // the daemon reloads the directory within a second
    println!("phase 2: mode always");
    let busy = run_phase(&switch, &callrec, calls, calls, rate, talk, ring_ms);

    // Every call stored exactly once.
    let waited = Instant::now();
    let recs = loop {
        if std::env::var_os("LOAD_LOG").is_some() && waited.elapsed() > 10 * SEC {
            break callrec.all_recordings();
        }
        let recs = callrec.all_recordings();
        let done = recs.iter().filter(|r| r["state"] != "recording").count();
        if done >= calls as usize || waited.elapsed() > 300 * SEC {
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
    if std::env::var_os("LOAD_LOG").is_some() {
        println!("{}", callrec.log_tail(80));
        let log = switch.log_tail(3000);
        for line in log
            .lines()
            .filter(|l| l.contains("uuid_record") || l.contains("Record") || l.contains("record"))
        {
            println!("{line}");
        }
    }
    if let Some(r) = recs.first() {
        println!(
            "  a row: from {} to {} direction {}",
            r["from"]["raw"], r["to"]["raw"], r["direction"]
        );
    }
    let once = (calls..2 * calls)
        .filter(|n| by_call.get(n).is_some_and(|v| v.len() == 1))
        .count();
    println!(
        "recordings: {} rows, by state {by_state:?}; calls recorded exactly once: {once} of {calls}",
        recs.len()
    );

    let refs = switch.recordings_dir();
    let (mut lost_start, mut lost_end, mut floor_start, mut floor_end) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut unreadable = 0;
    for n in calls..2 * calls {
        let Some([rec]) = by_call.get(&n).map(Vec::as_slice) else {
            continue;
        };
        if rec["state"] != "stored" {
            continue;
        }
        let ours = callrec.wav(rec["id"].as_str().unwrap());
        let (Some(r1), Some(r2)) = (
            read_wav(&refs.join(format!("ref-{n}.wav"))),
            read_wav(&refs.join(format!("ref2-{n}.wav"))),
        ) else {
            unreadable += 1;
            continue;
        };
        let (Some(o), Some(a), Some(b)) = (shape(&ours), shape(&r1), shape(&r2)) else {
            unreadable += 1;
            continue;
        };
        lost_start.push((a.0 - o.0) * 1000.0);
        lost_end.push((a.1 - o.1) * 1000.0);
        floor_start.push((a.0 - b.0) * 1000.0);
        floor_end.push((a.1 - b.1) * 1000.0);
    }
    if unreadable > 0 {
        println!("{unreadable} calls without a readable reference or tone (left out)");
    }
    summary(
        "audio lost at the start, callrec vs record_session",
        lost_start,
    );
    summary("  floor: second record_session vs the first", floor_start);
    summary("audio lost at the end, callrec vs record_session", lost_end);
    summary("  floor: second record_session vs the first", floor_end);
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
}

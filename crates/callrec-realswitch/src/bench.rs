//! Measuring helpers of the real-switch benchmarks (`benches/`): environment settings,
//! a process's CPU and peak memory from `/proc`, percentiles, and a watcher that notes on the
//! switch's own clock when each leg answered and each recording started.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::{Switch, Wav};

/// A numeric setting from the environment, or `default`.
pub fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// CPU seconds (user + system) of a process so far.
pub fn cpu_secs(pid: u32) -> f64 {
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
pub fn peak_rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The `p` quantile (0..=1) of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// Prints p50, p90, p99 and max of `ms` under `name`.
pub fn summary(name: &str, mut ms: Vec<f64>) {
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

/// What the switch said about the calls, on its own clock (µs).
#[derive(Default)]
pub struct Seen {
    /// Leg uuid → when it answered.
    pub answered: HashMap<String, i64>,
    /// Recording file path → (leg uuid, when RECORD_START came).
    pub started: HashMap<String, (String, i64)>,
}

/// Listens to CHANNEL_ANSWER and RECORD_START on its own Event Socket connection.
pub fn watch(switch: &Switch) -> Arc<Mutex<Seen>> {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut esl = switch.esl();
    esl.command("event plain CHANNEL_ANSWER RECORD_START")
        .expect("subscribe");
    let into = seen.clone();
    std::thread::spawn(move || {
        while let Ok(frame) = esl.read_frame() {
            let e = frame.event();
            let get = |k: &str| e.get(k).cloned().unwrap_or_default();
            let at: i64 = get("Event-Date-Timestamp").parse().unwrap_or(0);
            let mut seen = into.lock().unwrap();
            match get("Event-Name").as_str() {
                "CHANNEL_ANSWER" => {
                    seen.answered.insert(get("Unique-ID"), at);
                }
                "RECORD_START" => {
                    seen.started
                        .insert(get("Record-File-Path"), (get("Unique-ID"), at));
                }
                _ => {}
            }
        }
    });
    seen
}

/// When a recording started after its leg answered (ms, 0 if before), and its leg.
pub fn answer_to_start(seen: &Seen, path: &str) -> Option<(f64, String)> {
    let (leg, started) = seen.started.get(path)?;
    let answered = seen.answered.get(leg)?;
    Some(((started - answered).max(0) as f64 / 1000.0, leg.clone()))
}

/// A WAV file parsed, if it can be read.
pub fn read_wav(path: &Path) -> Option<Wav> {
    Wav::parse(&std::fs::read(path).ok()?)
}

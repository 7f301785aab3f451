//! What the store's benchmarks share: where they put their data, the generator of the
//! 1,000,000-recording index, and latency statistics.
//!
//! The generator fills the index with rows as the store would have them after a year of calls
//! (500 users, 50,000 outside numbers, a year of start times, notes on 1 %, holds on 0.5 %),
//! inserted in bulk with plain SQL: going through `Store::create_recording` and ingest one at
//! a time would take the better part of an hour and measure nothing the benchmarks are about.
//! The index is built once and reused (it is kept under the bench data dir with a marker).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use callrec_numbers::{NumberPlan, normalise};
use callrec_store::{NewUser, Store};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Where benchmark data goes: `$CALLREC_BENCH_DIR`, else `callrec-bench-data` next to the
/// benchmark binary's target directory.
pub fn bench_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CALLREC_BENCH_DIR") {
        return PathBuf::from(d);
    }
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<bench> -> target/callrec-bench-data
    let target = exe
        .parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(std::env::temp_dir);
    target.join("callrec-bench-data")
}

pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

pub const USERS: usize = 500;
pub const NUMBERS: usize = 50_000;
/// The generated index's recordings start over the year before this instant.
pub const GENERATED_NOW_MS: i64 = 1_735_689_600_000; // 2025-01-01T00:00:00Z
pub const YEAR_MS: i64 = 365 * 24 * 3600 * 1000;

/// The outside numbers of the generated index, national form (`0…`) and normalised.
pub fn number_pool() -> Vec<(String, String)> {
    let mut rng = StdRng::seed_from_u64(7);
    let plan = NumberPlan::default();
    (0..NUMBERS)
        .map(|_| {
            let area = rng.random_range(1..10u32);
            let rest = rng.random_range(100_000_000..1_000_000_000u64);
            let raw = format!("0{area}{rest}");
            let norm = normalise(&raw, &plan);
            (raw, norm)
        })
        .collect()
}

/// Build (or reuse) an index of `rows` recordings under `dir`; returns its data dir.
pub fn generated_index(rows: usize) -> PathBuf {
    let dir = bench_dir().join(format!("search-{rows}"));
    let marker = dir.join("complete");
    if marker.exists() {
        return dir;
    }
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!(
        "generating an index of {rows} recordings in {} (once)…",
        dir.display()
    );
    let t = Instant::now();
    generate(&dir, rows);
    std::fs::write(&marker, rows.to_string()).expect("marker");
    eprintln!("generated in {:.1} s", t.elapsed().as_secs_f64());
    dir
}

fn generate(dir: &Path, rows: usize) {
    {
        let mut store = Store::open(dir).expect("open store");
        for i in 0..USERS {
            store
                .add_user(
                    &NewUser::new("default", (1000 + i).to_string()),
                    "generator",
                )
                .expect("add user");
        }
    }
    let pool = number_pool();
    let mut conn = rusqlite::Connection::open(dir.join("index.db")).expect("open index");
    conn.execute_batch(
        "PRAGMA synchronous = OFF; PRAGMA cache_size = -1000000; PRAGMA temp_store = MEMORY;",
    )
    .expect("pragmas");
    let user_ids: Vec<i64> = conn
        .prepare("SELECT id FROM users ORDER BY id")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .expect("users");
    let mut rng = StdRng::seed_from_u64(42);
    // Rows go in in time order, as a live store creates them, so neighbouring recordings in
    // time share table pages (what retention and date ranges see in production).
    let mut starts: Vec<i64> = (0..rows)
        .map(|_| GENERATED_NOW_MS - rng.random_range(0..YEAR_MS))
        .collect();
    starts.sort_unstable();
    let chunk = 100_000;
    let mut done = 0;
    while done < rows {
        let tx = conn.transaction().expect("tx");
        {
            let mut insert = tx
                .prepare(
                    "INSERT INTO recordings (id, site_id, user_id, call_uuid, direction, from_raw,
                         from_norm, to_raw, to_norm, started_at, ended_at, duration_ms, paused_ms,
                         size_bytes, sha256, format, spool_path, store_path, file_name, state,
                         expires_at, hold, note_count)
                     VALUES (?1, 1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 0, ?12, ?13, 'wav',
                         ?14, ?15, ?16, 'stored', ?17, ?18, ?19)",
                )
                .expect("prepare");
            let mut note = tx
                .prepare("INSERT INTO notes (recording_seq, author, at, text) VALUES (?1, 'gen', ?2, ?3)")
                .expect("prepare note");
            for i in 0..chunk.min(rows - done) {
                let started = starts[done + i];
                let id = uuid::Uuid::now_v7().hyphenated().to_string();
                let user_idx = rng.random_range(0..USERS);
                let ext = (1000 + user_idx).to_string();
                let (raw, norm) = &pool[rng.random_range(0..NUMBERS)];
                let (direction, from_raw, from_norm, to_raw, to_norm) =
                    match rng.random_range(0..10) {
                        0..=3 => (
                            "inbound",
                            raw.clone(),
                            norm.clone(),
                            ext.clone(),
                            ext.clone(),
                        ),
                        4..=8 => (
                            "outbound",
                            ext.clone(),
                            ext.clone(),
                            raw.clone(),
                            norm.clone(),
                        ),
                        _ => {
                            let other = (1000 + rng.random_range(0..USERS)).to_string();
                            ("internal", ext.clone(), ext.clone(), other.clone(), other)
                        }
                    };
                let duration = rng.random_range(1_000..600_000i64);
                let size = 44 + duration * 16;
                let name = format!(
                    "{started}-{}-{}-{ext}-{}.wav",
                    digits(&from_raw),
                    digits(&to_raw),
                    &id[30..]
                );
                let day = chrono::DateTime::from_timestamp_millis(started)
                    .map(|t| t.format("%Y/%m/%d").to_string())
                    .unwrap_or_default();
                let store_path = format!("default/{day}/{name}");
                let notes = if rng.random_ratio(1, 100) { 1 } else { 0 };
                insert
                    .execute(rusqlite::params![
                        id,
                        user_ids[user_idx],
                        format!("call-{id}"),
                        direction,
                        from_raw,
                        from_norm,
                        to_raw,
                        to_norm,
                        started,
                        started + duration,
                        duration,
                        size,
                        format!("{:064x}", rng.random::<u128>()),
                        format!("/spool/{id}.wav"),
                        store_path,
                        name,
                        started + 180 * 24 * 3600 * 1000,
                        rng.random_ratio(1, 200),
                        notes,
                    ])
                    .expect("insert");
                if notes > 0 {
                    let seq = tx.last_insert_rowid();
                    let words = [
                        "refund",
                        "complaint",
                        "escalated",
                        "callback",
                        "card",
                        "dispute",
                        "order",
                    ];
                    let text = format!(
                        "{} about {} {}",
                        words[rng.random_range(0..words.len())],
                        words[rng.random_range(0..words.len())],
                        rng.random_range(0..100_000)
                    );
                    note.execute(rusqlite::params![seq, started, text])
                        .expect("note");
                }
            }
        }
        tx.commit().expect("commit");
        done += chunk.min(rows - done);
        eprintln!("  {done} rows");
    }
    conn.execute_batch(
        "INSERT INTO usage (user_id, bytes, files)
             SELECT user_id, SUM(size_bytes), COUNT(*) FROM recordings GROUP BY user_id;
         ANALYZE;
         PRAGMA wal_checkpoint(TRUNCATE);",
    )
    .expect("finish");
}

fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

/// Latency percentiles of a set of samples.
pub struct Latencies(pub Vec<Duration>);

impl Latencies {
    pub fn percentile(&mut self, p: f64) -> Duration {
        self.0.sort();
        if self.0.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.0.len() as f64 * p).ceil() as usize).clamp(1, self.0.len()) - 1;
        self.0[i]
    }

    pub fn summary(&mut self) -> String {
        format!(
            "p50 {:>7.3} ms  p95 {:>7.3} ms  p99 {:>7.3} ms  (n={})",
            ms(self.percentile(0.50)),
            ms(self.percentile(0.95)),
            ms(self.percentile(0.99)),
            self.0.len()
        )
    }
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The 1-, 5- and 15-minute load averages (`/proc/loadavg`), to print beside a figure: the
/// benchmark machines are shared, and a figure means little without how busy they were.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".to_owned())
}

//! Retention sweep on the 1,000,000-recording index (SPEC §8: ≥ 10,000 deletions/s while
//! search p99 stays ≤ 50 ms), beside the floors measured in the same run: removing the same
//! number of files laid out the same way, each directory fsynced once (`rm` + `sync`), one
//! at a time and on as many threads as the sweep's remover uses. The load average before and
//! after is printed too: the machine is shared.
//!
//! The oldest `CALLREC_BENCH_SWEEP` recordings (default 100,000) get a 1 KiB file each and
//! the clock is set just past their expiry; the sweep deletes exactly those, with tombstones,
//! usage, audit entries and file removals, while another thread searches (number, date range,
//! user; the API's read connections) and records its latencies.
//!
//! `cargo bench -p callrec-store --bench sweep`; `CALLREC_BENCH_ROWS`, `CALLREC_BENCH_DIR`.

mod support;

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use callrec_model::{ManualClock, SiteId};
use callrec_store::{Access, Scope, SearchQuery, Store, StoreHandle, SweepOptions};
use chrono::DateTime;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use support::{
    GENERATED_NOW_MS, Latencies, YEAR_MS, bench_dir, env_usize, generated_index, load_average,
    number_pool,
};

fn make_files(root: &Path, rels: &[String]) -> BTreeSet<PathBuf> {
    let body = vec![0u8; 1024];
    let mut dirs = BTreeSet::new();
    for rel in rels {
        let p = root.join(rel);
        let dir = p.parent().expect("parent").to_path_buf();
        if dirs.insert(dir.clone()) {
            std::fs::create_dir_all(&dir).expect("dir");
        }
        std::fs::write(&p, &body).expect("file");
    }
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
    dirs
}

/// The sweep's remover threads (`retention::REMOVER_THREADS`).
const FLOOR_THREADS: usize = 8;

/// Files/s removing `rels` under `root` (created first) on `threads` threads, then fsyncing
/// each directory once.
fn remove_floor(root: &Path, rels: &[String], threads: usize) -> f64 {
    let dirs = make_files(root, rels);
    let t = Instant::now();
    let chunk = rels.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        for part in rels.chunks(chunk) {
            s.spawn(move || {
                for rel in part {
                    std::fs::remove_file(root.join(rel)).expect("rm");
                }
            });
        }
    });
    for d in &dirs {
        File::open(d).and_then(|f| f.sync_all()).expect("fsync dir");
    }
    rels.len() as f64 / t.elapsed().as_secs_f64()
}

/// Search continuously until `stop`, returning the latencies.
fn searcher(handle: StoreHandle, site: SiteId, stop: Arc<AtomicBool>) -> Latencies {
    let pool = number_pool();
    let users = handle.read_blocking(|v| v.users(None)).expect("users");
    let admin = Access {
        actor: "bench".into(),
        scope: Scope::Site(site),
    };
    let mut rng = StdRng::seed_from_u64(5);
    let mut lat = Latencies(Vec::new());
    while !stop.load(Ordering::Relaxed) {
        let query = match rng.random_range(0..3) {
            0 => SearchQuery {
                number: Some(pool[rng.random_range(0..pool.len())].0.clone()),
                ..Default::default()
            },
            1 => {
                let since = DateTime::from_timestamp_millis(
                    GENERATED_NOW_MS - rng.random_range(0..YEAR_MS),
                )
                .expect("time");
                SearchQuery {
                    since: Some(since),
                    until: Some(since + chrono::Duration::days(1)),
                    ..Default::default()
                }
            }
            _ => SearchQuery {
                user: Some(users[rng.random_range(0..users.len())].extension.clone()),
                ..Default::default()
            },
        };
        let t = Instant::now();
        handle
            .read_blocking(|v| v.search(&admin, &query))
            .expect("search");
        lat.0.push(t.elapsed());
    }
    lat
}

fn main() {
    let rows = env_usize("CALLREC_BENCH_ROWS", 1_000_000);
    let victims = env_usize("CALLREC_BENCH_SWEEP", 100_000);
    let src = generated_index(rows);
    let work = bench_dir().join("sweep-run");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).expect("work dir");
    for f in ["index.db", "index.db-wal"] {
        if src.join(f).exists() {
            std::fs::copy(src.join(f), work.join(f)).expect("copy index");
        }
    }

    let conn = rusqlite::Connection::open(work.join("index.db")).expect("index");
    let cutoff: i64 = conn
        .query_row(
            "SELECT expires_at FROM recordings WHERE state IN ('stored', 'failed') AND hold = 0
             ORDER BY expires_at LIMIT 1 OFFSET ?1",
            [victims as i64 - 1],
            |r| r.get(0),
        )
        .expect("cutoff");
    let rels: Vec<String> = conn
        .prepare(
            "SELECT store_path FROM recordings WHERE state IN ('stored', 'failed') AND hold = 0
             AND expires_at <= ?1",
        )
        .and_then(|mut s| s.query_map([cutoff], |r| r.get(0))?.collect())
        .expect("victims");
    drop(conn);
    let n = rels.len();
    println!(
        "sweep of {n} expired recordings out of {rows} ({}); load average {}",
        work.display(),
        load_average()
    );

    // Floors: remove the same files laid out the same way, each directory fsynced once; one
    // at a time (`rm`), and on as many threads as the sweep's remover uses.
    let floor = remove_floor(&work.join("floor"), &rels, 1);
    let floor_parallel = remove_floor(&work.join("floor"), &rels, FLOOR_THREADS);

    make_files(&work.join("store"), &rels);
    let clock = ManualClock::new(DateTime::from_timestamp_millis(cutoff).expect("time"));
    let store = Store::open_with_clock(&work, Arc::new(clock)).expect("open");
    let site = store.view().site("default").expect("site").id;
    let handle = StoreHandle::new(store);

    // Search alone first, for comparison.
    let stop = Arc::new(AtomicBool::new(false));
    let h = handle.clone();
    let s = stop.clone();
    let idle = std::thread::spawn(move || searcher(h, site, s));
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    let mut idle = idle.join().expect("searcher");

    let stop = Arc::new(AtomicBool::new(false));
    let h = handle.clone();
    let s = stop.clone();
    let busy = std::thread::spawn(move || searcher(h, site, s));
    let t = Instant::now();
    let report = handle
        .write_blocking(|s| {
            s.sweep(&SweepOptions {
                list_limit: 0,
                ..SweepOptions::default()
            })
        })
        .expect("sweep");
    let elapsed = t.elapsed();
    stop.store(true, Ordering::Relaxed);
    let mut busy = busy.join().expect("searcher");
    assert_eq!(
        report.deleted as usize, n,
        "the sweep deleted exactly the expired ones"
    );
    assert_eq!(report.files_not_removed, 0);
    let ours = n as f64 / elapsed.as_secs_f64();
    let load_after = load_average();

    println!(
        "callrec sweep (tombstone, usage, audit entry, unlink, fsync): {ours:>8.0} deletions/s  ({:.1} s)",
        elapsed.as_secs_f64()
    );
    println!(
        "floor: rm of the same files + fsync of their directories:   {floor:>8.0} files/s  (callrec = {:.2} x)",
        ours / floor
    );
    println!(
        "floor: the same on {FLOOR_THREADS} threads:                          {floor_parallel:>8.0} files/s  (callrec = {:.2} x)",
        ours / floor_parallel
    );
    println!("search during the sweep: {}", busy.summary());
    println!("search alone, before:    {}", idle.summary());
    println!("load average after the sweep: {load_after}");
    let _ = std::fs::remove_dir_all(&work);
    let _ = Access::system("unused");
}

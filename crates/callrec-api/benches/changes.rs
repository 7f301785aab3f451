//! The change feed over 1,000,000 recordings (SPEC §5.3, issue 11: served from an index so
//! following it is cheap at any archive size): `GET /api/v1/changes?after=<seq>&limit=500`
//! at the start, the middle and the end of the feed, for an admin token (the whole site) and
//! for user tokens (their own recordings only).
//!
//! The index is the store benchmark's generated one (`generated_index`: 500 users, a year
//! of calls), copied once to `changes-<rows>` beside it with `VACUUM INTO` and given the
//! feed a live store would have written: one `stored` change per recording, in the order
//! the recordings were created, after the `note` changes the generator's notes left. Each
//! position is asked `CALLREC_BENCH_QUERIES` times (default 500) at a random place within
//! 1,000 changes of it (a user: within 20 of their own changes), and timed twice: the
//! store's query alone on a read connection (the server's time for the page), and the whole
//! request over a keep-alive loopback connection (token checked, query, JSON written and
//! read), which bounds the server time from above. The query plan of each scope is printed.
//!
//! `cargo bench -p callrec-api --bench changes`; `CALLREC_BENCH_ROWS` (default 1,000,000),
//! `CALLREC_BENCH_DIR` for the data (set it to the store benchmark's to share its index).

#[path = "../../callrec-store/benches/support/mod.rs"]
mod store_support;
mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use callrec_model::Role;
use callrec_store::{Access, NewUser, Store, StoreHandle};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use store_support::{Latencies, bench_dir, env_usize, generated_index, load_average};
use support::{Client, start_api};

/// Changes per page, as an archive client asks.
const PAGE: u32 = 500;

/// The generated index with a change feed: copied once, then reused.
fn index_with_feed(rows: usize) -> PathBuf {
    let source = generated_index(rows);
    let dir = bench_dir().join(format!("changes-{rows}"));
    let marker = dir.join("complete");
    if marker.exists() {
        return dir;
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("store")).expect("bench dir");
    eprintln!(
        "copying the index to {} and filling its feed (once)…",
        dir.display()
    );
    let t = Instant::now();
    copy_index(&source, &dir);
    // Opened as the server opens it (migrations, if the copy is older than this build).
    drop(Store::open(&dir).expect("open the copy"));
    let conn = rusqlite::Connection::open(dir.join("index.db")).expect("open the copy");
    conn.execute_batch(
        "PRAGMA synchronous = OFF;
         INSERT INTO changes (kind, recording_seq, site_id, user_id)
             SELECT state, seq, site_id, user_id FROM recordings
             WHERE state IN ('stored', 'failed', 'deleted') ORDER BY seq;
         ANALYZE;
         PRAGMA wal_checkpoint(TRUNCATE);",
    )
    .expect("fill the feed");
    std::fs::write(&marker, rows.to_string()).expect("marker");
    eprintln!("done in {:.1} s", t.elapsed().as_secs_f64());
    dir
}

/// A consistent copy of `source`'s index, read-only on the source (other benchmarks share it).
fn copy_index(source: &Path, dir: &Path) {
    let from = rusqlite::Connection::open_with_flags(
        source.join("index.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open the generated index");
    let to = dir.join("index.db");
    from.execute("VACUUM INTO ?1", [to.to_string_lossy().as_ref()])
        .expect("copy the index");
}

/// Where a follower's pages start: each scope's first change, its middle and its last
/// full page.
struct Positions {
    seqs: Vec<i64>,
}

impl Positions {
    fn at(&self, what: &str, rng: &mut StdRng, spread: usize) -> i64 {
        let n = self.seqs.len();
        let i = match what {
            "start" => rng.random_range(0..spread.min(n)),
            "middle" => n / 2 + rng.random_range(0..spread.min(n / 2)),
            _ => n.saturating_sub(PAGE as usize + spread) + rng.random_range(0..spread.min(n)),
        };
        // `after` the change before it: the page starts at change `i`.
        if i == 0 { 0 } else { self.seqs[i - 1] }
    }
}

fn main() {
    let rows = env_usize("CALLREC_BENCH_ROWS", 1_000_000);
    let queries = env_usize("CALLREC_BENCH_QUERIES", 500);
    let dir = index_with_feed(rows);
    let mut store = Store::open(&dir).expect("open");
    if store.view().user("default", "9000").is_err() {
        let mut new = NewUser::new("default", "9000");
        new.role = Role::Admin;
        store.add_user(&new, "bench").expect("admin");
    }
    let system = Access::system("bench");
    let admin = store.view().user("default", "9000").expect("admin");
    let admin_token = store
        .create_token(admin.id, "bench", &system)
        .expect("token")
        .secret;
    let users: Vec<_> = store
        .view()
        .users(Some("default"))
        .expect("users")
        .into_iter()
        .filter(|u| u.role == Role::User)
        .take(20)
        .collect();
    let conn = rusqlite::Connection::open(dir.join("index.db")).expect("open");
    let seqs_of = |user: Option<i64>| -> Vec<i64> {
        conn.prepare("SELECT seq FROM changes WHERE ?1 IS NULL OR user_id = ?1 ORDER BY seq")
            .and_then(|mut s| s.query_map([user], |r| r.get(0))?.collect())
            .expect("seqs")
    };
    let admin_positions = Positions {
        seqs: seqs_of(None),
    };
    let mut followers = Vec::new();
    for u in &users {
        let token = store
            .create_token(u.id, "bench", &system)
            .expect("token")
            .secret;
        followers.push((
            token,
            Positions {
                seqs: seqs_of(Some(u.id.0)),
            },
        ));
    }

    // The plans, as the read connection sees them.
    {
        for (scope, filter) in [
            ("admin of a site", "c.site_id = ?3"),
            ("user", "c.user_id = ?3"),
        ] {
            let sql = format!(
                "EXPLAIN QUERY PLAN SELECT c.seq, c.kind, r.id FROM changes c
                 JOIN recordings r ON r.seq = c.recording_seq
                 WHERE {filter} AND c.seq > ?1 ORDER BY c.seq LIMIT ?2"
            );
            let plan: Vec<String> = conn
                .prepare(&sql)
                .and_then(|mut s| {
                    s.query_map(rusqlite::params![0, PAGE, 1], |r| r.get::<_, String>(3))?
                        .collect()
                })
                .expect("plan");
            println!("plan, {scope}: {}", plan.join("; "));
        }
    }

    let caller = |token: &str| {
        store
            .view()
            .authenticate(token)
            .expect("authenticate")
            .expect("a live token")
    };
    let admin_caller = caller(&admin_token);
    let user_callers: Vec<_> = followers.iter().map(|(t, _)| caller(t)).collect();
    let handle = StoreHandle::new(store);
    let addr = start_api(callrec_api::ApiState::new(
        handle.clone(),
        Arc::new(callrec_api::NoDaemon),
    ));
    let mut client = Client::connect(addr);
    let mut body = Vec::new();
    let mut rng = StdRng::seed_from_u64(11);
    println!(
        "change feed over {rows} recordings ({} changes), pages of {PAGE}, {queries} requests \
         per position; load average {}",
        admin_positions.seqs.len(),
        load_average()
    );
    println!("| token | position | changes per page (mean) | store query | HTTP round trip |");
    println!("| --- | --- | --- | --- | --- |");
    for what in ["start", "middle", "end"] {
        for user_scope in [false, true] {
            let mut store_times = Latencies(Vec::with_capacity(queries));
            let mut http_times = Latencies(Vec::with_capacity(queries));
            let mut shown = 0usize;
            for i in 0..queries + 20 {
                let (token, access, positions, spread) = if user_scope {
                    let k = rng.random_range(0..followers.len());
                    (
                        followers[k].0.as_str(),
                        user_callers[k].access(),
                        &followers[k].1,
                        20,
                    )
                } else {
                    (
                        admin_token.as_str(),
                        admin_caller.access(),
                        &admin_positions,
                        1000,
                    )
                };
                let after = positions.at(what, &mut rng, spread);
                let t = Instant::now();
                let page = handle
                    .read_blocking(|v| v.changes(&access, after, PAGE))
                    .expect("a page");
                let store_took = t.elapsed();
                let path = format!("/api/v1/changes?after={after}&limit={PAGE}");
                let t = Instant::now();
                let reply = client.get(&path, Some(token), &mut body, true);
                let http_took = t.elapsed();
                assert_eq!(
                    reply.status,
                    200,
                    "{path}: {}",
                    String::from_utf8_lossy(&body)
                );
                if i >= 20 {
                    store_times.0.push(store_took);
                    http_times.0.push(http_took);
                    shown += page.changes.len();
                }
            }
            println!(
                "| {} | {what} | {:.0} | p50 {:.3} ms, **p95 {:.3} ms** | p50 {:.3} ms, **p95 {:.3} ms** |",
                if user_scope {
                    "user (20 users)"
                } else {
                    "admin"
                },
                shown as f64 / queries as f64,
                store_support::ms(store_times.percentile(0.50)),
                store_support::ms(store_times.percentile(0.95)),
                store_support::ms(http_times.percentile(0.50)),
                store_support::ms(http_times.percentile(0.95)),
            );
        }
    }
    println!("load average after: {}", load_average());
}

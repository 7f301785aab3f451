//! Crash safety (SPEC §4.1, §9): a process ingesting and sweeping is SIGKILLed at random
//! instants, well over a hundred times, and restarted each time; at the end every spool file
//! is stored exactly once, no row lacks its file, no file lacks its row, and every hash is
//! right.
//!
//! This test binary plays both parts (`harness = false`): run normally it is the parent;
//! with `CALLREC_CRASH_CHILD` set it is the child, which does what the daemon does at start
//! (reconcile, then ingest every recording whose file is finished, then sweep) and exits.
//! Half the children ingest through the batched worker, half one at a time. Half the spool
//! files live on a separate tmpfs (when the test may mount one) so the copy + fsync + rename
//! + unlink path is killed too.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode};
use std::time::{Duration, Instant};

use callrec_model::NewRecording;
use callrec_model::{Direction, RecordingId};
use callrec_store::{
    IngestConfig, IngestJob, NewUser, ReconcileOptions, SiteUpdate, Store, StoreHandle,
    SweepOptions, VerifyOptions,
};
use callrec_testkit::tmpfs::Tmpfs;
use callrec_testkit::wav;
use chrono::Utc;
use rand::Rng;
use sha2::{Digest, Sha256};

const KILLS: u32 = 120;
const BATCH: usize = 24;
const CHILD_ENV: &str = "CALLREC_CRASH_CHILD";
const MODE_ENV: &str = "CALLREC_CRASH_MODE";

fn main() -> ExitCode {
    match std::env::var_os(CHILD_ENV) {
        Some(dir) => child(Path::new(&dir)),
        None => {
            // `cargo test -- --list` and filters: behave like a one-test harness.
            let args: Vec<String> = std::env::args().collect();
            if args.iter().any(|a| a == "--list") {
                println!("kill_nine_during_ingest_and_sweep_loses_and_duplicates_nothing: test");
                return ExitCode::SUCCESS;
            }
            parent();
            println!("test kill_nine_during_ingest_and_sweep_loses_and_duplicates_nothing ... ok");
            ExitCode::SUCCESS
        }
    }
}

/// The child: one life of a daemon's store work.
fn child(data_dir: &Path) -> ExitCode {
    let run = || -> Result<(), callrec_store::StoreError> {
        let mut store = Store::open(data_dir)?;
        store.reconcile(&ReconcileOptions { walk_store: true })?;
        let in_progress = store.view().recordings_in_progress()?;
        if std::env::var(MODE_ENV).as_deref() == Ok("worker") {
            let handle = StoreHandle::new(store);
            let worker = handle.start_ingest_worker(IngestConfig {
                batch: 8,
                ..IngestConfig::default()
            })?;
            let queue = worker.queue();
            let waits: Vec<_> = in_progress
                .into_iter()
                .map(|r| queue.submit(IngestJob::new(r.id)))
                .collect::<Result<_, _>>()?;
            for w in waits {
                match w.blocking_recv() {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return Err(e),
                    Err(_) => return Err(callrec_store::StoreError::WorkerStopped),
                }
            }
            worker.shutdown();
            handle.write_blocking(|s| s.sweep(&SweepOptions::default()).map(|_| ()))?;
        } else {
            for r in in_progress {
                store.ingest(&IngestJob::new(r.id))?;
            }
            store.sweep(&SweepOptions::default())?;
        }
        Ok(())
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("crash child: {e}");
            ExitCode::FAILURE
        }
    }
}

struct Expected {
    sha256: String,
    size: u64,
    user: String,
    /// Whether the ingest must repair its header (a file the switch never closed).
    repaired: bool,
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Add `n` finished recordings: rows in state `recording` and their spool files, as the
/// daemon and the switch leave them when calls end.
fn add_work(
    data_dir: &Path,
    spools: &[PathBuf],
    n: usize,
    expected: &mut BTreeMap<RecordingId, Expected>,
    rng: &mut impl Rng,
) {
    let mut store = Store::open(data_dir).unwrap();
    let users = store.view().users(Some("default")).unwrap();
    for i in 0..n {
        let id = RecordingId::new();
        let user = &users[i % users.len()];
        let spool = &spools[i % spools.len()];
        let spool_path = spool.join(format!("{id}.wav"));
        // A fifth started long ago and expire at once (the sweep deletes them); a tenth hold
        // no audio (kept, `failed`); a tenth were cut by a switch crash (stored repaired:
        // the store holds the file as the switch would have closed it, a torn sample cut);
        // the rest are up to 3 s of noise.
        let old = rng.random_ratio(1, 5);
        let (ms, seed) = (rng.random_range(100..3_000), rng.random());
        let (bytes, stored_bytes) = match rng.random_range(0..10) {
            0 => (wav::empty(), wav::empty()),
            1 => {
                let mut cut = wav::cut_by_crash(ms, seed);
                if rng.random() {
                    cut.push(0x42);
                }
                (cut, wav::noise(ms, seed))
            }
            _ => (wav::noise(ms, seed), wav::noise(ms, seed)),
        };
        let repaired = bytes != stored_bytes;
        let started_at = if old {
            Utc::now() - chrono::Duration::days(40)
        } else {
            Utc::now()
        };
        store
            .create_recording(
                &NewRecording {
                    id: id.clone(),
                    user: user.id,
                    call_uuid: format!("call-{id}"),
                    direction: Direction::Inbound,
                    from: "02920123123".into(),
                    to: user.extension.clone(),
                    started_at,
                    format: "wav".into(),
                    spool_path: spool_path.clone(),
                },
                "daemon",
            )
            .unwrap();
        std::fs::write(&spool_path, &bytes).unwrap();
        expected.insert(
            id,
            Expected {
                sha256: sha256_hex(&stored_bytes),
                size: stored_bytes.len() as u64,
                user: user.extension.clone(),
                repaired,
            },
        );
    }
}

fn spawn_child(data_dir: &Path, life: u32) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .env(CHILD_ENV, data_dir)
        .env(
            MODE_ENV,
            if life.is_multiple_of(2) {
                "worker"
            } else {
                "direct"
            },
        )
        .env_remove("RUST_BACKTRACE")
        .spawn()
        .unwrap()
}

fn parent() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    let same_fs_spool = tmp.path().join("spool");
    std::fs::create_dir_all(&same_fs_spool).unwrap();
    let tmpfs = Tmpfs::mount(&tmp.path().join("spool-tmpfs"), "64m")
        .inspect_err(|e| {
            println!("crash_safety: {e}; every spool file stays on the store's filesystem")
        })
        .ok();
    let mut spools = vec![same_fs_spool.clone()];
    if let Some(t) = &tmpfs {
        spools.push(t.path().to_path_buf());
    }

    {
        let mut store = Store::open(&data_dir).unwrap();
        store
            .update_site(
                "default",
                &SiteUpdate {
                    retention_days: Some(30),
                    ..Default::default()
                },
                "test",
            )
            .unwrap();
        for ext in ["1001", "1002", "1003"] {
            store
                .add_user(&NewUser::new("default", ext), "test")
                .unwrap();
        }
    }

    let mut rng = rand::rng();
    let mut expected = BTreeMap::new();
    let mut kills = 0u32;
    let mut lives = 0u32;
    let deadline = Instant::now() + Duration::from_secs(240);
    while kills < KILLS {
        assert!(Instant::now() < deadline, "crash test overran its deadline");
        let pending = Store::open(&data_dir)
            .unwrap()
            .view()
            .recordings_in_progress()
            .unwrap()
            .len();
        if pending < BATCH / 2 {
            add_work(&data_dir, &spools, BATCH, &mut expected, &mut rng);
        }
        let mut child = spawn_child(&data_dir, lives);
        lives += 1;
        let kill_at = Instant::now() + Duration::from_micros(rng.random_range(0..60_000));
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "child failed on its own: {status}");
                break;
            }
            if Instant::now() >= kill_at {
                // SIGKILL: no destructor, no flush, like a power-cut of the process.
                child.kill().unwrap();
                child.wait().unwrap();
                kills += 1;
                // Right after the kill, before anything repairs it: whatever the index says
                // is stored has its file (the next sweep would hide a file removed too
                // early by deleting its row anyway).
                assert_no_live_row_lacks_its_file(&data_dir, kills);
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    // One last life, left to finish.
    let mut child = spawn_child(&data_dir, lives);
    let finish_by = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > finish_by {
            let _ = child.kill();
            panic!("the last child did not finish");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(status.success(), "last child: {status}");
    println!(
        "crash_safety: {kills} kills over {lives} lives, {} recordings, {} spool dir(s)",
        expected.len(),
        spools.len()
    );
    check_invariants(&data_dir, &spools, &expected);
    drop(tmpfs);
}

fn assert_no_live_row_lacks_its_file(data_dir: &Path, kill: u32) {
    let conn = rusqlite::Connection::open(data_dir.join("index.db")).unwrap();
    let live: Vec<(String, String, String)> = conn
        .prepare("SELECT id, state, store_path FROM recordings WHERE state IN ('stored', 'failed')")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let store_root = data_dir.join("store");
    for (id, state, store_path) in live {
        let path = store_root.join(&store_path);
        assert!(
            path.exists(),
            "after kill {kill}: {id} is {state} but {} is gone",
            path.display()
        );
    }
}

fn check_invariants(
    data_dir: &Path,
    spools: &[PathBuf],
    expected: &BTreeMap<RecordingId, Expected>,
) {
    let conn = rusqlite::Connection::open(data_dir.join("index.db")).unwrap();
    type Row = (String, String, Option<String>, Option<i64>, Option<String>);
    let mut rows: BTreeMap<String, Row> = BTreeMap::new();
    {
        let mut stmt = conn
            .prepare(
                "SELECT id, state, store_path, sha256, size_bytes, state_reason FROM recordings",
            )
            .unwrap();
        for row in stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    (r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?),
                ))
            })
            .unwrap()
        {
            let (id, rest) = row.unwrap();
            rows.insert(id, rest);
        }
    }
    assert_eq!(rows.len(), expected.len(), "one row per recording");

    let store_root = data_dir.join("store");
    let mut live_paths = BTreeSet::new();
    let mut usage: HashMap<String, (i64, i64)> = HashMap::new();
    let (mut stored, mut failed, mut deleted, mut repaired) = (0, 0, 0, 0);
    for (id, exp) in expected {
        let (state, store_path, sha, size, reason) = &rows[id.as_str()];
        let path = store_root.join(store_path);
        match state.as_str() {
            "stored" | "failed" => {
                if state == "stored" {
                    stored += 1;
                } else {
                    failed += 1;
                }
                let bytes = std::fs::read(&path).unwrap_or_else(|e| {
                    panic!("{id} is {state} but {} is unreadable: {e}", path.display())
                });
                assert_eq!(sha256_hex(&bytes), exp.sha256, "{id}: file hash");
                assert_eq!(
                    sha.as_deref(),
                    Some(exp.sha256.as_str()),
                    "{id}: indexed hash"
                );
                assert_eq!(*size, Some(exp.size as i64), "{id}: indexed size");
                // The mark survives every kill: the spool file keeps its broken header until
                // the commit, so whichever life commits repairs it and says so.
                let marked = reason
                    .as_deref()
                    .is_some_and(|r| r.starts_with(callrec_store::HEADER_REPAIRED));
                assert_eq!(marked, exp.repaired, "{id}: {reason:?}");
                if marked {
                    repaired += 1;
                }
                live_paths.insert(path);
                let u = usage.entry(exp.user.clone()).or_default();
                u.0 += exp.size as i64;
                u.1 += 1;
            }
            "deleted" => {
                deleted += 1;
                assert!(
                    !path.exists(),
                    "{id} is deleted but {} exists",
                    path.display()
                );
            }
            other => panic!("{id} ended in state {other}"),
        }
    }
    println!(
        "crash_safety: {stored} stored ({repaired} with a repaired header), {failed} failed \
         (no audio), {deleted} swept"
    );
    assert!(
        stored > 0 && failed > 0 && deleted > 0 && repaired > 0,
        "every path was exercised"
    );

    // No file without its row, no leftovers, nothing left in the spools.
    let on_disk: BTreeSet<PathBuf> = walk(&store_root).into_iter().collect();
    assert_eq!(
        on_disk, live_paths,
        "files in the store are exactly the live rows' files"
    );
    for spool in spools {
        assert!(walk(spool).is_empty(), "spool {} is empty", spool.display());
    }
    let pending: i64 = conn
        .query_row("SELECT COUNT(*) FROM pending_removals", [], |r| r.get(0))
        .unwrap();
    assert_eq!(pending, 0);

    // Exactly once: one ingest commit per recording, whatever was retried.
    let commits: Vec<(String, i64)> = conn
        .prepare(
            "SELECT target, COUNT(*) FROM audit_log
             WHERE action IN ('recording.stored', 'recording.failed') GROUP BY target",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(commits.len(), expected.len());
    assert!(
        commits.iter().all(|(_, n)| *n == 1),
        "an ingest committed twice"
    );

    // Every deletion left its tombstone and exactly one audit entry, whatever was killed
    // and redone; nothing alive has one.
    let deletions: BTreeMap<String, i64> = conn
        .prepare(
            "SELECT target, COUNT(*) FROM audit_log WHERE action = 'recording.delete'
             GROUP BY target",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let tombstones: BTreeSet<String> = conn
        .prepare(
            "SELECT 'recording:' || id FROM recordings
             WHERE state = 'deleted' AND deleted_at IS NOT NULL AND state_reason IS NOT NULL",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        tombstones.len(),
        deleted,
        "every deleted row is a full tombstone"
    );
    assert_eq!(
        deletions.keys().cloned().collect::<BTreeSet<_>>(),
        tombstones,
        "an audit entry for each deletion, none for anything alive"
    );
    assert!(
        deletions.values().all(|n| *n == 1),
        "a deletion was audited twice"
    );

    // Usage counters agree with the files.
    let mut stmt = conn
        .prepare(
            "SELECT u.extension, g.bytes, g.files FROM usage g JOIN users u ON u.id = g.user_id",
        )
        .unwrap();
    for row in stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })
        .unwrap()
    {
        let (ext, bytes, files) = row.unwrap();
        assert_eq!(
            usage.get(&ext).copied().unwrap_or_default(),
            (bytes, files),
            "usage of {ext}"
        );
    }
    drop(stmt);
    drop(conn);

    let mut store = Store::open(data_dir).unwrap();
    let report = store.verify(&VerifyOptions::default()).unwrap();
    assert!(report.is_clean(), "{report}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

//! Ingest of finished files, one filesystem, durable (SPEC §8: ≥ 1,000 recordings/s),
//! beside two floors measured in the same run on the same kind of files:
//! - `mv + fsync`: per file, fsync it, rename it into the store, fsync both directories
//!   (what a careful shell script does);
//! - `batched mv + fsync`: the worker's file strategy alone (4 files at once, directories
//!   fsynced once per batch of 64) with no index at all.
//!
//! `cargo bench -p callrec-store --bench ingest`; `CALLREC_BENCH_FILES` (default 5,000),
//! `CALLREC_BENCH_FILE_KIB` (default 32, i.e. 2 s of 8 kHz mono), `CALLREC_BENCH_DIR`.

mod support;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use callrec_model::NewRecording;
use callrec_model::{Direction, RecordingId};
use callrec_store::{IngestConfig, IngestJob, IngestOutcome, NewUser, Store, StoreHandle};
use chrono::Utc;
use support::{bench_dir, env_usize};

fn write_spool_files(dir: &Path, names: &[String], kib: usize) {
    std::fs::create_dir_all(dir).expect("spool dir");
    let body = vec![0x5au8; kib * 1024 - 44];
    let mut bytes = callrec_testkit::wav::header(8000, 1, body.len() as u32).to_vec();
    bytes.extend_from_slice(&body);
    for name in names {
        std::fs::write(dir.join(name), &bytes).expect("spool file");
    }
    // The switch's writes reach the disk in the background; start every run from the same
    // state so no run pays for another's writeback.
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn fsync_dir(dir: &Path) {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .expect("fsync dir");
}

fn floor_serial(spool: &Path, dest: &Path, names: &[String]) -> Duration {
    std::fs::create_dir_all(dest).expect("dest");
    let t = Instant::now();
    for name in names {
        let src = spool.join(name);
        File::open(&src).and_then(|f| f.sync_all()).expect("fsync");
        std::fs::rename(&src, dest.join(name)).expect("rename");
        fsync_dir(dest);
        fsync_dir(spool);
    }
    t.elapsed()
}

fn floor_batched(spool: &Path, dest: &Path, names: &[String]) -> Duration {
    std::fs::create_dir_all(dest).expect("dest");
    let t = Instant::now();
    for batch in names.chunks(64) {
        std::thread::scope(|s| {
            for part in batch.chunks(batch.len().div_ceil(4)) {
                s.spawn(move || {
                    for name in part {
                        let src = spool.join(name);
                        File::open(&src).and_then(|f| f.sync_all()).expect("fsync");
                        std::fs::rename(&src, dest.join(name)).expect("rename");
                    }
                });
            }
        });
        fsync_dir(dest);
        fsync_dir(spool);
    }
    t.elapsed()
}

fn main() {
    let n = env_usize("CALLREC_BENCH_FILES", 5_000);
    let kib = env_usize("CALLREC_BENCH_FILE_KIB", 32);
    let root = bench_dir().join("ingest-run");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).expect("bench dir");
    println!(
        "ingest of {n} files of {kib} KiB, one filesystem ({})",
        root.display()
    );

    // Floor 1.
    let names: Vec<String> = (0..n).map(|i| format!("floor-{i}.wav")).collect();
    write_spool_files(&root.join("spool-floor1"), &names, kib);
    let d = floor_serial(
        &root.join("spool-floor1"),
        &root.join("floor1/2025/01/01"),
        &names,
    );
    let floor1 = rate(n, d);

    // callrec: rows created as the daemon does at answer time, then files ingested.
    let data = root.join("data");
    let spool = root.join("spool");
    let mut store = Store::open(&data).expect("open");
    let user = store
        .add_user(&NewUser::new("default", "1001"), "bench")
        .expect("user");
    let t = Instant::now();
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        let id = RecordingId::new();
        store
            .create_recording(
                &NewRecording {
                    id: id.clone(),
                    user: user.id,
                    call_uuid: format!("call-{id}"),
                    direction: Direction::Outbound,
                    from: "1001".into(),
                    to: "02077456456".into(),
                    started_at: Utc::now(),
                    format: "wav".into(),
                    spool_path: spool.join(format!("{id}.wav")),
                },
                "bench",
            )
            .expect("create");
        ids.push(id);
    }
    let creates = rate(n, t.elapsed());
    let names: Vec<String> = ids.iter().map(|id| format!("{id}.wav")).collect();
    write_spool_files(&spool, &names, kib);
    let handle = StoreHandle::new(store);
    let worker = handle
        .start_ingest_worker(IngestConfig::default())
        .expect("worker");
    let queue = worker.queue();
    let t = Instant::now();
    let waits: Vec<_> = ids
        .iter()
        .map(|id| queue.submit(IngestJob::new(id.clone())).expect("submit"))
        .collect();
    for w in waits {
        match w.blocking_recv() {
            Ok(Ok(IngestOutcome::Stored { .. })) => {}
            other => panic!("ingest: {other:?}"),
        }
    }
    let ours = rate(n, t.elapsed());
    worker.shutdown();

    // Floor 2.
    let names: Vec<String> = (0..n).map(|i| format!("floor-{i}.wav")).collect();
    write_spool_files(&root.join("spool-floor2"), &names, kib);
    let d = floor_batched(
        &root.join("spool-floor2"),
        &root.join("floor2/2025/01/01"),
        &names,
    );
    let floor2 = rate(n, d);

    println!(
        "callrec ingest worker (hash, fsync, rename, fsync dirs, commit): {ours:>8.0} recordings/s"
    );
    println!(
        "floor: mv + fsync, one file at a time:                           {floor1:>8.0} files/s  (callrec = {:.2} x)",
        ours / floor1
    );
    println!(
        "floor: batched mv + fsync, no index:                             {floor2:>8.0} files/s  (callrec = {:.2} x)",
        ours / floor2
    );
    println!("(rows created beforehand, as at call answer: {creates:.0}/s)");
    let _ = std::fs::remove_dir_all(&root);
    let _: PathBuf = root;
}

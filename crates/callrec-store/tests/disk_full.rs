//! Disk full (SPEC §9): ingest into a filesystem that has run out of space keeps the spool
//! file intact, says why, counts it, and completes by itself once space returns.
//!
//! Each test mounts a small tmpfs of its own (tests run as root) and unmounts it however the
//! test ends. Where mounting is not permitted the test says so and returns.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use callrec_model::NewRecording;
use callrec_model::{Direction, RecordingId, RecordingState, SystemClock};
use callrec_store::{
    IngestConfig, IngestJob, IngestOutcome, IngestStats, NewUser, Store, StoreHandle,
};
use callrec_testkit::tmpfs::Tmpfs;
use callrec_testkit::wait::eventually_blocking;
use callrec_testkit::wav;
use chrono::Utc;
use sha2::{Digest, Sha256};
use support::files_under;

/// The store's filesystem: a tmpfs of `size`, or `None` (the test skips) where mounting is
/// not permitted.
fn disk(at: &Path, size: &str) -> Option<Tmpfs> {
    Tmpfs::mount(at, size)
        .inspect_err(|e| println!("SKIPPED: {e}; the disk-full test needs root"))
        .ok()
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Create a recording row and its spool file of `size` bytes of audio; returns its id and the
/// file's bytes.
fn finished_recording(store: &mut Store, spool: &Path, size: u32) -> (RecordingId, Vec<u8>) {
    let user = match store.view().user("default", "1001") {
        Ok(u) => u,
        Err(_) => store
            .add_user(&NewUser::new("default", "1001"), "test")
            .unwrap(),
    };
    let id = RecordingId::new();
    let spool_path = spool.join(format!("{id}.wav"));
    store
        .create_recording(
            &NewRecording {
                id: id.clone(),
                user: user.id,
                call_uuid: "c1".into(),
                direction: Direction::Outbound,
                from: "1001".into(),
                to: "02077456456".into(),
                started_at: Utc::now(),
                format: "wav".into(),
                spool_path: spool_path.clone(),
            },
            "daemon",
        )
        .unwrap();
    let bytes = wav::noise(size / wav::BYTES_PER_MS, 1);
    std::fs::write(&spool_path, &bytes).unwrap();
    (id, bytes)
}

fn quick_retries() -> IngestConfig {
    IngestConfig {
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(100),
        ..IngestConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_store_filesystem_keeps_the_spool_file_and_ingest_resumes_when_space_returns() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(fs) = disk(&tmp.path().join("data"), "1m") else {
        return;
    };
    let spool = tmp.path().join("spool"); // another filesystem: the copy path
    std::fs::create_dir_all(&spool).unwrap();
    let mut store = Store::open_with_clock(fs.path(), Arc::new(SystemClock)).unwrap();
    let (id, bytes) = finished_recording(&mut store, &spool, 3 << 20);
    let spool_file = spool.join(format!("{id}.wav"));

    // One attempt, synchronously: a clear error, the spool file intact, no half copy left in
    // the store, the row still waiting.
    let err = store.ingest(&IngestJob::new(id.clone())).unwrap_err();
    assert_eq!(err.kind(), callrec_store::ErrorKind::DiskFull);
    assert!(err.kind().is_transient());
    let msg = err.to_string();
    assert!(
        msg.starts_with("cannot write a copy into the store "),
        "{msg}"
    );
    assert!(
        msg.ends_with("No space left on device (os error 28)"),
        "{msg}"
    );
    assert_eq!(sha(&std::fs::read(&spool_file).unwrap()), sha(&bytes));
    assert!(
        files_under(&fs.path().join("store")).is_empty(),
        "a half copy was left behind"
    );
    let state = store
        .view()
        .recording(&id, &callrec_store::Access::system("t"))
        .unwrap()
        .state;
    assert_eq!(state, RecordingState::Recording);

    // The worker retries by itself and counts each failure.
    let handle = StoreHandle::new(store);
    let worker = handle.start_ingest_worker(quick_retries()).unwrap();
    let queue = worker.queue();
    let done = queue.submit(IngestJob::new(id.clone())).unwrap();
    eventually_blocking("disk-full errors", || queue.stats().errors_disk_full >= 2);
    let stats: IngestStats = queue.stats();
    let last = stats.last_error.clone().unwrap();
    assert!(last.starts_with("disk_full: "), "{last}");
    assert!(last.contains("No space left on device"), "{last}");
    assert_eq!(stats.retrying + stats.queued, 1);
    assert_eq!(stats.stored, 0);
    // The copy only ever reads the spool file.
    assert_eq!(sha(&std::fs::read(&spool_file).unwrap()), sha(&bytes));

    // Space returns; nobody does anything else.
    fs.resize("16m");
    let outcome = tokio::time::timeout(Duration::from_secs(20), done)
        .await
        .expect("ingest resumed")
        .unwrap()
        .unwrap();
    let IngestOutcome::Stored { path, sha256, .. } = outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(sha256, sha(&bytes));
    assert_eq!(sha(&std::fs::read(&path).unwrap()), sha(&bytes));
    assert!(
        !spool_file.exists(),
        "the spool copy is removed once the commit is durable"
    );
    assert_eq!(queue.stats().stored, 1);
    worker.shutdown_async().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_index_filesystem_is_retried_until_space_returns() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(fs) = disk(&tmp.path().join("disk"), "8m") else {
        return;
    };
    let data = fs.path().join("data");
    let spool = fs.path().join("spool"); // same filesystem: rename, no copy
    std::fs::create_dir_all(&spool).unwrap();
    let mut store = Store::open(&data).unwrap();
    let (id, bytes) = finished_recording(&mut store, &spool, 64 << 10);
    // Close and reopen so the index starts with an empty write-ahead log, then fill the disk.
    drop(store);
    let store = Store::open(&data).unwrap();
    let filler = fs.fill();

    let handle = StoreHandle::new(store);
    let worker = handle.start_ingest_worker(quick_retries()).unwrap();
    let queue = worker.queue();
    let done = queue.submit(IngestJob::new(id.clone())).unwrap();
    eventually_blocking("a disk-full error", || queue.stats().errors_disk_full >= 2);
    assert_eq!(queue.stats().stored, 0);
    let spool_file = spool.join(format!("{id}.wav"));
    assert_eq!(sha(&std::fs::read(&spool_file).unwrap()), sha(&bytes));

    std::fs::remove_file(&filler).unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(20), done)
        .await
        .expect("ingest resumed")
        .unwrap()
        .unwrap();
    assert!(
        matches!(outcome, IngestOutcome::Stored { .. }),
        "{outcome:?}"
    );
    worker.shutdown_async().await;
    let mut store = Store::open(&data).unwrap();
    assert!(store.verify(&Default::default()).unwrap().is_clean());
}

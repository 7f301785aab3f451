//! The async side: the ingest worker and the handle the daemon and the API use.

mod support;

use callrec_store::{Access, IngestConfig, IngestJob, IngestOutcome, SearchQuery, StoreHandle};
use support::Fixture;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_ingests_in_batches_and_reports_each_outcome() {
    let mut f = Fixture::new();
    let alice = f.user("1001");
    let mut ids = Vec::new();
    for _ in 0..40 {
        let id = f.start(&alice, "1001", "02077456456");
        f.write_spool(&id, 200);
        ids.push(id);
    }
    let empty = f.start(&alice, "1001", "02077456456");
    std::fs::write(f.spool_path(&empty), callrec_testkit::wav::empty()).unwrap();
    let dir = f.dir;
    let handle = StoreHandle::new(f.store);
    let worker = handle
        .start_ingest_worker(IngestConfig {
            batch: 16,
            ..IngestConfig::default()
        })
        .unwrap();
    let queue = worker.queue();
    let waits: Vec<_> = ids
        .iter()
        .chain([&empty])
        .map(|id| queue.submit(IngestJob::new(id.clone())).unwrap())
        .collect();
    // The same job twice is harmless.
    let twice = queue.submit(IngestJob::new(ids[0].clone())).unwrap();
    let mut stored = 0;
    for w in waits {
        match w.await.unwrap().unwrap() {
            IngestOutcome::Stored { .. } => stored += 1,
            IngestOutcome::Failed { reason, .. } => assert!(reason.contains("no audio")),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(stored, 40);
    assert!(matches!(
        twice.await.unwrap().unwrap(),
        IngestOutcome::AlreadyDone { .. }
    ));
    let stats = queue.stats();
    assert_eq!(
        (stats.stored, stats.failed_recordings, stats.already_done),
        (40, 1, 1)
    );
    assert_eq!((stats.queued, stats.retrying), (0, 0));
    assert!(stats.last_error.is_none());

    // An unknown recording is a permanent error, reported, not retried.
    let unknown = queue
        .submit(IngestJob::new(callrec_model::RecordingId::new()))
        .unwrap();
    assert!(matches!(
        unknown.await.unwrap(),
        Err(callrec_store::StoreError::UnknownRecording(_))
    ));
    assert_eq!(queue.stats().errors_permanent, 1);

    let page = handle
        .read(|v| {
            v.search(
                &Access::system("t"),
                &SearchQuery {
                    limit: Some(500),
                    ..Default::default()
                },
            )
        })
        .await
        .unwrap();
    assert_eq!(page.items.len(), 41);
    worker.shutdown_async().await;
    assert!(
        queue.submit(IngestJob::new(ids[1].clone())).is_err(),
        "a stopped worker says so"
    );
    drop(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_what_was_submitted() {
    let mut f = Fixture::new();
    let alice = f.user("1001");
    let mut ids = Vec::new();
    for _ in 0..30 {
        let id = f.start(&alice, "1001", "02077456456");
        f.write_spool(&id, 200);
        ids.push(id);
    }
    let data = f.data_dir();
    let handle = StoreHandle::new(f.store);
    let worker = handle.start_ingest_worker(IngestConfig::default()).unwrap();
    let queue = worker.queue();
    for id in &ids {
        // Nobody waits for these: the daemon is stopping.
        drop(queue.submit(IngestJob::new(id.clone())).unwrap());
    }
    worker.shutdown_async().await;
    assert_eq!(queue.stats().stored, 30);
    let store = callrec_store::Store::open(&data).unwrap();
    assert!(store.view().recordings_in_progress().unwrap().is_empty());
    drop(f.dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_do_not_wait_for_a_busy_writer() {
    let mut f = Fixture::new();
    let alice = f.user("1001");
    f.recording(&alice, "1001", "02077456456", 200);
    let handle = StoreHandle::new(f.store);
    // Another thread holds the writer (as a long transaction would); read meanwhile.
    let writer = handle.writer();
    let (held_tx, held_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let _guard = writer.lock().unwrap();
        held_tx.send(()).unwrap();
        let _ = release_rx.recv();
    });
    held_rx.recv().unwrap();
    let users = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        handle.read(|v| v.users(None)),
    )
    .await
    .expect("a read finished while the writer was held")
    .unwrap();
    assert_eq!(users.len(), 1);
    release_tx.send(()).unwrap();
    holder.join().unwrap();
    let v = handle.read(|v| v.directory_version()).await.unwrap();
    assert!(v > 0);
    drop(f.dir);
}

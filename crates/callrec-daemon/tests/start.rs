//! What the daemon does when it starts, before it takes new work: it finishes what a crash of
//! the last run left in the store (an ingest cut short, a deleted recording's file still on
//! disk, a temporary copy), even with the switch down.

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use callrec_daemon::metrics::Metrics;
use callrec_model::NewRecording;
use callrec_model::{Direction, RecordingId, RecordingMode, RecordingState};
use callrec_sim::{SimConfig, Simulator};
use callrec_store::{Access, IngestJob, IngestOutcome, NewUser, Store};
use callrec_testkit::wav;
use chrono::{Duration as Span, Utc};
use support::{Bed, Setup};

/// A spool file with `secs` of audio.
fn spool_wav(spool: &Path, id: &RecordingId, secs: u32) -> PathBuf {
    let path = spool.join(format!("{id}.wav"));
    std::fs::write(&path, wav::noise(secs * 1000, 1)).unwrap();
    path
}

fn new_recording(store: &Store, spool: &Path, ext: &str) -> NewRecording {
    let user = store.view().user("default", ext).unwrap();
    let id = RecordingId::new();
    NewRecording {
        spool_path: spool_wav(spool, &id, 5),
        id,
        user: user.id,
        call_uuid: uuid(),
        direction: Direction::Inbound,
        from: "02079460000".into(),
        to: ext.into(),
        started_at: Utc::now() - Span::seconds(30),
        format: "wav".into(),
    }
}

fn uuid() -> String {
    RecordingId::new().to_string()
}

/// What the last run left behind, built as a crash would have left it.
struct Leftovers {
    /// Its ingest was under way (`ended_at` set, the row still `recording`) when the process
    /// died.
    interrupted: RecordingId,
    /// A deleted recording whose file is still in the store (the deletion committed, the
    /// process died before removing the file).
    tombstone_file: PathBuf,
    /// A copy into the store cut short midway.
    temp_copy: PathBuf,
    /// A file no row knows: reported, never deleted.
    stray: PathBuf,
}

fn leave_a_crashed_store(data: &Path, spool: &Path) -> Leftovers {
    std::fs::create_dir_all(spool).unwrap();
    let mut store = Store::open(data).unwrap();
    store
        .add_user(&NewUser::new("default", "1001"), "test")
        .unwrap();

    // A recording stored, then deleted; its file comes back as if its removal never ran.
    let new = new_recording(&store, spool, "1001");
    store.create_recording(&new, "test").unwrap();
    let IngestOutcome::Stored { path, .. } = store.ingest(&IngestJob::new(new.id.clone())).unwrap()
    else {
        panic!("stored");
    };
    let kept = std::fs::read(&path).unwrap();
    store
        .delete_recording(&new.id, &Access::system("test"), "test")
        .unwrap();
    assert!(!path.exists());
    std::fs::write(&path, &kept).unwrap();
    let store_dir = path.parent().unwrap().to_path_buf();

    // An ingest under way: phase 1 (`ended_at` set) committed, the process died before the
    // file was moved. The store's own code is the only writer of that column, so the state
    // is set directly, as the crash would have left it.
    let interrupted = new_recording(&store, spool, "1001");
    store.create_recording(&interrupted, "test").unwrap();
    drop(store);
    let db = rusqlite::Connection::open(data.join("index.db")).unwrap();
    let changed = db
        .execute(
            "UPDATE recordings SET ended_at = ?1 WHERE id = ?2 AND state = 'recording'",
            rusqlite::params![Utc::now().timestamp_millis(), interrupted.id.as_str()],
        )
        .unwrap();
    assert_eq!(changed, 1);
    drop(db);

    let temp_copy = store_dir.join(".half-copied.wav.tmp");
    std::fs::write(&temp_copy, &kept[..100]).unwrap();
    let stray = store_dir.join("put-here-by-hand.wav");
    std::fs::write(&stray, &kept).unwrap();
    Leftovers {
        interrupted: interrupted.id,
        tombstone_file: path,
        temp_copy,
        stray,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_start_the_store_is_reconciled_even_with_the_switch_down() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let left = leave_a_crashed_store(&dir.path().join("data"), &spool);

    // The switch is down: nothing the daemon learns from it can be what repairs the store.
    let sim = Simulator::start(SimConfig {
        spool_dir: spool.clone(),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut setup = Setup::users(&[]);
    setup.esl_port = Some(port);
    let bed = Bed::start_unconnected(setup, Some((Arc::new(sim), dir, spool))).await;
    assert!(!bed.handle.readiness().esl_connected);

    let interrupted = bed
        .recordings()
        .await
        .into_iter()
        .find(|r| r.id == left.interrupted)
        .expect("the interrupted recording is in the index");
    assert_eq!(interrupted.state, RecordingState::Stored, "{interrupted:?}");
    assert!(
        !left.tombstone_file.exists(),
        "the deleted recording's file is removed"
    );
    assert!(!left.temp_copy.exists(), "the half copy is removed");
    assert!(left.stray.exists(), "a file no row knows is left alone");

    let m = bed.handle.metrics();
    assert_eq!(
        Metrics::count(&m.store_repairs, "kind", "ingest_finished"),
        1
    );
    assert_eq!(Metrics::count(&m.store_repairs, "kind", "file_removed"), 1);
    assert_eq!(
        Metrics::count(&m.store_repairs, "kind", "temp_file_removed"),
        1
    );
    assert_eq!(
        Metrics::count(&m.store_reconcile_problems, "kind", "unindexed_file"),
        1
    );
    let text = bed.handle.metrics_text();
    assert!(
        text.contains("callrec_store_repairs_total{kind=\"temp_file_removed\"} 1"),
        "{text}"
    );
    bed.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_store_reports_no_repairs() {
    let bed = Bed::start(Setup::users(&[("1001", RecordingMode::Always)])).await;
    let text = bed.handle.metrics_text();
    assert!(!text.contains("callrec_store_repairs_total{"), "{text}");
    bed.stop().await.unwrap();
}

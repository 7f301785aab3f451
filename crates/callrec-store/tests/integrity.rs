//! Integrity (SPEC §4.5) and the reconcile pass: verify catches what changed behind the
//! store's back, and reconcile finishes what a crash left half-done.

mod support;

use callrec_model::RecordingState;
use callrec_store::{Access, IngestOutcome, ReconcileOptions, SweepOptions, VerifyOptions};
use support::{Fixture, files_under};

fn stored_file(f: &mut Fixture, id: &callrec_model::RecordingId) -> std::path::PathBuf {
    f.store
        .open_file(
            id,
            &Access::system("t"),
            callrec_store::FilePurpose::Archive,
        )
        .unwrap()
        .path
}

#[test]
fn verify_is_clean_on_an_untouched_store() {
    let mut f = Fixture::new();
    let alice = f.user("1001");
    for _ in 0..3 {
        f.recording(&alice, "1001", "02077456456", 300);
    }
    let report = f.store.verify(&VerifyOptions::default()).unwrap();
    assert!(report.is_clean(), "{report}");
    assert_eq!((report.files_checked, report.files_ok), (3, 3));
    // One user added, then per recording: created, started, stored.
    assert_eq!(report.audit_entries, 1 + 3 * 3);
    assert!(report.to_string().ends_with("OK"));
}

#[test]
fn verify_catches_a_flipped_byte_a_deleted_file_and_an_edited_audit_entry() {
    let mut f = Fixture::new();
    let alice = f.user("1001");
    let a = f.recording(&alice, "1001", "02077456456", 300);
    let b = f.recording(&alice, "1001", "02077456456", 300);
    f.recording(&alice, "1001", "02077456456", 300);

    let path_a = stored_file(&mut f, &a.id);
    let mut bytes = std::fs::read(&path_a).unwrap();
    bytes[100] ^= 0x01;
    std::fs::write(&path_a, &bytes).unwrap();
    let path_b = stored_file(&mut f, &b.id);
    std::fs::remove_file(&path_b).unwrap();

    // A tamperer with write access to the index edits history, going around the triggers
    // that stop the product itself from doing so.
    let conn = rusqlite::Connection::open(f.data_dir().join("index.db")).unwrap();
    conn.execute_batch(
        "DROP TRIGGER audit_log_no_update;
         UPDATE audit_log SET actor = 'nobody' WHERE action = 'recording.create' AND seq =
             (SELECT MIN(seq) FROM audit_log WHERE action = 'recording.create');",
    )
    .unwrap();
    drop(conn);

    let report = f.store.verify(&VerifyOptions::default()).unwrap();
    assert!(!report.is_clean());
    assert_eq!(report.files_checked, 3);
    assert_eq!(report.files_ok, 1);
    assert_eq!(report.altered.len(), 1);
    assert_eq!(report.altered[0].id, a.id);
    assert_eq!(report.altered[0].problem, "content changed (same size)");
    assert_eq!(report.missing.len(), 1);
    assert_eq!(report.missing[0].id, b.id);
    assert_eq!(report.audit_breaks.len(), 1, "{:?}", report.audit_breaks);
    assert!(report.audit_breaks[0].problem.contains("altered"));
    let text = report.to_string();
    assert!(
        text.contains(&format!("ALTERED  {}", path_a.display())),
        "{text}"
    );
    assert!(
        text.contains(&format!("MISSING  {}", path_b.display())),
        "{text}"
    );
    assert!(text.ends_with("3 problem(s) found"), "{text}");
}

#[test]
fn verify_catches_audit_entries_cut_from_the_end_of_the_log() {
    // The chain links each entry to the one before, so entries cut from its end leave an
    // intact, shorter chain. Someone hiding a deletion cuts exactly there; the index still
    // holds the tombstone the missing entry described.
    let mut f = Fixture::new();
    let alice = f.user("1001");
    let kept = f.recording(&alice, "1001", "02077456456", 300);
    let gone = f.recording(&alice, "1001", "02077456456", 300);
    f.store
        .delete_recording(&gone.id, &Access::system("admin"), "asked")
        .unwrap();
    assert!(
        f.store
            .verify(&VerifyOptions::default())
            .unwrap()
            .is_clean()
    );

    let conn = rusqlite::Connection::open(f.data_dir().join("index.db")).unwrap();
    conn.execute_batch(
        "DROP TRIGGER audit_log_no_delete;
         DELETE FROM audit_log WHERE seq >=
             (SELECT seq FROM audit_log WHERE action = 'recording.delete');",
    )
    .unwrap();
    let report = f.store.verify(&VerifyOptions::default()).unwrap();
    assert!(!report.is_clean(), "{report}");
    assert_eq!(report.audit_breaks.len(), 1, "{:?}", report.audit_breaks);
    assert!(
        report.audit_breaks[0]
            .problem
            .contains(&gone.id.to_string()),
        "{:?}",
        report.audit_breaks
    );

    // The whole log emptied: every recording lost the entry of its creation.
    conn.execute_batch("DELETE FROM audit_log").unwrap();
    drop(conn);
    let report = f.store.verify(&VerifyOptions::default()).unwrap();
    assert!(!report.is_clean(), "{report}");
    let problems: Vec<&str> = report
        .audit_breaks
        .iter()
        .map(|b| b.problem.as_str())
        .collect();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems.iter().any(|p| p.contains(&kept.id.to_string())),
        "{problems:?}"
    );
}

#[test]
fn the_product_cannot_rewrite_the_audit_log() {
    let f = Fixture::new();
    let conn = rusqlite::Connection::open(f.data_dir().join("index.db")).unwrap();
    conn.execute(
        "INSERT INTO audit_log (seq, at, actor, action, target, detail, prev_hash, hash)
         VALUES (1000, 0, 'x', 'y', 'z', '{}', '', '')",
        [],
    )
    .unwrap();
    let err = conn.execute("DELETE FROM audit_log", []).unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    let err = conn
        .execute("UPDATE audit_log SET actor = 'y'", [])
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
}

#[test]
fn reconcile_finishes_an_ingest_killed_between_rename_and_commit() {
    let mut f = Fixture::new();
    let alice = f.user("1001");
    let id = f.start(&alice, "1001", "02077456456");
    let bytes = f.write_spool(&id, 400);
    // The first two phases ran (ended_at set, file renamed into the store); the commit did
    // not. That is what a kill -9 at that instant leaves.
    let conn = rusqlite::Connection::open(f.data_dir().join("index.db")).unwrap();
    let (store_path,): (String,) = conn
        .query_row(
            "UPDATE recordings SET ended_at = started_at + 1000 WHERE id = ?1 RETURNING store_path",
            [id.as_str()],
            |r| Ok((r.get(0)?,)),
        )
        .unwrap();
    drop(conn);
    let dest = f.data_dir().join("store").join(&store_path);
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    std::fs::rename(f.spool_path(&id), &dest).unwrap();

    f.reopen();
    let report = f.store.reconcile(&ReconcileOptions::default()).unwrap();
    assert_eq!(report.ingests_finished.len(), 1);
    assert!(matches!(
        report.ingests_finished[0],
        IngestOutcome::Stored { .. }
    ));
    let rec = f.store.view().recording(&id, &Access::system("t")).unwrap();
    assert_eq!(rec.state, RecordingState::Stored);
    assert_eq!(std::fs::read(&dest).unwrap(), bytes);
    assert!(
        f.store
            .verify(&VerifyOptions::default())
            .unwrap()
            .is_clean()
    );
}

#[test]
fn reconcile_leaves_running_recordings_to_the_daemon() {
    let mut f = Fixture::new();
    let alice = f.user("1001");
    let id = f.start(&alice, "1001", "02077456456");
    f.write_spool(&id, 400); // still being written, as far as the store knows
    let report = f.store.reconcile(&ReconcileOptions::default()).unwrap();
    assert_eq!(report.awaiting_daemon, 1);
    assert!(report.ingests_finished.is_empty());
    assert!(f.spool_path(&id).exists());
}

#[test]
fn reconcile_removes_leftovers_and_reports_unknown_files_without_touching_them() {
    let mut f = Fixture::new();
    let alice = f.user("1001");
    let kept = f.recording(&alice, "1001", "02077456456", 300);
    let swept = f.recording(&alice, "1001", "02077456456", 300);
    let swept_path = stored_file(&mut f, &swept.id);
    let swept_bytes = std::fs::read(&swept_path).unwrap();
    f.store
        .delete_recording(&swept.id, &Access::system("admin"), "test")
        .unwrap();
    // A kill after the deletion committed and before the file went: put the file back.
    std::fs::write(&swept_path, &swept_bytes).unwrap();
    let dir = swept_path.parent().unwrap();
    std::fs::write(dir.join(".half-copied.wav.tmp"), b"partial").unwrap();
    std::fs::write(dir.join("dropped-in-by-hand.wav"), b"who knows").unwrap();

    let report = f
        .store
        .reconcile(&ReconcileOptions { walk_store: true })
        .unwrap();
    assert_eq!(report.files_removed, 1);
    assert_eq!(report.temp_files_removed, 1);
    assert_eq!(
        report.unindexed_files,
        vec![dir.join("dropped-in-by-hand.wav")]
    );
    assert!(!swept_path.exists());
    assert!(dir.join("dropped-in-by-hand.wav").exists());
    assert!(stored_file(&mut f, &kept.id).exists());

    let verify = f.store.verify(&VerifyOptions::default()).unwrap();
    assert_eq!(verify.unindexed, vec![dir.join("dropped-in-by-hand.wav")]);
    assert_eq!(verify.problem_count(), 1);
}

#[test]
fn a_pending_removal_left_by_a_crash_is_finished_at_the_next_start() {
    let mut f = Fixture::new();
    f.store
        .update_site(
            "default",
            &callrec_store::SiteUpdate {
                retention_days: Some(1),
                ..Default::default()
            },
            "t",
        )
        .unwrap();
    let alice = f.user("1001");
    let rec = f.recording(&alice, "1001", "02077456456", 300);
    let path = stored_file(&mut f, &rec.id);
    let bytes = std::fs::read(&path).unwrap();
    f.clock.advance(chrono::Duration::days(2));
    f.store.sweep(&SweepOptions::default()).unwrap();
    // Simulate the kill between commit and unlink: the file is back and still pending.
    std::fs::write(&path, &bytes).unwrap();
    let conn = rusqlite::Connection::open(f.data_dir().join("index.db")).unwrap();
    conn.execute(
        "INSERT INTO pending_removals (path, reason) VALUES (?1, 'retention: expired')",
        [path.to_string_lossy()],
    )
    .unwrap();
    drop(conn);
    f.reopen();
    let report = f.store.reconcile(&ReconcileOptions::default()).unwrap();
    assert_eq!(report.files_removed, 1);
    assert!(!path.exists());
    assert!(files_under(&f.data_dir().join("store")).is_empty());
}

#[test]
fn a_pending_removal_that_fails_does_not_stop_reconcile_finishing_the_rest() {
    let mut f = Fixture::new();
    let alice = f.user("1001");
    // An ingest killed between rename and commit, as in the test above.
    let id = f.start(&alice, "1001", "02077456456");
    f.write_spool(&id, 400);
    let conn = rusqlite::Connection::open(f.data_dir().join("index.db")).unwrap();
    let store_path: String = conn
        .query_row(
            "UPDATE recordings SET ended_at = started_at + 1000 WHERE id = ?1 RETURNING store_path",
            [id.as_str()],
            |r| r.get(0),
        )
        .unwrap();
    let dest = f.data_dir().join("store").join(&store_path);
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    std::fs::rename(f.spool_path(&id), &dest).unwrap();
    // Two committed removals: one path cannot be unlinked (a directory holds it), the other
    // is an ordinary leftover file.
    let stuck = f.dir.path().join("stuck");
    std::fs::create_dir(&stuck).unwrap();
    let leftover = f.dir.path().join("leftover.wav");
    std::fs::write(&leftover, b"old audio").unwrap();
    for path in [&stuck, &leftover] {
        conn.execute(
            "INSERT INTO pending_removals (path, reason) VALUES (?1, 'retention: expired')",
            [path.to_string_lossy()],
        )
        .unwrap();
    }

    f.reopen();
    let report = f.store.reconcile(&ReconcileOptions::default()).unwrap();
    assert_eq!(report.ingests_finished.len(), 1, "{report:?}");
    assert_eq!(state_of(&f, &id), RecordingState::Stored);
    assert_eq!(report.files_removed, 1);
    assert!(!leftover.exists());
    let pending: Vec<String> = conn
        .prepare("SELECT path FROM pending_removals")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(pending, vec![stuck.to_string_lossy().into_owned()]);
}

fn state_of(f: &Fixture, id: &callrec_model::RecordingId) -> RecordingState {
    f.store
        .view()
        .recording(id, &Access::system("t"))
        .unwrap()
        .state
}

#[test]
fn verify_compares_the_index_hash_with_the_one_ingest_wrote_to_the_audit_log() {
    // The adversarial trial: a stored file and `recordings.sha256` rewritten together passed.
    let mut f = Fixture::new();
    let alice = f.user("1001");
    let a = f.recording(&alice, "1001", "02077456456", 300);
    f.recording(&alice, "1001", "02077456456", 300);
    let path = stored_file(&mut f, &a.id);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[100] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    let forged = {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(&bytes))
    };
    let conn = rusqlite::Connection::open(f.data_dir().join("index.db")).unwrap();
    conn.execute(
        "UPDATE recordings SET sha256 = ?1 WHERE id = ?2",
        rusqlite::params![forged, a.id.to_string()],
    )
    .unwrap();
    drop(conn);

    let report = f.store.verify(&VerifyOptions::default()).unwrap();
    assert_eq!(report.files_ok, 1, "{report}");
    assert_eq!(report.altered.len(), 1, "{report}");
    assert_eq!(report.altered[0].id, a.id);
    assert!(
        report.altered[0].problem.contains("audit log"),
        "{}",
        report.altered[0].problem
    );
    assert_eq!(
        report.altered[0].actual_sha256.as_deref(),
        Some(forged.as_str())
    );
}

#[test]
fn a_chain_head_saved_elsewhere_finds_a_tail_cut_with_the_trigger_dropped() {
    // The adversarial trial: the newest entries deleted (after dropping the trigger) left an
    // intact, shorter chain that passed. A head saved away from the index does not.
    let mut f = Fixture::new();
    let alice = f.user("1001");
    f.recording(&alice, "1001", "02077456456", 300);
    f.user("1002");
    let saved = f.store.audit_head().unwrap().expect("entries");
    let printed: callrec_store::ChainHead = saved.to_string().parse().unwrap();
    assert_eq!(printed, saved);
    let with_head = VerifyOptions {
        saved_heads: vec![saved.clone()],
        ..VerifyOptions::default()
    };

    // Cut the tail: the entry of the user added last (no recording vouches for it) and
    // everything after it.
    let conn = rusqlite::Connection::open(f.data_dir().join("index.db")).unwrap();
    conn.execute_batch(&format!(
        "DROP TRIGGER audit_log_no_delete; DELETE FROM audit_log WHERE seq >= {};",
        saved.seq
    ))
    .unwrap();
    drop(conn);
    let report = f.store.verify(&with_head).unwrap();
    assert_eq!(report.audit_breaks.len(), 1, "{report}");
    assert!(
        report.audit_breaks[0].problem.contains("cut from its end"),
        "{report}"
    );
    // Without the saved head the shorter chain looks whole: why the head is kept elsewhere.
    let without = f.store.verify(&VerifyOptions::default()).unwrap();
    assert!(without.is_clean(), "{without}");
    // The log now has a different entry at that seq (verify's own): still caught.
    let report = f.store.verify(&with_head).unwrap();
    assert!(
        report.audit_breaks[0].problem.contains("rewritten"),
        "{report}"
    );
    assert!("12 zz".parse::<callrec_store::ChainHead>().is_err());
}

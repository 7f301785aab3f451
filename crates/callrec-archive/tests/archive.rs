//! The archive client against a real callrec API server in this process (issue 11): a
//! first pull and a rerun, a download cut mid-file, a byte flipped on the wire, deletions
//! and holds on the server, a user's token, a full destination disk, and the schedule.

mod support;

use std::collections::BTreeMap;
use std::path::Path;

use callrec_archive::state::{self, STATE_DIR};
use callrec_archive::{ArchiveError, ManualTimer, Schedule, SystemTimer, run_once, run_scheduled};
use callrec_store::Access;
use serde_json::Value;
use support::{Fault, FaultProxy, Site, archived_files, t0};

/// The archived audio files (not the sidecars), by recording id.
fn audio_by_id(dest: &Path) -> BTreeMap<String, String> {
    archived_files(dest)
        .into_iter()
        .filter(|f| f.ends_with(".wav"))
        .map(|f| {
            let id = f.rsplit('-').take(5).collect::<Vec<_>>();
            let id: Vec<&str> = id.into_iter().rev().collect();
            (id.join("-").trim_end_matches(".wav").to_owned(), f)
        })
        .collect()
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_pull_archives_every_recording_verified_and_a_rerun_downloads_nothing() {
    let mut site = Site::start().await;
    let alice = site.alice.user.clone();
    let bob = site.bob.user.clone();
    let mut recs = site.record(&alice, 2500, t0(), 100);
    recs.extend(site.record(&bob, 500, t0(), 100));
    let proxy = FaultProxy::start(site.addr).await;
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("archive");
    let config = site.config(&site.admin, &proxy.url(), &dest);

    let first = run_once(&config, &SystemTimer).await.unwrap();
    assert_eq!(first.downloaded.len(), 3000);
    assert!(first.failed.is_empty(), "{:?}", first.failed);
    let files = audio_by_id(&dest);
    assert_eq!(files.len(), 3000);
    for rec in &recs {
        let name = files
            .get(rec.id.as_str())
            .unwrap_or_else(|| panic!("{} not archived", rec.id));
        let bytes = std::fs::read(dest.join(name)).unwrap();
        assert_eq!(Some(sha256(&bytes)), rec.sha256, "{name}");
        // The seed convention in date folders, in the site's zone (London, BST in May).
        let local = rec.started_at.with_timezone(&chrono_tz::Tz::Europe__London);
        let expected_prefix = format!(
            "{}/{}-{}-",
            local.format("%Y/%m/%d"),
            local.format("%Y%m%d%H%M%S"),
            rec.from.raw
        );
        assert!(
            name.starts_with(&expected_prefix),
            "{name} vs {expected_prefix}"
        );
        // The sidecar: metadata, segments, notes.
        let sidecar: Value =
            serde_json::from_slice(&std::fs::read(dest.join(format!("{name}.json"))).unwrap())
                .unwrap();
        assert_eq!(sidecar["id"], rec.id.as_str());
        assert_eq!(sidecar["sha256"].as_str(), rec.sha256.as_deref());
        assert!(
            sidecar["segments"]
                .as_array()
                .is_some_and(|s| !s.is_empty())
        );
        assert!(sidecar["notes"].is_array());
    }
    assert!(
        !archived_files(&dest).iter().any(|f| f.ends_with(".part")),
        "no .part left"
    );
    // The manifest of the run, and the state.
    let runs: Vec<_> = std::fs::read_dir(dest.join(STATE_DIR).join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(runs.len(), 1);
    let manifest: Value = serde_json::from_slice(&std::fs::read(&runs[0]).unwrap()).unwrap();
    assert_eq!(manifest["downloaded"].as_array().unwrap().len(), 3000);
    let listed = &manifest["downloaded"][0];
    let rec = recs.iter().find(|r| r.id.as_str() == listed["id"]).unwrap();
    assert_eq!(listed["sha256"].as_str(), rec.sha256.as_deref());
    assert_eq!(listed["size_bytes"].as_u64(), rec.size_bytes);
    let saved = state::load(&dest).unwrap().unwrap();
    assert_eq!(saved.last_seq, first.last_seq);
    assert!(saved.last_seq > 0);

    // A rerun: nothing new, so no audio is asked for.
    proxy.clear_requests();
    let second = run_once(&config, &SystemTimer).await.unwrap();
    assert!(second.downloaded.is_empty());
    assert_eq!(second.from_seq, first.last_seq);
    let audio_requests: Vec<_> = proxy
        .requests()
        .into_iter()
        .filter(|r| r.contains("/audio"))
        .collect();
    assert!(audio_requests.is_empty(), "{audio_requests:?}");
    assert_eq!(audio_by_id(&dest).len(), 3000);

    // Both runs were reported; the admin sees the client.
    let admin = site.admin.user.clone();
    let clients = site
        .store
        .read(move |v| v.archive_clients(admin.site_id))
        .await
        .unwrap();
    assert_eq!(clients.len(), 1);
    assert_eq!(clients[0].client, "test-archive");
    assert_eq!(clients[0].runs, 2);
    assert_eq!(clients[0].last_run.downloaded, 0);
    assert_eq!(clients[0].last_run.last_seq, first.last_seq);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_cut_mid_file_resumes_from_its_part_and_matches_the_hash() {
    let mut site = Site::start().await;
    let alice = site.alice.user.clone();
    let recs = site.record(&alice, 3, t0(), 2000); // 32 KB of audio each
    let target = recs[1].clone();
    let proxy = FaultProxy::start(site.addr).await;
    proxy.add_fault(
        &format!("/recordings/{}/audio", target.id),
        Fault::CutAfter(10_000),
        1,
    );
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("a");
    let mut config = site.config(&site.alice, &proxy.url(), &dest);
    config.concurrency = 1;

    let summary = run_once(&config, &SystemTimer).await.unwrap();
    assert_eq!(proxy.faults_applied(), 1);
    assert_eq!(summary.downloaded.len(), 3);
    assert!(summary.failed.is_empty());
    // The second request for it asked only for what was missing.
    let asked: Vec<_> = proxy
        .requests()
        .into_iter()
        .filter(|r| r.contains(&format!("{}/audio", target.id)))
        .collect();
    assert_eq!(asked.len(), 2, "{asked:?}");
    assert!(!asked[0].contains("range:"), "{asked:?}");
    assert!(asked[1].ends_with("range: bytes=10000-"), "{asked:?}");
    let name = &audio_by_id(&dest)[target.id.as_str()];
    let bytes = std::fs::read(dest.join(name)).unwrap();
    assert_eq!(bytes, site.stored_bytes(&target));
    // Exactly the files' bytes came over the wire: the cut file's first 10,000 were not
    // fetched twice.
    assert_eq!(
        summary.bytes,
        recs.iter().map(|r| r.size_bytes.unwrap()).sum::<u64>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_part_left_by_a_killed_run_is_resumed_not_started_over() {
    let mut site = Site::start().await;
    let alice = site.alice.user.clone();
    let rec = site.record(&alice, 1, t0(), 2000).remove(0);
    let bytes = site.stored_bytes(&rec);
    let proxy = FaultProxy::start(site.addr).await;
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("a");
    let config = site.config(&site.alice, &proxy.url(), &dest);
    // What a run killed mid-file leaves: the first 12,345 bytes in NAME.part.
    let dry = {
        let mut c = config.clone();
        c.dry_run = true;
        run_once(&c, &SystemTimer).await.unwrap()
    };
    assert!(!dest.exists(), "a dry run writes nothing");
    let name = &dry.downloaded[0].name;
    let part = dest.join(format!("{name}.part"));
    std::fs::create_dir_all(part.parent().unwrap()).unwrap();
    std::fs::write(&part, &bytes[..12_345]).unwrap();

    let summary = run_once(&config, &SystemTimer).await.unwrap();
    assert_eq!(summary.downloaded.len(), 1);
    assert_eq!(summary.bytes, bytes.len() as u64 - 12_345);
    assert!(
        proxy
            .requests()
            .iter()
            .any(|r| r.ends_with("range: bytes=12345-"))
    );
    assert_eq!(std::fs::read(dest.join(name)).unwrap(), bytes);
    assert!(!part.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_byte_on_the_wire_is_caught_retried_and_reported_if_it_persists() {
    let mut site = Site::start().await;
    let alice = site.alice.user.clone();
    let recs = site.record(&alice, 3, t0(), 500);
    let (once, always) = (recs[0].clone(), recs[2].clone());
    let proxy = FaultProxy::start(site.addr).await;
    proxy.add_fault(
        &format!("/recordings/{}/audio", once.id),
        Fault::FlipByte(100),
        1,
    );
    proxy.add_fault(
        &format!("/recordings/{}/audio", always.id),
        Fault::FlipByte(7),
        100,
    );
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("a");
    let config = site.config(&site.alice, &proxy.url(), &dest);

    let summary = run_once(&config, &SystemTimer).await.unwrap();
    // One flipped byte: caught, fetched again, kept. Always flipped: reported, nothing kept.
    assert_eq!(summary.downloaded.len(), 2);
    assert_eq!(summary.failed.len(), 1);
    assert_eq!(summary.failed[0].id, always.id.as_str());
    assert!(
        summary.failed[0].error.contains("SHA-256 mismatch"),
        "{:?}",
        summary.failed
    );
    let files = audio_by_id(&dest);
    assert_eq!(
        std::fs::read(dest.join(&files[once.id.as_str()])).unwrap(),
        site.stored_bytes(&once)
    );
    assert!(!files.contains_key(always.id.as_str()));
    // Neither its audio nor its sidecar (staged while the audio downloaded) is left behind.
    let left = archived_files(&dest);
    assert!(
        !left
            .iter()
            .any(|f| f.ends_with(".part") || f.ends_with(".tmp") || f.contains(always.id.as_str())),
        "{left:?}"
    );
    assert_eq!(proxy.faults_applied(), 1 + 3);
    // Queued for the next run, and reported to the server.
    let saved = state::load(&dest).unwrap().unwrap();
    assert!(saved.pending.contains(always.id.as_str()));
    let admin = site.admin.user.clone();
    let clients = site
        .store
        .read(move |v| v.archive_clients(admin.site_id))
        .await
        .unwrap();
    assert_eq!(clients[0].last_run.failed, 1);
    assert!(clients[0].last_run.errors[0].contains(always.id.as_str()));

    // Once the wire is clean, the next run fetches it.
    proxy.clear_faults();
    let next = run_once(&config, &SystemTimer).await.unwrap();
    assert_eq!(next.downloaded.len(), 1);
    assert_eq!(next.downloaded[0].id, always.id.as_str());
    assert!(state::load(&dest).unwrap().unwrap().pending.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recordings_deleted_or_held_on_the_server_leave_local_files_alone() {
    let mut site = Site::start().await;
    let alice = site.alice.user.clone();
    let recs = site.record(&alice, 4, t0(), 300);
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("a");
    let config = site.config(&site.admin, &site.url(), &dest);
    run_once(&config, &SystemTimer).await.unwrap();
    let snapshot = |dest: &Path| -> BTreeMap<String, Vec<u8>> {
        archived_files(dest)
            .into_iter()
            .map(|f| {
                let bytes = std::fs::read(dest.join(&f)).unwrap();
                (f, bytes)
            })
            .collect()
    };
    let before = snapshot(&dest);
    assert_eq!(before.len(), 8); // four recordings and their sidecars

    let (deleted, held) = (recs[0].id.clone(), recs[1].id.clone());
    let noted = recs[2].id.clone();
    site.store
        .write(move |s| {
            let admin = Access::system("admin");
            s.delete_recording(&deleted, &admin, "asked")?;
            s.set_hold(&held, &admin, true)?;
            s.add_note(&noted, &admin, "called back")?;
            Ok(())
        })
        .await
        .unwrap();
    let new = site.record(&alice, 1, t0() + chrono::Duration::days(1), 300);

    let summary = run_once(&config, &SystemTimer).await.unwrap();
    assert_eq!(summary.downloaded.len(), 1);
    assert_eq!(summary.downloaded[0].id, new[0].id.as_str());
    let after = snapshot(&dest);
    assert_eq!(after.len(), 10);
    for (name, bytes) in &before {
        assert_eq!(
            after.get(name),
            Some(bytes),
            "{name} was changed or removed"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_token_archives_only_that_users_recordings() {
    let mut site = Site::start().await;
    let (alice, bob) = (site.alice.user.clone(), site.bob.user.clone());
    let alices = site.record(&alice, 5, t0(), 200);
    let bobs = site.record(&bob, 4, t0(), 200);
    let out = tempfile::tempdir().unwrap();
    let bob_dest = out.path().join("bob");
    let summary = run_once(
        &site.config(&site.bob, &site.url(), &bob_dest),
        &SystemTimer,
    )
    .await
    .unwrap();
    assert_eq!(summary.owner, "1002@default");
    let ids: Vec<String> = audio_by_id(&bob_dest).into_keys().collect();
    let mut expected: Vec<String> = bobs.iter().map(|r| r.id.to_string()).collect();
    expected.sort();
    assert_eq!(ids, expected);
    assert!(!alices.iter().any(|r| ids.contains(&r.id.to_string())));

    // Another token on the same folder is refused: the folder is bob's archive.
    let e = run_once(
        &site.config(&site.alice, &site.url(), &bob_dest),
        &SystemTimer,
    )
    .await
    .unwrap_err();
    assert!(e.is_config(), "{e}");
    assert!(e.to_string().contains("1002@default"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_destination_stops_with_the_path_named_and_resumes_when_space_returns() {
    let mut site = Site::start().await;
    let alice = site.alice.user.clone();
    // 40 recordings of 3 s (48 KB each): about 1.9 MB, on a 1 MB disk.
    let recs = site.record(&alice, 40, t0(), 3000);
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("disk");
    let disk = match callrec_testkit::tmpfs::Tmpfs::mount(&dest, "1m") {
        Ok(d) => d,
        Err(e) => panic!("{e}: this test needs root to mount a small disk (CI runs as root)"),
    };
    let config = site.config(&site.alice, &site.url(), &dest);

    let e = run_once(&config, &SystemTimer).await.unwrap_err();
    assert!(matches!(e, ArchiveError::DiskFull { .. }), "{e}");
    let message = e.to_string();
    assert!(message.contains("the destination is full"), "{message}");
    assert!(message.contains(&dest.display().to_string()), "{message}");
    let kept = audio_by_id(&dest).len();
    assert!(
        kept > 0 && kept < 40,
        "{kept} archived before the disk filled"
    );
    // The state is where the archive stopped, not past it.
    let saved = state::load(&dest).unwrap().unwrap_or_default();
    let head = site
        .store
        .read(|v| v.changes(&Access::system("t"), 0, 1000))
        .await
        .unwrap()
        .last_seq;
    assert!(saved.last_seq < head, "{} < {head}", saved.last_seq);

    disk.resize("8m");
    let summary = run_once(&config, &SystemTimer).await.unwrap();
    assert!(summary.failed.is_empty(), "{:?}", summary.failed);
    let files = audio_by_id(&dest);
    assert_eq!(files.len(), 40);
    for rec in &recs {
        let bytes = std::fs::read(dest.join(&files[rec.id.as_str()])).unwrap();
        assert_eq!(Some(sha256(&bytes)), rec.sha256);
    }
    assert!(!archived_files(&dest).iter().any(|f| f.ends_with(".part")));
    drop(disk);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schedule_runs_twice_on_a_manual_clock() {
    let mut site = Site::start().await;
    let alice = site.alice.user.clone();
    let first_batch = site.record(&alice, 3, t0(), 200);
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("a");
    let mut config = site.config(&site.alice, &site.url(), &dest);
    config.schedule = Schedule::Every(std::time::Duration::from_secs(3600));
    let start = t0() + chrono::Duration::days(10);
    let timer = ManualTimer::new(start);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let (runs_tx, mut runs) = tokio::sync::mpsc::unbounded_channel();
    let looped = {
        let (config, timer, shutdown) = (config.clone(), timer.clone(), shutdown.clone());
        tokio::spawn(async move {
            run_scheduled(&config, &timer, shutdown, |r| {
                let _ = runs_tx.send(
                    r.as_ref()
                        .map(|s| s.downloaded.len())
                        .map_err(|e| e.to_string()),
                );
            })
            .await
        })
    };

    // The first run, then a sleep until an hour after it started.
    assert_eq!(runs.recv().await.unwrap(), Ok(3));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while timer.sleeps_asked().is_empty() {
        assert!(std::time::Instant::now() < deadline, "the loop never slept");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(timer.sleeps_asked(), [start + chrono::Duration::hours(1)]);
    assert_eq!(audio_by_id(&dest).len(), 3);

    // New recordings; nothing happens until the clock reaches the hour.
    let second_batch = site.record(&alice, 2, t0() + chrono::Duration::days(1), 200);
    timer.set(start + chrono::Duration::minutes(59));
    tokio::task::yield_now().await;
    assert!(runs.try_recv().is_err(), "ran before its time");
    timer.set(start + chrono::Duration::hours(1));
    assert_eq!(runs.recv().await.unwrap(), Ok(2));
    let files = audio_by_id(&dest);
    assert_eq!(files.len(), 5);
    for rec in first_batch.iter().chain(&second_batch) {
        assert!(files.contains_key(rec.id.as_str()));
    }
    while timer.sleeps_asked().len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the loop never slept again"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(timer.sleeps_asked()[1], start + chrono::Duration::hours(2));
    shutdown.cancel();
    assert!(looped.await.unwrap().unwrap().is_none());
    // Two manifests, one per run.
    assert_eq!(
        std::fs::read_dir(dest.join(STATE_DIR).join("runs"))
            .unwrap()
            .count(),
        2
    );
}

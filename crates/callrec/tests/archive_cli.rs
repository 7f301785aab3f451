//! `callrec archive` (issue 11) as a user runs it: the binary against a real API server in
//! this process; the token from the environment or a file, never an argument; the exit
//! codes of SPEC §6.

mod support;

use std::path::Path;
use std::sync::Arc;

use callrec_model::{Direction, NewRecording, RecordingId, SegmentKind, SegmentSource};
use callrec_store::{Access, IngestJob, IngestOutcome, NewUser, Store, StoreHandle};
use chrono::TimeZone;
use support::Callrec;

/// A server with user 1001 and stored recordings of theirs; its URL and the token.
struct Server {
    _dir: tempfile::TempDir,
    runtime: tokio::runtime::Runtime,
    url: String,
    token: String,
}

/// Three recordings of half a second.
fn server() -> Server {
    server_with(3, 500)
}

/// `count` recordings of `ms` of audio each.
fn server_with(count: u32, ms: u32) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path().join("data")).unwrap();
    let user = store
        .add_user(&NewUser::new("default", "1001"), "test")
        .unwrap();
    let token = store
        .create_token(user.id, "archive", &Access::system("test"))
        .unwrap()
        .secret;
    let spool = dir.path().join("spool");
    std::fs::create_dir_all(&spool).unwrap();
    for i in 0..count {
        let id = RecordingId::new();
        let at = chrono::Utc.with_ymd_and_hms(2024, 5, 1, 10, i, 0).unwrap();
        let spool_path = spool.join(format!("{id}.wav"));
        store
            .create_recording(
                &NewRecording {
                    id: id.clone(),
                    user: user.id,
                    call_uuid: format!("call-{id}"),
                    direction: Direction::Outbound,
                    from: "1001".into(),
                    to: format!("0207946000{i}"),
                    started_at: at,
                    format: "wav".into(),
                    spool_path: spool_path.clone(),
                },
                "daemon",
            )
            .unwrap();
        store
            .add_segment(&id, SegmentKind::Start, at, SegmentSource::Policy, "daemon")
            .unwrap();
        std::fs::write(&spool_path, callrec_testkit::wav::noise(ms, u64::from(i))).unwrap();
        let mut job = IngestJob::new(id);
        job.ended_at = Some(at + chrono::Duration::seconds(1));
        assert!(matches!(
            store.ingest(&job).unwrap(),
            IngestOutcome::Stored { .. }
        ));
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let state =
        callrec_api::ApiState::new(StoreHandle::new(store), Arc::new(callrec_api::NoDaemon));
    runtime.spawn(callrec_api::serve(listener, state, std::future::pending()));
    Server {
        _dir: dir,
        runtime,
        url,
        token,
    }
}

fn files(dir: &Path, suffix: &str) -> usize {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().ends_with(suffix) {
                n += 1;
            }
        }
    }
    n
}

#[test]
fn archive_downloads_once_then_finds_nothing_new() {
    let s = server();
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("archive");
    let archive = || {
        Callrec::new([
            "archive",
            "--server",
            &s.url,
            "--dest",
            dest.to_str().unwrap(),
        ])
        .env("CALLREC_TOKEN", &s.token)
    };
    let first = archive().run().success();
    assert!(
        first.stdout.contains("archived 3 recording(s)"),
        "{}",
        first.stdout
    );
    assert_eq!(files(&dest, ".wav"), 3);
    assert_eq!(files(&dest, ".wav.json"), 3);
    let second = archive().run().success();
    assert!(
        second.stdout.contains("archived 0 recording(s)"),
        "{}",
        second.stdout
    );
    assert!(second.stdout.contains("0 failed"), "{}", second.stdout);

    // A token in a file does the same.
    let token_file = out.path().join("token");
    std::fs::write(&token_file, format!("{}\n", s.token)).unwrap();
    let other = out.path().join("other");
    Callrec::new([
        "archive",
        "--server",
        &s.url,
        "--dest",
        other.to_str().unwrap(),
        "--token-file",
        token_file.to_str().unwrap(),
        "--dry-run",
    ])
    .run()
    .success();
    assert!(!other.exists(), "a dry run writes nothing");
    drop(s.runtime);
}

#[test]
fn no_token_or_a_refused_one_exits_78_and_bad_options_exit_2() {
    let s = server();
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("archive");
    let dest = dest.to_str().unwrap();

    let none = Callrec::new(["archive", "--server", &s.url, "--dest", dest])
        .run()
        .expect_code(78);
    assert!(none.stderr.contains("CALLREC_TOKEN"), "{}", none.stderr);

    let refused = Callrec::new(["archive", "--server", &s.url, "--dest", dest])
        .env("CALLREC_TOKEN", "callrec_not_a_real_token")
        .run()
        .expect_code(78);
    assert!(
        refused.stderr.contains("refused the token"),
        "{}",
        refused.stderr
    );

    for bad in [
        vec!["--name", "{started}.wav"],
        vec!["--every", "5"],
        vec!["--every", "1h", "--at", "02:00"],
        vec!["--at", "25:00"],
        vec!["--limit-rate", "fast"],
        vec!["--token", "abc"],
    ] {
        let mut args = vec!["archive", "--server", &s.url, "--dest", dest];
        args.extend(bad.iter().copied());
        let run = Callrec::new(args)
            .env("CALLREC_TOKEN", &s.token)
            .run()
            .expect_code(2);
        assert!(!run.stderr.is_empty(), "{bad:?}");
    }
    drop(s.runtime);
}

#[test]
fn a_run_killed_mid_file_is_resumed_from_its_part_by_the_next() {
    // One recording of two minutes: 1.9 MB, fetched at 64 KB/s so the kill lands mid-file.
    let s = server_with(1, 120_000);
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("archive");
    let archive = |extra: &[&str]| {
        let mut args = vec![
            "archive",
            "--server",
            &s.url,
            "--dest",
            dest.to_str().unwrap(),
        ];
        args.extend(extra);
        Callrec::new(args).env("CALLREC_TOKEN", &s.token)
    };
    let mut slow = archive(&["--limit-rate", "64k"]).spawn();
    let part = || -> Option<(std::path::PathBuf, u64)> {
        let mut stack = vec![dest.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).ok()? {
                let p = e.ok()?.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.to_string_lossy().ends_with(".wav.part") {
                    let len = std::fs::metadata(&p).ok()?.len();
                    return Some((p, len));
                }
            }
        }
        None
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let (part_path, _) = loop {
        if let Some((p, len)) = part()
            && len > 0
        {
            break (p, len);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no .part appeared before the deadline"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    slow.kill().unwrap(); // SIGKILL
    slow.wait().unwrap();
    let left = std::fs::metadata(&part_path).unwrap().len();
    let final_path = std::path::PathBuf::from(
        part_path
            .to_string_lossy()
            .trim_end_matches(".part")
            .to_owned(),
    );
    assert!(!final_path.exists(), "the kill came after the rename");
    assert!(left > 0);

    let run = archive(&[]).run().success();
    let size = std::fs::metadata(&final_path).unwrap().len();
    assert!(left < size, "the kill came after the whole file arrived");
    // Only what the .part lacked came over the wire.
    assert!(
        run.stdout
            .contains(&format!("archived 1 recording(s) ({} bytes)", size - left)),
        "{} (part {left} of {size})",
        run.stdout
    );
    assert!(!part_path.exists());
    let sidecar: serde_json::Value =
        serde_json::from_slice(&std::fs::read(format!("{}.json", final_path.display())).unwrap())
            .unwrap();
    let bytes = std::fs::read(&final_path).unwrap();
    use sha2::Digest as _;
    assert_eq!(
        sidecar["sha256"].as_str().unwrap(),
        hex::encode(sha2::Sha256::digest(&bytes))
    );
    drop(s.runtime);
}

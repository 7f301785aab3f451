//! The archive figure of SPEC §8: a first full pull of 10,000 recordings over loopback
//! against `curl` fetching the same files in the same run, and a rerun with nothing new.
//!
//! A callrec API server runs in this process over a store seeded through ingest (the way
//! the daemon fills it). Then, in order: `curl` fetches every recording's audio, one process,
//! one keep-alive connection, one file after another (`-K` with a URL list), and again with
//! `--parallel --parallel-max N` (N = the client's concurrency), and once more asking what
//! the client asks (the metadata of 200 recordings in one `POST /api/v1/archive/recordings`,
//! then each one's audio); the archive client makes its first pull into an empty folder
//! (batched metadata, audio into `.part`, SHA-256 while it arrives, fsync, rename, sidecar
//! staged and synced meanwhile then renamed, folders synced and state saved per 200,
//! manifest, report), then reruns with nothing new. Last, `export.zip` of every recording is
//! streamed and the process's RSS sampled on every chunk.
//!
//! `CALLREC_BENCH_RECORDINGS` (default 10000), `CALLREC_BENCH_MS` (audio per recording,
//! default 1000 ms = 16 KB of 8 kHz WAV), `CALLREC_BENCH_PARALLEL` (default 4),
//! `CALLREC_BENCH_DIR` (default: a temporary directory), `CALLREC_BENCH_BATCH` (curl's
//! metadata batch, default 200 as the client's), `CALLREC_BENCH_NO_EXPORT` (skip the export).

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use callrec_archive::{ArchiveConfig, SystemTimer, Token, run_once};
use callrec_model::{Direction, NewRecording, RecordingId, SegmentKind, SegmentSource};
use callrec_store::{Access, IngestJob, IngestOutcome, NewUser, Store, StoreHandle};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// This process's resident set, KiB (Linux; 0 elsewhere).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU seconds used so far by this process (server, and client when it runs) and by its
/// finished children (curl), from `/proc/self/stat` (Linux; zeros elsewhere). On a shared
/// machine wall time moves with the neighbours' load; CPU per recording much less.
fn cpu_secs() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // After the command name in parentheses: state is field 3; utime 14, stime 15,
    // cutime 16, cstime 17.
    let fields: Vec<f64> = stat
        .rsplit_once(')')
        .map(|(_, rest)| {
            rest.split_whitespace()
                .map(|f| f.parse().unwrap_or(0.0))
                .collect()
        })
        .unwrap_or_default();
    let tick = 100.0; // USER_HZ on Linux
    let get = |i: usize| fields.get(i - 3).copied().unwrap_or(0.0) / tick;
    (get(14) + get(15), get(16) + get(17))
}

/// Runs `f` and prints the CPU it cost per recording: this process's and curl's.
fn with_cpu<T>(what: &str, n: usize, f: impl FnOnce() -> T) -> T {
    let (own, children) = cpu_secs();
    let out = f();
    let (own2, children2) = cpu_secs();
    eprintln!(
        "cpu per recording, {what}: in-process (server + client) {:.0} µs, curl {:.0} µs",
        (own2 - own) * 1e6 / n as f64,
        (children2 - children) * 1e6 / n as f64
    );
    out
}

fn curl(config: &Path, parallel: Option<usize>) -> Duration {
    let mut cmd = Command::new("curl");
    cmd.arg("--silent")
        .arg("--no-progress-meter")
        .arg("--show-error")
        .arg("--fail");
    if let Some(n) = parallel {
        cmd.arg("--parallel")
            .arg("--parallel-max")
            .arg(n.to_string());
    }
    cmd.arg("-K").arg(config);
    let t = Instant::now();
    let status = cmd.status().expect("curl runs");
    let elapsed = t.elapsed();
    assert!(status.success(), "curl failed: {status}");
    elapsed
}

/// The figures of the pull, as a Markdown table.
fn print_table(
    n: usize,
    parallel: usize,
    curl_seq: Duration,
    curl_par: Duration,
    curl_both: Duration,
    first_time: Duration,
    rerun_time: Duration,
) {
    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    println!("| what | time | recordings/s | vs curl sequential | vs curl --parallel {parallel} |");
    println!("| --- | --- | --- | --- | --- |");
    for (what, d) in [
        ("curl, one connection, sequential", curl_seq),
        ("curl --parallel-max {parallel}", curl_par),
        (
            "curl --parallel-max {parallel}, batched metadata + audio (the client's requests)",
            curl_both,
        ),
        ("callrec archive, first pull", first_time),
    ] {
        println!(
            "| {} | {:.2} s | {:.0} | {:.2} | {:.2} |",
            what.replace("{parallel}", &parallel.to_string()),
            d.as_secs_f64(),
            rate(d),
            curl_seq.as_secs_f64() / d.as_secs_f64(),
            curl_par.as_secs_f64() / d.as_secs_f64(),
        );
    }
    println!(
        "| callrec archive, rerun with nothing new | {:.3} s | | | |",
        rerun_time.as_secs_f64()
    );
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken.
    let n = env_usize("CALLREC_BENCH_RECORDINGS", 10_000);
    let ms = env_usize("CALLREC_BENCH_MS", 1000) as u32;
    let parallel = env_usize("CALLREC_BENCH_PARALLEL", 4);
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let root = std::env::var_os("CALLREC_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| tmp.path().to_path_buf());
    let _ = std::fs::remove_dir_all(root.join("bench-archive"));
    let root = root.join("bench-archive");
    std::fs::create_dir_all(&root).unwrap();

    // The store.
    let t = Instant::now();
    let mut store = Store::open(root.join("data")).unwrap();
    let mut admin = NewUser::new("default", "9000");
    admin.role = callrec_model::Role::Admin;
    let admin = store.add_user(&admin, "bench").unwrap();
    let user = store
        .add_user(&NewUser::new("default", "1001"), "bench")
        .unwrap();
    let token = store
        .create_token(admin.id, "bench", &Access::system("bench"))
        .unwrap()
        .secret;
    let spool = root.join("spool");
    std::fs::create_dir_all(&spool).unwrap();
    let start = chrono::Utc::now() - chrono::Duration::days(30);
    let mut ids = Vec::with_capacity(n);
    let mut total_bytes = 0u64;
    for i in 0..n {
        let id = RecordingId::new();
        let at = start + chrono::Duration::seconds(i as i64 * 7);
        let spool_path = spool.join(format!("{id}.wav"));
        store
            .create_recording(
                &NewRecording {
                    id: id.clone(),
                    user: user.id,
                    call_uuid: format!("call-{id}"),
                    direction: Direction::Inbound,
                    from: format!("0163296{:04}", i % 10_000),
                    to: "1001".into(),
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
        let bytes = callrec_testkit::wav::noise(ms, i as u64);
        total_bytes += bytes.len() as u64;
        std::fs::write(&spool_path, bytes).unwrap();
        let mut job = IngestJob::new(id.clone());
        job.ended_at = Some(at + chrono::Duration::milliseconds(i64::from(ms)));
        assert!(matches!(
            store.ingest(&job).unwrap(),
            IngestOutcome::Stored { .. }
        ));
        ids.push(id);
    }
    eprintln!(
        "seeded {n} recordings ({:.1} MB) in {:.1} s",
        total_bytes as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let state =
        callrec_api::ApiState::new(StoreHandle::new(store), Arc::new(callrec_api::NoDaemon));
    runtime.spawn(callrec_api::serve(listener, state, std::future::pending()));

    // curl: the same files, each to its own file. Each run writes into a folder of its own
    // and nothing is deleted until the end: deleting tens of thousands of files right before
    // a run makes ext4's inode allocator slow for a while (its `recently_deleted` scan,
    // which `perf` showed as the top kernel cost of creating files here).
    let audio_config = |out: &Path, name: &str| {
        std::fs::create_dir_all(out).unwrap();
        let config = root.join(name);
        let mut text = format!("header = \"Authorization: Bearer {token}\"\n");
        for id in &ids {
            text.push_str(&format!(
                "url = \"{url}/api/v1/recordings/{id}/audio?download=1\"\noutput = \"{}\"\n",
                out.join(format!("{id}.wav")).display()
            ));
        }
        std::fs::write(&config, text).unwrap();
        config
    };
    let config = audio_config(&root.join("curl-seq"), "curl-seq.conf");
    let curl_seq = with_cpu("curl sequential", n, || curl(&config, None));
    let config = audio_config(&root.join("curl-par"), "curl-par.conf");
    let curl_par = with_cpu("curl parallel", n, || curl(&config, Some(parallel)));
    // The same requests the client makes: the metadata of 200 recordings at a time (one
    // audited POST each, `CALLREC_BENCH_BATCH` to match the client), then their audio.
    let both = root.join("curl-both.conf");
    let curl_out = root.join("curl-both");
    std::fs::create_dir_all(&curl_out).unwrap();
    let mut text = String::new();
    for (k, batch) in ids
        .chunks(env_usize("CALLREC_BENCH_BATCH", 200))
        .enumerate()
    {
        let body = root.join(format!("batch-{k}.json"));
        let list: Vec<String> = batch.iter().map(|id| format!("\"{id}\"")).collect();
        std::fs::write(&body, format!("{{\"ids\":[{}]}}", list.join(","))).unwrap();
        text.push_str(&format!(
            "next\nheader = \"Authorization: Bearer {token}\"\n\
             header = \"Content-Type: application/json\"\ndata-binary = \"@{}\"\n\
             url = \"{url}/api/v1/archive/recordings\"\noutput = \"{}\"\n\
             next\nheader = \"Authorization: Bearer {token}\"\n",
            body.display(),
            curl_out.join(format!("batch-{k}.json")).display()
        ));
        for id in batch {
            text.push_str(&format!(
                "url = \"{url}/api/v1/recordings/{id}/audio?download=1\"\noutput = \"{}\"\n",
                curl_out.join(format!("{id}.wav")).display()
            ));
        }
    }
    std::fs::write(&both, text.trim_start_matches("next\n")).unwrap();
    let curl_both = with_cpu("curl, the client's requests", n, || {
        curl(&both, Some(parallel))
    });

    // The archive client.
    let dest = root.join("archive");
    let mut archive = ArchiveConfig::new(&url, Token::new(&token).unwrap(), &dest);
    archive.client_name = "bench".into();
    archive.concurrency = parallel;
    let t = Instant::now();
    let first = with_cpu("callrec archive", n, || {
        runtime
            .block_on(run_once(&archive, &SystemTimer))
            .expect("the first pull")
    });
    let first_time = t.elapsed();
    assert_eq!(first.downloaded.len(), n);
    assert!(first.failed.is_empty());
    let t = Instant::now();
    let rerun = runtime
        .block_on(run_once(&archive, &SystemTimer))
        .expect("the rerun");
    let rerun_time = t.elapsed();
    assert!(rerun.downloaded.is_empty());

    if std::env::var_os("CALLREC_BENCH_NO_EXPORT").is_some() {
        print_table(
            n, parallel, curl_seq, curl_par, curl_both, first_time, rerun_time,
        );
        return;
    }
    // export.zip of every recording: the server's memory while it streams (this process
    // holds the server, and reads the ZIP as it comes, keeping none of it).
    let (zip_bytes, rss_before, rss_peak, export_time) = runtime.block_on(async {
        use futures_util::StreamExt;
        let before = rss_kib();
        let t = Instant::now();
        let resp = reqwest::Client::new()
            .get(format!("{url}/api/v1/recordings/export.zip"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("export.zip answers");
        assert!(resp.status().is_success(), "{}", resp.status());
        let mut body = resp.bytes_stream();
        let (mut n, mut peak) = (0u64, before);
        while let Some(chunk) = body.next().await {
            n += chunk.expect("the ZIP streams").len() as u64;
            peak = peak.max(rss_kib());
        }
        (n, before, peak, t.elapsed())
    });

    print_table(
        n, parallel, curl_seq, curl_par, curl_both, first_time, rerun_time,
    );
    println!(
        "\nexport.zip of all {n}: {:.1} MB in {:.2} s; RSS {} MiB before, peak {} MiB while streaming",
        zip_bytes as f64 / 1e6,
        export_time.as_secs_f64(),
        rss_before / 1024,
        rss_peak / 1024
    );
}

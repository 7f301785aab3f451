//! Daemon benchmarks (SPEC §8): event throughput against the ESL crate's own parse rate of
//! the same stream, plain vs JSON, a 100,000-event burst, CHANNEL_ANSWER → `uuid_record`
//! latency with 5,000 live calls, and RSS with them tracked.
//!
//! The switch is a blocking fake on its own threads that sends pre-rendered full-size
//! channel events (the `record` capture's CHANNEL_ANSWER, 200+ headers, with fresh UUIDs)
//! as fast as the socket takes them and answers `bgapi` at once. The daemon is the real one
//! (`Daemon::start` + `run`), index included.
//!
//! Run: `unset RUST_BACKTRACE; cargo bench -p callrec-daemon --bench daemon`

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use callrec_config::{Config, EventFormat};
use callrec_daemon::{Daemon, DaemonHandle, Listeners, Options};
use callrec_store::{NewUser, RecordingMode, StoreHandle};
use freeswitch_esl_tokio::{EslClient, EslConnectOptions, EventOverflow};

type Headers = Vec<(String, String)>;

/// The largest CHANNEL_ANSWER of a capture: in `sip-hold`, a SIP leg with every channel
/// variable (194 headers, ~9 KB); in `record`, a loopback leg (76 headers, ~2.8 KB).
fn answer_template(capture: &str) -> Headers {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/freeswitch")
        .join(capture);
    let data = std::fs::read(path).expect("fixture");
    let mut best: Headers = Vec::new();
    let mut i = 0;
    while i < data.len() {
        let end = data[i..]
            .windows(2)
            .position(|w| w == b"\n\n")
            .expect("frame")
            + i;
        let head = String::from_utf8_lossy(&data[i..end]).into_owned();
        i = end + 2;
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .map_or(0, |l| l.parse().expect("length"));
        let body = String::from_utf8_lossy(&data[i..i + len]).into_owned();
        i += len;
        if !head.contains("text/event-plain") || !body.contains("Event-Name: CHANNEL_ANSWER") {
            continue;
        }
        let inner = body.split("\n\n").next().unwrap_or_default();
        let headers: Headers = inner
            .lines()
            .filter_map(|l| l.split_once(": "))
            .map(|(k, v)| {
                (
                    k.to_owned(),
                    percent_encoding::percent_decode_str(v)
                        .decode_utf8_lossy()
                        .into_owned(),
                )
            })
            .collect();
        if headers.len() > best.len() {
            best = headers;
        }
    }
    assert!(!best.is_empty(), "no CHANNEL_ANSWER in the capture");
    // The daemon's ownership headers come from the template's owner slot.
    if !best.iter().any(|(k, _)| k == "variable_callrec_user") {
        best.push(("variable_callrec_user".into(), String::new()));
    }
    best
}

/// One event frame on the wire, in `format`.
fn render(template: &Headers, name: &str, uuid: &str, user: &str, format: EventFormat) -> Vec<u8> {
    let own = template
        .iter()
        .find(|(k, _)| k == "Unique-ID")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let other = template
        .iter()
        .find(|(k, _)| k == "Other-Leg-Unique-ID")
        .map(|(_, v)| v.clone());
    let peer = format!("{uuid}-b");
    let headers: Headers = template
        .iter()
        .map(|(k, v)| {
            let v = match k.as_str() {
                "Event-Name" => name.to_owned(),
                "variable_callrec_user" => user.to_owned(),
                // Every mention of the template's channels names this call's instead.
                _ => {
                    let v = v.replace(&own, uuid);
                    match &other {
                        Some(o) if !o.is_empty() => v.replace(o, &peer),
                        _ => v,
                    }
                }
            };
            (k.clone(), v)
        })
        .collect();
    let (content_type, body) = match format {
        EventFormat::Plain => {
            let mut inner = String::new();
            for (k, v) in &headers {
                inner.push_str(k);
                inner.push_str(": ");
                inner.push_str(
                    &percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC)
                        .to_string(),
                );
                inner.push('\n');
            }
            inner.push('\n');
            ("text/event-plain", inner)
        }
        EventFormat::Json => {
            let map: serde_json::Map<String, serde_json::Value> = headers
                .into_iter()
                .map(|(k, v)| (k, serde_json::Value::String(v)))
                .collect();
            (
                "text/event-json",
                serde_json::Value::Object(map).to_string(),
            )
        }
    };
    format!(
        "Content-Length: {}\nContent-Type: {content_type}\n\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The daemon's stream: four events per channel, none owned by a recorded user, so every
/// one is parsed, tracked and decided on without touching the index.
fn stream(template: &Headers, channels: usize, format: EventFormat) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..channels {
        let uuid = format!("b0121122-8b41-4d85-8be3-{i:012}");
        for name in KINDS {
            out.extend(render(template, name, &uuid, "1001", format));
        }
    }
    out
}

fn read_command(r: &mut BufReader<TcpStream>) -> Option<String> {
    let mut command = String::new();
    while !command.ends_with("\n\n") {
        if r.read_line(&mut command).ok()? == 0 {
            return None;
        }
    }
    Some(command)
}

fn reply(w: &mut TcpStream, text: &str) {
    let _ = w.write_all(format!("Content-Type: command/reply\nReply-Text: {text}\n\n").as_bytes());
}

/// Auth and subscriptions, as the switch answers them.
fn handshake(stream: &TcpStream) -> BufReader<TcpStream> {
    let mut w = stream.try_clone().expect("clone");
    let mut r = BufReader::new(stream.try_clone().expect("clone"));
    let _ = w.write_all(b"Content-Type: auth/request\n\n");
    let _ = read_command(&mut r);
    reply(&mut w, "+OK accepted");
    r
}

/// When each `uuid_record` command for a channel arrived, and a channel that says so as it
/// happens (for the latency probe, which must not poll the daemon's runtime).
type ArrivalSender = std::sync::mpsc::Sender<(String, Instant)>;

#[derive(Clone, Default)]
struct Arrivals {
    seen: Arc<Mutex<HashMap<String, Instant>>>,
    notify: Arc<Mutex<Option<ArrivalSender>>>,
}

impl Arrivals {
    fn record(&self, uuid: &str, at: Instant) {
        self.seen
            .lock()
            .unwrap()
            .entry(uuid.to_owned())
            .or_insert(at);
        if let Some(tx) = self.notify.lock().unwrap().as_ref() {
            let _ = tx.send((uuid.to_owned(), at));
        }
    }

    fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

/// The command connection: every `bgapi` answered at once, its job result right after.
fn serve_commands(stream: TcpStream, arrivals: Arrivals) {
    let mut r = handshake(&stream);
    let mut w = stream;
    let mut job = 0u64;
    while let Some(command) = read_command(&mut r) {
        let now = Instant::now();
        let line = command.trim_end();
        if let Some(rest) = line.strip_prefix("bgapi ") {
            if let Some(uuid) = rest
                .strip_prefix("uuid_record ")
                .and_then(|args| args.split_whitespace().next())
            {
                arrivals.record(uuid, now);
            }
            job += 1;
            let id = format!("00000000-0000-4000-8000-{job:012}");
            let body = if rest.starts_with("show channels") {
                "{\"row_count\":0}\n".to_owned()
            } else if rest.starts_with("uuid_buglist") {
                "-ERR no reply\n".to_owned()
            } else {
                "+OK Success\n".to_owned()
            };
            let inner = format!(
                "Event-Name: BACKGROUND_JOB\nJob-UUID: {id}\nJob-Command: x\nContent-Length: {}\n\n{body}",
                body.len()
            );
            let frame = format!(
                "Content-Type: command/reply\nReply-Text: +OK Job-UUID: {id}\nJob-UUID: {id}\n\nContent-Length: {}\nContent-Type: text/event-plain\n\n{inner}",
                inner.len()
            );
            if w.write_all(frame.as_bytes()).is_err() {
                return;
            }
        } else {
            reply(&mut w, "+OK event listener enabled");
        }
    }
}

/// A fake switch on a free port. The first connection of each session is the event
/// connection (the daemon subscribes it first); its stream goes to `events_tx`.
struct FakeSwitch {
    port: u16,
    events: Arc<Mutex<Option<TcpStream>>>,
    arrivals: Arrivals,
}

impl FakeSwitch {
    fn start() -> FakeSwitch {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let events = Arc::new(Mutex::new(None));
        let arrivals = Arrivals::default();
        let (ev, arr) = (events.clone(), arrivals.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            for stream in listener.incoming().flatten() {
                let _ = stream.set_nodelay(true);
                n += 1;
                if n % 2 == 1 {
                    // Event connection: answer the two subscriptions, then hand it over.
                    let mut r = handshake(&stream);
                    let mut w = stream.try_clone().expect("clone");
                    for _ in 0..2 {
                        let _ = read_command(&mut r);
                        reply(&mut w, "+OK event listener enabled");
                    }
                    *ev.lock().unwrap() = Some(stream);
                } else {
                    let arr = arr.clone();
                    std::thread::spawn(move || serve_commands(stream, arr));
                }
            }
        });
        FakeSwitch {
            port,
            events,
            arrivals,
        }
    }

    fn event_socket(&self) -> TcpStream {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(s) = self.events.lock().unwrap().take() {
                return s;
            }
            assert!(Instant::now() < deadline, "the daemon never connected");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

struct Running {
    handle: DaemonHandle,
    _dir: tempfile::TempDir,
}

async fn start_daemon(port: u16, format: EventFormat, users: &[(&str, RecordingMode)]) -> Running {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let store = StoreHandle::open(&data).expect("index");
    let users: Vec<(String, RecordingMode)> =
        users.iter().map(|(e, m)| ((*e).to_owned(), *m)).collect();
    store
        .write(move |s| {
            for (ext, mode) in users {
                let mut u = NewUser::new("default", ext);
                u.mode = Some(mode);
                s.add_user(&u, "bench")?;
            }
            Ok(())
        })
        .await
        .expect("users");
    let mut config = Config::default();
    config.esl.host = "127.0.0.1".into();
    config.esl.port = port;
    config.esl.event_format = format;
    config.storage.data_dir = data;
    config.storage.spool_dir = dir.path().join("spool");
    let feature = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let daemon = Daemon::start(
        config,
        Listeners {
            feature_codes: feature,
        },
        Options {
            store: Some(store),
            ..Options::default()
        },
    )
    .await
    .expect("daemon");
    let handle = daemon.handle();
    tokio::spawn(daemon.run(std::future::pending::<()>()));
    handle.wait_connected().await;
    // The fake switch lists no channels: let the reconciliation at connect finish before
    // any channel exists, or it would (rightly) take them for hung up.
    tokio::time::sleep(Duration::from_millis(500)).await;
    Running { handle, _dir: dir }
}

const KINDS: [&str; 4] = [
    "CHANNEL_ANSWER",
    "CHANNEL_HOLD",
    "CHANNEL_UNHOLD",
    "CHANNEL_HANGUP_COMPLETE",
];

fn received(handle: &DaemonHandle) -> u64 {
    let m = handle.metrics();
    KINDS
        .iter()
        .map(|k| callrec_daemon::metrics::Metrics::count(&m.events_received, "event", k))
        .sum()
}

/// Events per second through the daemon for one pre-rendered block sent `repeat` times (the
/// block holds more channels than the daemon remembers as hung up, so a repeat is new work).
async fn through_daemon(
    bytes: Arc<Vec<u8>>,
    block_events: u64,
    repeat: u64,
    format: EventFormat,
) -> (f64, u64) {
    let events = block_events * repeat;
    let switch = FakeSwitch::start();
    let running = start_daemon(switch.port, format, &[("1001", RecordingMode::Never)]).await;
    running.handle.wait_connected().await;
    let mut socket = switch.event_socket();
    let before = received(&running.handle);
    let started = Instant::now();
    let writer = std::thread::spawn(move || {
        for _ in 0..repeat {
            socket.write_all(&bytes)?;
        }
        Ok::<_, std::io::Error>(socket)
    });
    while received(&running.handle) - before < events {
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "daemon stalled"
        );
    }
    let elapsed = started.elapsed();
    let _socket = writer.join().expect("writer").expect("write");
    let dropped = running.handle.metrics().events_dropped.get();
    running.handle.shutdown();
    (events as f64 / elapsed.as_secs_f64(), dropped)
}

/// Events per second the ESL crate alone parses from the same stream (a client that only
/// counts them), with the same queue settings as the daemon.
async fn through_crate(bytes: Arc<Vec<u8>>, block_events: u64, repeat: u64) -> (f64, u64) {
    let events = block_events * repeat;
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let done = Arc::new(AtomicBool::new(false));
    let server = std::thread::spawn(move || {
        let (stream, _) = listener.accept().expect("accept");
        let _ = stream.set_nodelay(true);
        let mut r = handshake(&stream);
        let mut w = stream.try_clone().expect("clone");
        let _ = read_command(&mut r);
        reply(&mut w, "+OK event listener enabled");
        (stream, r)
    });
    let (client, mut stream) = EslClient::connect_with_options(
        "127.0.0.1",
        port,
        "ClueCon",
        EslConnectOptions::new()
            .with_event_queue_size(16_384)
            .with_event_overflow(EventOverflow::BlockFor(Duration::from_secs(1))),
    )
    .await
    .expect("connect");
    client
        .subscribe_events_raw(freeswitch_esl_tokio::EventFormat::Plain, "ALL")
        .await
        .expect("subscribe");
    let (mut socket, _r) = server.join().expect("server");
    let started = Instant::now();
    let d = done.clone();
    let writer = std::thread::spawn(move || {
        for _ in 0..repeat {
            if socket.write_all(&bytes).is_err() {
                break;
            }
        }
        d.store(true, Ordering::Relaxed);
        socket
    });
    let mut n = 0u64;
    while n < events {
        match stream.recv().await {
            Some(Ok(_)) => n += 1,
            Some(Err(_)) => {}
            None => break,
        }
    }
    let elapsed = started.elapsed();
    let _ = writer.join();
    (
        n as f64 / elapsed.as_secs_f64(),
        client.dropped_event_count(),
    )
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// ANSWER sent → `uuid_record … start` received, with `live` calls already recorded.
async fn answer_latency(
    template: &Headers,
    live: usize,
    samples: usize,
) -> (Vec<Duration>, u64, u64) {
    let switch = FakeSwitch::start();
    let rss_before = rss_kib();
    let running = start_daemon(
        switch.port,
        EventFormat::Plain,
        &[("1002", RecordingMode::Always)],
    )
    .await;
    running.handle.wait_connected().await;
    let mut socket = switch.event_socket();
    // The live calls: each answered and recorded (rendered one by one: no big buffer).
    for i in 0..live {
        let uuid = format!("c0000000-0000-4000-8000-{i:012}");
        socket
            .write_all(&render(
                template,
                "CHANNEL_ANSWER",
                &uuid,
                "1002",
                EventFormat::Plain,
            ))
            .expect("write");
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while switch.arrivals.count() < live {
        assert!(Instant::now() < deadline, "live calls not recorded");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Let the index catch up with the rows, so it does not compete with what is measured.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_live = rss_kib();
    // The probe runs on its own thread: it writes one answer, blocks until the command
    // arrives, and paces the next; the daemon's runtime is left to the daemon.
    let (tx, rx) = std::sync::mpsc::channel();
    *switch.arrivals.notify.lock().unwrap() = Some(tx);
    let template = template.clone();
    let probe = std::thread::spawn(move || {
        let mut latencies = Vec::with_capacity(samples);
        for i in 0..samples {
            let uuid = format!("d0000000-0000-4000-8000-{i:012}");
            let frame = render(
                &template,
                "CHANNEL_ANSWER",
                &uuid,
                "1002",
                EventFormat::Plain,
            );
            let sent = Instant::now();
            socket.write_all(&frame).expect("write");
            loop {
                let (got, at) = rx
                    .recv_timeout(Duration::from_secs(10))
                    .expect("uuid_record");
                if got == uuid {
                    latencies.push(at.saturating_duration_since(sent));
                    break;
                }
            }
            // One answer per millisecond, as a busy switch would send them.
            std::thread::sleep(Duration::from_millis(1));
        }
        latencies
    });
    let latencies = tokio::task::spawn_blocking(move || probe.join().expect("probe"))
        .await
        .expect("probe");
    let m = running.handle.metrics();
    println!(
        "  live calls tracked: {} of {} (dropped {}, malformed {}, uuid_record sent {})",
        running.handle.live_calls().len(),
        live + samples,
        m.events_dropped.get(),
        m.malformed_frames.get(),
        switch.arrivals.count()
    );
    running.handle.shutdown();
    (latencies, rss_before, rss_live)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    if std::env::var_os("RUST_BACKTRACE").is_some() {
        eprintln!(
            "note: RUST_BACKTRACE is set; it slows ESL parsing. Figures are meant with it unset."
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let template = answer_template("sip-hold.events-plain.received.esl");
        println!("template: CHANNEL_ANSWER with {} headers", template.len());

        // Latency and memory first, before the throughput blocks are allocated.
        let (mut lat, rss_before, rss_live) = answer_latency(&template, 5_000, 2_000).await;
        lat.sort();
        println!(
            "CHANNEL_ANSWER -> uuid_record written, 5000 live calls, {} answers: p50 {:?} p99 {:?} max {:?}",
            lat.len(),
            pct(&lat, 0.5),
            pct(&lat, 0.99),
            lat[lat.len() - 1]
        );
        println!(
            "RSS of the whole bench process (daemon, index, fake switch): {:.1} MiB before the calls, {:.1} MiB with 5000 live calls",
            rss_before as f64 / 1024.0,
            rss_live as f64 / 1024.0
        );

        // 5,000 channels per block: more than the daemon remembers as hung up (4,096).
        let channels = 5_000;
        let block_events = channels as u64 * 4;
        let repeat = 10;
        let medium = answer_template("record.events-plain.received.esl");
        for (label, template, format) in [
            ("194-header", &template, EventFormat::Plain),
            ("194-header", &template, EventFormat::Json),
            ("76-header", &medium, EventFormat::Plain),
            ("76-header", &medium, EventFormat::Json),
        ] {
            let bytes = Arc::new(stream(template, channels, format));
            print!("{label} ");
            println!(
                "{} stream: {} events ({:.0} bytes per event)",
                format.as_str(),
                block_events * repeat,
                bytes.len() as f64 / block_events as f64
            );
            let (crate_rate, crate_dropped) = through_crate(bytes.clone(), block_events, repeat).await;
            let (daemon_rate, daemon_dropped) =
                through_daemon(bytes.clone(), block_events, repeat, format).await;
            println!(
                "  ESL crate alone: {crate_rate:>9.0} events/s (dropped {crate_dropped})\n  daemon:          {daemon_rate:>9.0} events/s (dropped {daemon_dropped}), {:.2} x the crate",
                daemon_rate / crate_rate
            );
        }
        // A burst of 100,000 events written at once.
        let bytes = Arc::new(stream(&template, channels, EventFormat::Plain));
        let (rate, dropped) = through_daemon(bytes, block_events, 5, EventFormat::Plain).await;
        println!("burst: 100000 events written at once: {rate:.0} events/s, dropped {dropped}");
    });
}

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
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use callrec_config::Config;
use callrec_daemon::{Daemon, DaemonHandle, Listeners, Options};
use callrec_model::EventFormat;
use callrec_model::RecordingMode;
use callrec_store::{NewUser, StoreHandle};
use freeswitch_esl_tokio::{EslClient, EslConnectOptions, EventOverflow};

/// The allocator of the shipped `callrec` binary, so the figures are the binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

type Headers = Vec<(String, String)>;

/// The largest CHANNEL_ANSWER of a capture: in `sip-hold`, a SIP leg with every channel
/// variable (194 headers, ~9 KB); in `record`, a loopback leg (76 headers, ~2.8 KB).
fn answer_template(capture: &str) -> Headers {
    let mut best: Headers = Vec::new();
    for frame in callrec_testkit::capture::frames_of(capture) {
        if frame.content_type() != "text/event-plain"
            || frame.event_header("Event-Name").as_deref() != Some("CHANNEL_ANSWER")
        {
            continue;
        }
        let headers = frame.event_headers();
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
        EventFormat::Xml => unreachable!("the daemon is configured for plain or json only"),
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
/// HEARTBEAT every 20 s, as FreeSWITCH sends it, until the connection closes: without it
/// the daemon rightly declares an idle command connection dead after its liveness timeout
/// (60 s), which a long run (a loaded machine, callgrind) would reach.
fn heartbeats(w: Arc<Mutex<TcpStream>>) {
    let inner = "Event-Name: HEARTBEAT\nEvent-Date-Timestamp: 1764000000000000\n\n";
    let frame = format!(
        "Content-Length: {}\nContent-Type: text/event-plain\n\n{inner}",
        inner.len()
    );
    loop {
        std::thread::sleep(Duration::from_secs(20));
        if w.lock().unwrap().write_all(frame.as_bytes()).is_err() {
            return;
        }
    }
}

fn serve_commands(stream: TcpStream, arrivals: Arrivals) {
    let mut r = handshake(&stream);
    let w = Arc::new(Mutex::new(stream));
    let beat = w.clone();
    std::thread::spawn(move || heartbeats(beat));
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
            if w.lock().unwrap().write_all(frame.as_bytes()).is_err() {
                return;
            }
        } else {
            reply(&mut w.lock().unwrap(), "+OK event listener enabled");
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

async fn start_daemon(
    port: u16,
    format: EventFormat,
    queue: usize,
    users: &[(&str, RecordingMode)],
) -> Running {
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
    config.esl.event_queue_size = queue;
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

/// CPU time of the whole process so far (every thread, live or ended), from /proc.
fn process_cpu() -> Duration {
    let ticks = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // Fields after the command name, which may hold spaces: state is field 3,
            // utime and stime fields 14 and 15.
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0);
    // USER_HZ is 100 on every Linux this runs on (`getconf CLK_TCK`).
    Duration::from_millis(ticks * 10)
}

/// CPU time of the calling thread so far, in nanoseconds (scheduler accounting).
fn thread_cpu() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .map_or(Duration::ZERO, Duration::from_nanos)
}

/// Writes the stream `repeat` times from a plain thread while counting the events the crate
/// yields, until `events` or the end; returns how many came and how long it took.
async fn write_and_count(
    mut socket: TcpStream,
    bytes: Arc<Vec<u8>>,
    repeat: u64,
    stream: &mut freeswitch_esl_tokio::EslEventStream,
    events: u64,
) -> (u64, Duration) {
    let started = Instant::now();
    let writer = std::thread::spawn(move || {
        for _ in 0..repeat {
            if socket.write_all(&bytes).is_err() {
                break;
            }
        }
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
    let wall = started.elapsed();
    let _socket = writer.join();
    (n, wall)
}

/// What one isolated run of the ESL crate measured.
struct Isolated {
    events: u64,
    wall: Duration,
    /// CPU time of the thread that ran the crate's reader and counted the events.
    parser_cpu: Duration,
    /// CPU time of the whole process (the writer thread included).
    process_cpu: Duration,
    dropped: u64,
}

/// The ESL crate alone, isolated the way a parse rate is usually taken: one thread runs a
/// single-threaded runtime holding the crate's reader task and a loop that only counts
/// events; a plain thread writes the pre-rendered stream into a loopback socket whose other
/// end the crate adopts (no handshake, nothing else in the process). Queue settings as the
/// daemon's event connection.
fn crate_isolated(bytes: Arc<Vec<u8>>, block_events: u64, repeat: u64, queue: usize) -> Isolated {
    let events = block_events * repeat;
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
    let (server, _) = listener.accept().expect("accept");
    client.set_nonblocking(true).expect("nonblocking");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let stream = tokio::net::TcpStream::from_std(client).expect("tokio stream");
        let (client, mut stream) = EslClient::adopt_stream_with_options(
            stream,
            &[],
            EslConnectOptions::new()
                .with_event_queue_size(queue)
                .with_event_overflow(EventOverflow::BlockFor(Duration::from_secs(1))),
        )
        .expect("adopt");
        let cpu_before = (thread_cpu(), process_cpu());
        let (n, wall) = write_and_count(server, bytes, repeat, &mut stream, events).await;
        Isolated {
            events: n,
            wall,
            parser_cpu: thread_cpu() - cpu_before.0,
            process_cpu: process_cpu() - cpu_before.1,
            dropped: client.dropped_event_count(),
        }
    })
}

/// What one throughput run measured.
struct Run {
    events: u64,
    wall: Duration,
    /// CPU time of the whole process during the run (every thread: the crate's reader, the
    /// daemon's tasks, the fake switch's writer), which other processes' load inflates far
    /// less than wall time.
    cpu: Duration,
    dropped: u64,
    /// Peak RSS of the process during the run.
    peak_rss_kib: u64,
}

impl Run {
    fn rate(&self) -> f64 {
        self.events as f64 / self.wall.as_secs_f64()
    }

    fn cpu_rate(&self) -> f64 {
        self.events as f64 / self.cpu.as_secs_f64()
    }
}

/// Forgets the process's peak RSS so far, so the next reading is the peak of what follows.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn peak_rss_kib() -> u64 {
    status_kib("VmHWM:")
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Events per second through the daemon for one pre-rendered block sent `repeat` times (the
/// block holds more channels than the daemon remembers as hung up, so a repeat is new work).
async fn through_daemon(
    bytes: Arc<Vec<u8>>,
    block_events: u64,
    repeat: u64,
    format: EventFormat,
    queue: usize,
) -> Run {
    let events = block_events * repeat;
    let switch = FakeSwitch::start();
    let running = start_daemon(
        switch.port,
        format,
        queue,
        &[("1001", RecordingMode::Never)],
    )
    .await;
    running.handle.wait_connected().await;
    let mut socket = switch.event_socket();
    let before = received(&running.handle);
    reset_peak_rss();
    let cpu = process_cpu();
    let started = Instant::now();
    let writer = std::thread::spawn(move || {
        for _ in 0..repeat {
            socket.write_all(&bytes)?;
        }
        Ok::<_, std::io::Error>(socket)
    });
    // Stalled means no progress for a while (not a slow run: under callgrind it is slow).
    let (mut seen, mut progressed) = (0, Instant::now());
    while seen < events {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let now = received(&running.handle) - before;
        if now > seen {
            (seen, progressed) = (now, Instant::now());
        }
        assert!(
            progressed.elapsed() < Duration::from_secs(60),
            "daemon stalled at {seen} of {events} events"
        );
    }
    let wall = started.elapsed();
    let _socket = writer.join().expect("writer").expect("write");
    let run = Run {
        events,
        wall,
        cpu: process_cpu() - cpu,
        dropped: running.handle.metrics().events_dropped.get(),
        peak_rss_kib: peak_rss_kib(),
    };
    running.handle.shutdown();
    run
}

/// Events per second the ESL crate alone parses from the same stream (a client that only
/// counts them), in the same runtime and with the same queue settings as the daemon.
async fn through_crate(bytes: Arc<Vec<u8>>, block_events: u64, repeat: u64, queue: usize) -> Run {
    let events = block_events * repeat;
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
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
            .with_event_queue_size(queue)
            .with_event_overflow(EventOverflow::BlockFor(Duration::from_secs(1))),
    )
    .await
    .expect("connect");
    client
        .subscribe_events_raw(freeswitch_esl_tokio::EventFormat::Plain, "ALL")
        .await
        .expect("subscribe");
    let (socket, _r) = server.join().expect("server");
    reset_peak_rss();
    let cpu = process_cpu();
    let (n, wall) = write_and_count(socket, bytes, repeat, &mut stream, events).await;
    Run {
        events: n,
        wall,
        cpu: process_cpu() - cpu,
        dropped: client.dropped_event_count(),
        peak_rss_kib: peak_rss_kib(),
    }
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn rss_kib() -> u64 {
    status_kib("VmRSS:")
}

/// ANSWER sent → `uuid_record … start` received, with `live` calls already recorded.
async fn answer_latency(
    template: &Headers,
    live: usize,
    samples: usize,
    queue: usize,
) -> (Vec<Duration>, u64, u64) {
    let switch = FakeSwitch::start();
    let rss_before = rss_kib();
    let running = start_daemon(
        switch.port,
        EventFormat::Plain,
        queue,
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

/// The shipped default of `esl.event_queue_size`, which every run uses unless told otherwise.
fn default_queue() -> usize {
    Config::default().esl.event_queue_size
}

/// One measurement alone, named on the command line (for `taskset`, callgrind, repeats):
/// `<isolated|crate|daemon> <plain|json> <194|76> <channels per block> <repeats> [queue]`.
fn single(args: &[String]) {
    let usage =
        "usage: daemon <isolated|crate|daemon> <plain|json> <194|76> <channels> <repeats> [queue]";
    let (what, format, size, channels, repeat, queue) = match args {
        [w, f, s, c, r] => (w, f, s, c, r, default_queue()),
        [w, f, s, c, r, q] => (w, f, s, c, r, q.parse().expect("queue")),
        _ => panic!("{usage}"),
    };
    let format = match format.as_str() {
        "plain" => EventFormat::Plain,
        "json" => EventFormat::Json,
        _ => panic!("{usage}"),
    };
    let capture = match size.as_str() {
        "194" => "sip-hold.events-plain.received.esl",
        "76" => "record.events-plain.received.esl",
        _ => panic!("{usage}"),
    };
    let channels: usize = channels.parse().expect("channels");
    let repeat: u64 = repeat.parse().expect("repeats");
    let template = answer_template(capture);
    let bytes = Arc::new(stream(&template, channels, format));
    let block_events = channels as u64 * 4;
    println!(
        "{what}: {}-header {} stream, {} events ({:.0} bytes per event), queue {queue}, load {}",
        template.len(),
        format.as_str(),
        block_events * repeat,
        bytes.len() as f64 / block_events as f64,
        load_average()
    );
    if what == "hold" {
        // What a full event queue costs in memory: the stream's events parsed and kept.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let events = block_events * repeat;
        let kept = runtime.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
            let client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
            let (mut server, _) = listener.accept().expect("accept");
            client.set_nonblocking(true).expect("nonblocking");
            let (_client, mut stream) = EslClient::adopt_stream_with_options(
                tokio::net::TcpStream::from_std(client).expect("tokio stream"),
                &[],
                EslConnectOptions::new().with_event_queue_size(queue),
            )
            .expect("adopt");
            let writer = std::thread::spawn(move || {
                for _ in 0..repeat {
                    let _ = server.write_all(&bytes);
                }
                server
            });
            let before = rss_kib();
            let mut kept = Vec::new();
            while (kept.len() as u64) < events {
                match stream.recv().await {
                    Some(Ok(e)) => kept.push(e),
                    Some(Err(_)) => {}
                    None => break,
                }
            }
            let _ = writer.join();
            (kept.len(), rss_kib().saturating_sub(before))
        });
        println!(
            "  {} parsed events kept: {:.1} MiB, {:.1} KiB each",
            kept.0,
            kept.1 as f64 / 1024.0,
            kept.1 as f64 / kept.0 as f64
        );
        return;
    }
    if what == "isolated" {
        print_isolated(&crate_isolated(bytes, block_events, repeat, queue));
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let run = runtime.block_on(async {
        match what.as_str() {
            "crate" => through_crate(bytes, block_events, repeat, queue).await,
            "daemon" => through_daemon(bytes, block_events, repeat, format, queue).await,
            _ => panic!("{usage}"),
        }
    });
    print_run(what, &run);
    if std::env::var_os("DAEMON_BENCH_THREADS").is_some() {
        print_threads();
    }
}

/// CPU time of each live thread of the process, by name (`DAEMON_BENCH_THREADS=1`): where
/// the CPU of a run went.
fn print_threads() {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return;
    };
    let mut by_name: HashMap<String, (u32, u64)> = HashMap::new();
    for task in tasks.flatten() {
        let path = task.path();
        let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        let ns: u64 = std::fs::read_to_string(path.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        let e = by_name.entry(name.trim().to_owned()).or_default();
        e.0 += 1;
        e.1 += ns;
    }
    let mut rows: Vec<_> = by_name.into_iter().collect();
    rows.sort_by_key(|(_, (_, ns))| std::cmp::Reverse(*ns));
    for (name, (n, ns)) in rows {
        println!("    {name:<20} x{n:<3} {:>8.2} s CPU", ns as f64 / 1e9);
    }
}

fn print_isolated(r: &Isolated) {
    println!(
        "  ESL crate isolated: {:>6.0} events/s wall, {:>6.0} per CPU-second of its thread, {:>6.0} per CPU-second of the process (writer included), dropped {}",
        r.events as f64 / r.wall.as_secs_f64(),
        r.events as f64 / r.parser_cpu.as_secs_f64(),
        r.events as f64 / r.process_cpu.as_secs_f64(),
        r.dropped
    );
}

fn print_run(label: &str, r: &Run) {
    println!(
        "  {label:<6} {:>6.0} events/s wall, {:>6.0} per CPU-second of the process, dropped {}, peak RSS {:.1} MiB",
        r.rate(),
        r.cpu_rate(),
        r.dropped,
        r.peak_rss_kib as f64 / 1024.0
    );
}

/// Median, lowest and highest.
fn spread(mut v: Vec<f64>) -> String {
    v.sort_by(f64::total_cmp);
    let fmt = |x: f64| {
        if x < 10.0 {
            format!("{x:.2}")
        } else {
            format!("{x:.0}")
        }
    };
    format!(
        "{} ({}–{})",
        fmt(v[v.len() / 2]),
        fmt(v[0]),
        fmt(v[v.len() - 1])
    )
}

fn main() {
    if std::env::var_os("RUST_BACKTRACE").is_some() {
        eprintln!(
            "note: RUST_BACKTRACE is set; it slows ESL parsing. Figures are meant with it unset."
        );
    }
    // `cargo bench` passes `--bench`; anything else names one measurement.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if !args.is_empty() {
        single(&args);
        return;
    }
    let queue = default_queue();
    println!(
        "RUST_BACKTRACE {}, {} CPUs, load average {}, event queue {queue} slots with BlockFor(1 s)",
        if std::env::var_os("RUST_BACKTRACE").is_some() {
            "set"
        } else {
            "unset"
        },
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average()
    );
    let template = answer_template("sip-hold.events-plain.received.esl");
    let medium = answer_template("record.events-plain.received.esl");
    // 5,000 channels per block: more than the daemon remembers as hung up (4,096).
    let channels = 5_000;
    let block_events = channels as u64 * 4;
    let streams = [
        (&template, EventFormat::Plain, 5),
        (&template, EventFormat::Json, 5),
        (&medium, EventFormat::Plain, 10),
        (&medium, EventFormat::Json, 10),
    ];

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    // Latency and memory first, before the throughput runs have grown the heap.
    runtime.block_on(async {
        println!("template: CHANNEL_ANSWER with {} headers, load {}", template.len(), load_average());
        let (mut lat, rss_before, rss_live) =
            answer_latency(&template, 5_000, 2_000, queue).await;
        lat.sort();
        println!(
            "CHANNEL_ANSWER -> uuid_record written, 5000 live calls, {} answers: p50 {:?} p99 {:?} max {:?}, load {}",
            lat.len(),
            pct(&lat, 0.5),
            pct(&lat, 0.99),
            lat[lat.len() - 1],
            load_average()
        );
        println!(
            "RSS of the whole bench process (daemon, index, fake switch): {:.1} MiB before the calls, {:.1} MiB with 5000 live calls",
            rss_before as f64 / 1024.0,
            rss_live as f64 / 1024.0
        );
    });

    // The crate alone the way a parse rate is usually quoted: one thread, nothing else.
    println!("ESL crate isolated (one thread, loopback socket, writer on its own thread):");
    for (template, format, repeat) in streams {
        let bytes = Arc::new(stream(template, channels, format));
        print!("  {}-header {}: ", template.len(), format.as_str());
        print_isolated(&crate_isolated(bytes, block_events, repeat, queue));
    }

    runtime.block_on(async {
        // The crate and the daemon on the same stream, in the same runtime, alternately, a few
        // rounds each: neighbours' load comes and goes, a paired ratio is steadier than either.
        let rounds = 3;
        for (template, format, repeat) in streams {
            let bytes = Arc::new(stream(template, channels, format));
            println!(
                "{}-header {} stream: {} events ({:.0} bytes per event), {rounds} rounds, load {}",
                template.len(),
                format.as_str(),
                block_events * repeat,
                bytes.len() as f64 / block_events as f64,
                load_average()
            );
            let (mut crate_rates, mut daemon_rates, mut ratios, mut cpu_ratios) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            let mut dropped = 0;
            for _ in 0..rounds {
                let c = through_crate(bytes.clone(), block_events, repeat, queue).await;
                let d = through_daemon(bytes.clone(), block_events, repeat, format, queue).await;
                print_run("crate", &c);
                print_run("daemon", &d);
                crate_rates.push(c.rate());
                daemon_rates.push(d.rate());
                ratios.push(d.rate() / c.rate());
                cpu_ratios.push(d.cpu_rate() / c.cpu_rate());
                dropped += c.dropped + d.dropped;
            }
            println!(
                "  median (lowest–highest): crate {} events/s, daemon {} events/s, daemon/crate {} wall, {} per CPU-second; dropped {dropped}; load {}",
                spread(crate_rates),
                spread(daemon_rates),
                spread(ratios),
                spread(cpu_ratios),
                load_average()
            );
        }
        // A burst of 100,000 events written at once.
        let bytes = Arc::new(stream(&template, channels, EventFormat::Plain));
        let run = through_daemon(bytes, block_events, 5, EventFormat::Plain, queue).await;
        print!("burst: 100000 events written at once: ");
        print_run("daemon", &run);
    });
}

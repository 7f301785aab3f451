//! 1,000 portal clients following Calls in progress (`GET /calls/events`, server-sent
//! events) at once: how long a new call takes to reach every one of them, and what holding
//! them costs the server in memory and CPU.
//!
//! Each client is a signed-in session of its own (an admin of the site, so every client
//! sees every call), on its own keep-alive connection, as a browser tab holds it. Each
//! round puts a new call in the daemon's list and times, per client, the moment its stream
//! carries the call's uuid; "all" is the last client of the round. The server re-reads the
//! calls once a second per connection (`CALLS_TICK` in `portal/handlers.rs`), so a delivery
//! waits for that connection's next tick: up to a second by design, whatever the load.
//!
//! The server and the clients share this process and the machine's cores: the RSS figures
//! are the process's (`VmRSS`, under mimalloc as in the shipped binary), clients' tasks and
//! buffers included, and the CPU figure is the process's user + system time while the
//! 1,000 streams idle with no call changing.
//!
//! `cargo bench -p callrec-api --bench sse`; `CALLREC_BENCH_SSE_CLIENTS` (default 1,000),
//! `CALLREC_BENCH_SSE_ROUNDS` (default 20). The API's connection cap (`api.max_connections`,
//! default 512) would leave every client past the 512th waiting in the accept queue for
//! good, since an event stream never ends: the server here is configured for
//! `clients + 64` connections, and the open-files soft limit raised to the hard one.

#[path = "../../callrec-store/benches/support/mod.rs"]
mod store_support;
mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use callrec_api::{ApiConfig, ApiState, NoDaemon};
use callrec_model::{
    ActionError, ActionRequest, BoxFuture, CallRecording, DaemonStatus, Direction, LiveCall,
    LiveCalls, Role,
};
use callrec_store::{NewUser, PortalPolicy, SignIn, SignInAttempt, Store, StoreHandle};
use store_support::{Latencies, env_usize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

const PASSWORD: &str = "bench-password-0123";

/// The allocator of the shipped `callrec` binary, so the memory figures are the binary's
/// (with the system allocator, the 1,000 Argon2id checks of the sign-ins alone leave
/// hundreds of MiB in malloc's arenas).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The daemon's calls in progress, as the bench sets them.
#[derive(Default)]
struct Calls(Mutex<Vec<LiveCall>>);

impl LiveCalls for Calls {
    fn calls(&self) -> Vec<LiveCall> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn recording_action(
        &self,
        request: ActionRequest,
    ) -> BoxFuture<'_, Result<LiveCall, ActionError>> {
        NoDaemon.recording_action(request)
    }

    fn status(&self) -> DaemonStatus {
        DaemonStatus {
            esl_connected: true,
        }
    }

    fn metrics_text(&self) -> String {
        String::new()
    }
}

fn call(uuid: &str) -> LiveCall {
    LiveCall {
        call_uuid: uuid.to_owned(),
        site: "default".into(),
        user: "1001".into(),
        direction: Direction::Inbound,
        from: "02079460001".into(),
        to: "1001".into(),
        answered_at: chrono::Utc::now(),
        on_hold: false,
        recording: CallRecording::Recording,
        recording_id: None,
    }
}

/// A number field of `/proc/self/status` (`VmRSS` in KiB, `Threads`).
fn status(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(&format!("{field}:")))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or_else(|| panic!("{field} in /proc/self/status"))
}

/// `VmRSS` of this process in KiB, and its threads.
fn rss_kib() -> (u64, u64) {
    (status("VmRSS"), status("Threads"))
}

/// User + system CPU time of this process so far.
fn cpu_time() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: getrusage writes the struct it is given and nothing else.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    assert_eq!(rc, 0, "getrusage");
    // SAFETY: getrusage succeeded, so the struct is initialised.
    let u = unsafe { usage.assume_init() };
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// Raise the open-files soft limit to the hard one; returns the limit now in force.
fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a local struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        if lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
        }
    }
    lim.rlim_cur
}

/// One client: sends the request, waits for the first event (the list as it is), says it is
/// ready, then reports each round's uuid the moment it appears in the stream.
async fn follow(
    addr: std::net::SocketAddr,
    cookie: String,
    rounds: usize,
    ready: mpsc::UnboundedSender<()>,
    seen: mpsc::UnboundedSender<(usize, Duration)>,
    triggered: Arc<Vec<AtomicU64>>,
    base: Instant,
) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let req = format!(
        "GET /calls/events HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\
         Cookie: callrec_session={cookie}\r\n\r\n"
    );
    stream.write_all(req.as_bytes()).await.expect("request");
    // Small buffers (an event is the calls list, about 1.5 KB), so that the clients' share
    // of the process's memory stays small next to the server's.
    let mut buf = vec![0u8; 4 * 1024];
    // What is kept of the stream: enough to find a uuid cut across two reads.
    let mut window: Vec<u8> = Vec::with_capacity(8 * 1024);
    let mut head_done = false;
    let mut next_round = 0usize;
    while next_round < rounds {
        let n = stream.read(&mut buf).await.expect("read");
        assert!(n > 0, "the server closed an event stream");
        window.extend_from_slice(&buf[..n]);
        if !head_done {
            let Some(end) = find(&window, b"event:calls") else {
                continue;
            };
            assert!(
                window.starts_with(b"HTTP/1.1 200"),
                "{}",
                String::from_utf8_lossy(&window)
            );
            head_done = true;
            window.drain(..end);
            let _ = ready.send(());
        }
        // Every round's uuid still to come that is now in the stream (normally one).
        loop {
            let want = format!("bench-call-{next_round}-");
            let Some(at) = find(&window, want.as_bytes()) else {
                break;
            };
            let now = base.elapsed();
            let t = Duration::from_nanos(triggered[next_round].load(Ordering::Acquire));
            let _ = seen.send((next_round, now.saturating_sub(t)));
            window.drain(..at + want.len());
            next_round += 1;
            if next_round == rounds {
                break;
            }
        }
        let keep = window.len().saturating_sub(64);
        window.drain(..keep);
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn main() {
    let clients = env_usize("CALLREC_BENCH_SSE_CLIENTS", 1_000);
    let rounds = env_usize("CALLREC_BENCH_SSE_ROUNDS", 20);
    let nofile = raise_nofile();
    assert!(
        nofile as usize > 2 * clients + 256,
        "{clients} clients need about {} descriptors (both ends of each connection); \
         the open-files limit is {nofile}",
        2 * clients + 256
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = Store::open(dir.path().join("data")).expect("open");
    let mut admin = NewUser::new("default", "9000");
    admin.role = Role::Admin;
    store.add_user(&admin, "bench").expect("admin");
    store
        .add_user(&NewUser::new("default", "1001"), "bench")
        .expect("user");
    store
        .set_password("default", "9000", PASSWORD, "bench")
        .expect("password");
    let store = StoreHandle::new(store);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    // One session per client (each an Argon2id check, two at a time).
    let t = Instant::now();
    let cookies: Vec<String> = rt.block_on(async {
        let mut cookies = Vec::with_capacity(clients);
        let mut batch = Vec::new();
        for i in 0..clients {
            let store = store.clone();
            batch.push(tokio::spawn(async move {
                let attempt = SignInAttempt {
                    account: "9000".into(),
                    password: PASSWORD.into(),
                    address: format!("10.0.{}.{}", i / 250, i % 250 + 1),
                };
                match store.sign_in(attempt, PortalPolicy::default()).await {
                    Ok(SignIn::Granted(s)) => s.secret,
                    other => panic!("sign-in refused: {other:?}"),
                }
            }));
            if batch.len() == 2 || i + 1 == clients {
                for h in batch.drain(..) {
                    cookies.push(h.await.expect("sign-in task"));
                }
            }
        }
        cookies
    });
    println!(
        "{clients} sessions signed in in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let calls = Arc::new(Calls::default());
    let mut config = ApiConfig::default();
    config.limits.max_connections = clients + 64;
    let addr = support::start_api(ApiState::with_config(store, calls.clone(), config));
    // The sign-ins' Argon2id memory goes back when the blocking threads that ran them end
    // (tokio ends one after 10 s idle): the baseline is taken after that.
    std::thread::sleep(Duration::from_secs(12));
    let rss_idle = rss_kib();

    let base = Instant::now();
    let triggered: Arc<Vec<AtomicU64>> =
        Arc::new((0..rounds).map(|_| AtomicU64::new(u64::MAX)).collect());
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    let (seen_tx, mut seen_rx) = mpsc::unbounded_channel();
    let t = Instant::now();
    let tasks: Vec<_> = cookies
        .into_iter()
        .map(|cookie| {
            rt.spawn(follow(
                addr,
                cookie,
                rounds,
                ready_tx.clone(),
                seen_tx.clone(),
                triggered.clone(),
                base,
            ))
        })
        .collect();
    rt.block_on(async {
        for _ in 0..clients {
            ready_rx.recv().await.expect("a client is ready");
        }
    });
    println!(
        "{clients} event streams open (each with its first event) in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    // The streams idle: no call changes for 10 s.
    let (cpu0, t0) = (cpu_time(), Instant::now());
    std::thread::sleep(Duration::from_secs(10));
    let idle_cpu = (cpu_time() - cpu0).as_secs_f64() / t0.elapsed().as_secs_f64();
    let rss_held = rss_kib();

    let mut per_client = Latencies(Vec::with_capacity(rounds * clients));
    let mut all = Latencies(Vec::with_capacity(rounds));
    let mut jitter = 0u64;
    for round in 0..rounds {
        // Start each round at a different point of the connections' tick.
        jitter = (jitter * 7919 + 104_729) % 1000;
        std::thread::sleep(Duration::from_millis(300 + jitter));
        let uuid = format!("bench-call-{round}-{}", uuid::Uuid::new_v4());
        let at = base.elapsed();
        triggered[round].store(at.as_nanos() as u64, Ordering::Release);
        *calls.0.lock().unwrap_or_else(|p| p.into_inner()) = vec![call(&uuid)];
        let slowest = rt.block_on(async {
            let mut slowest = Duration::ZERO;
            for _ in 0..clients {
                let (r, took) = seen_rx.recv().await.expect("a delivery");
                assert_eq!(r, round, "a delivery of another round");
                per_client.0.push(took);
                slowest = slowest.max(took);
            }
            slowest
        });
        all.0.push(slowest);
    }
    let rss_after = rss_kib();
    rt.block_on(async {
        for t in tasks {
            t.await.expect("client");
        }
    });

    println!(
        "a new call reaching each of {clients} clients ({rounds} rounds): {}",
        per_client.summary()
    );
    let worst = all.0.iter().max().copied().unwrap_or_default();
    println!(
        "a new call reaching all {clients} clients (per round):         {}  max {:.3} ms",
        all.summary(),
        worst.as_secs_f64() * 1000.0
    );
    println!(
        "RSS (server + clients, one process): {:.1} MiB ({} threads) with the server idle, \
         {:.1} MiB ({} threads) with {clients} streams open (after 10 s), {:.1} MiB ({} \
         threads) after {rounds} rounds; {:.1} KiB per stream",
        rss_idle.0 as f64 / 1024.0,
        rss_idle.1,
        rss_held.0 as f64 / 1024.0,
        rss_held.1,
        rss_after.0 as f64 / 1024.0,
        rss_after.1,
        (rss_held.0.saturating_sub(rss_idle.0)) as f64 / clients as f64
    );
    println!(
        "CPU with {clients} idle streams (no call changing): {:.0} % of one core \
         (process user + system, 10 s)",
        idle_cpu * 100.0
    );
}

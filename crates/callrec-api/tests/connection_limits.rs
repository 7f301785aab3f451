//! What a client that never finishes a request can hold of the daemon (issue 12): idle and
//! slow connections are closed after the header timeout, at most `max_connections` (and
//! never the descriptors the rest of the daemon needs) are served at once, and meanwhile
//! `/healthz`, an authenticated search and an ingest all succeed.
//!
//! Its own test binary: it lowers the process's open-files limit.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use callrec_api::ApiConfig;
use callrec_api::server::Limits;
use support::{World, t0};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The open-files limit of this test process: 1,500 client sockets and as many accepted
/// ones (what warp's own server did) would need more than this.
const NOFILE: u64 = 2048;
const IDLE: usize = 1500;
const SLOW: usize = 10;

fn lower_open_files_limit(to: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the struct they are given.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = to.min(limit.rlim_max);
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
}

/// One request on a new connection; the status, or `None` if the connection failed.
async fn status_of(addr: SocketAddr, path: &str, token: Option<&str>) -> Option<u16> {
    let mut s = TcpStream::connect(addr).await.ok()?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.ok()?;
    let head = String::from_utf8_lossy(&raw);
    head.split(' ').nth(1)?.parse().ok()
}

/// Whether the server closed the connection (a read sees its end, or a reset).
async fn closed_by_server(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    matches!(s.read(&mut buf).await, Ok(0) | Err(_))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_slow_connections_neither_starve_the_api_nor_ingest_and_are_closed() {
    lower_open_files_limit(NOFILE);
    let limits = Limits {
        max_connections: 512,
        header_timeout: Duration::from_secs(2),
    };
    assert_eq!(limits.for_process().max_connections, 512);
    let mut w = World::with_config(ApiConfig {
        limits,
        ..ApiConfig::default()
    });
    let alice = w.alice.clone();
    w.record(&alice.user, "1001", "01234567891", t0(), 2_000);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(callrec_api::serve(listener, w.state.clone(), async move {
        let _ = stopped.await;
    }));

    // Connections that never send a byte, and ones that send a request head a byte at a time.
    let mut idle = Vec::with_capacity(IDLE);
    for _ in 0..IDLE {
        idle.push(TcpStream::connect(addr).await.expect(
            "a connection (this process has descriptors for them unless the server takes one for every connection it is sent)",
        ));
    }
    let slow: Vec<_> = (0..SLOW)
        .map(|_| {
            tokio::spawn(async move {
                let mut s = TcpStream::connect(addr).await.ok()?;
                for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: aaaaaaaaaaaaaaaa" {
                    if s.write_all(&[*byte]).await.is_err() {
                        return Some(true);
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Some(false)
            })
        })
        .collect();

    // Meanwhile the API answers and a recording is ingested (files opened in this process).
    let within = Duration::from_secs(60);
    let health = tokio::time::timeout(within, status_of(addr, "/healthz", None))
        .await
        .expect("/healthz answered while idle connections are held");
    assert_eq!(health, Some(200));
    let search = tokio::time::timeout(
        within,
        status_of(addr, "/api/v1/recordings", Some(&alice.token)),
    )
    .await
    .expect("a search answered while idle connections are held");
    assert_eq!(search, Some(200));
    let store = w.store.clone();
    let spool = w.spool.clone();
    let user = alice.user.clone();
    let ingested = tokio::task::spawn_blocking(move || {
        let bytes = callrec_testkit::wav::noise(1_000, 99);
        support::record_with(
            &store,
            &spool,
            &user,
            "1001",
            "01234567892",
            t0(),
            &bytes,
            callrec_model::Direction::Outbound,
        )
    })
    .await
    .expect("an ingest succeeds while idle connections are held");
    assert_eq!(ingested.state, callrec_model::RecordingState::Stored);

    // Every idle connection is closed by the server, and every slow one cut off.
    for s in &mut idle {
        let closed = tokio::time::timeout(within, closed_by_server(s))
            .await
            .unwrap_or(false);
        assert!(closed, "an idle connection was left open");
    }
    for task in slow {
        let cut = task.await.unwrap();
        assert_eq!(cut, Some(true), "a slow request head was not cut off");
    }

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(30), server)
        .await
        .expect("serve returned")
        .unwrap();
}

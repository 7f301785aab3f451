//! `serve` on a real socket: the daemon's entry point binds the listener and passes a
//! shutdown future. What only a socket shows: a large file streamed byte for byte, a chunked
//! body with no length stopped at the limit, a lying Content-Length refused before the body
//! arrives, and shutdown returning once asked.

mod support;

use std::time::Duration;

use support::{World, exchange, read_response, start, t0};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_recording_streams_over_the_socket_byte_for_byte_and_shutdown_returns() {
    let mut w = World::new();
    let alice = w.alice.user.clone();
    // About 8 MB.
    let (rec, bytes) = w.record(&alice, "1001", "01234567891", t0(), 500_000);
    let mut running = start(&w).await;

    let req = format!(
        "GET /api/v1/recordings/{}/audio HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        rec.id, w.alice.token
    );
    let r = exchange(running.addr, req.as_bytes()).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-length"),
        Some(bytes.len().to_string().as_str())
    );
    assert!(r.body == bytes, "the body differs from the stored file");

    let req = format!(
        "GET /api/v1/recordings/{}/audio HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nRange: bytes=1000000-2999999\r\nConnection: close\r\n\r\n",
        rec.id, w.alice.token
    );
    let r = exchange(running.addr, req.as_bytes()).await;
    assert_eq!(r.status, 206);
    assert!(r.body == bytes[1_000_000..3_000_000]);

    // HEAD: what GET would say, without the body (it was a 405).
    let req = format!(
        "HEAD /api/v1/recordings/{}/audio HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        rec.id, w.alice.token
    );
    let r = exchange(running.addr, req.as_bytes()).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-length"),
        Some(bytes.len().to_string().as_str())
    );
    assert_eq!(r.header("content-type"), Some("audio/wav"));
    assert!(r.body.is_empty(), "{} bytes after a HEAD", r.body.len());

    // A client that asks and goes away does not upset the server.
    let mut s = TcpStream::connect(running.addr).await.unwrap();
    let req = format!(
        "GET /api/v1/recordings/{}/audio HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n",
        rec.id, w.alice.token
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut first = [0u8; 1024];
    let _ = s.read(&mut first).await.unwrap();
    drop(s);
    let r = exchange(
        running.addr,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 200);

    running.stop.take().unwrap().send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), running.server)
        .await
        .expect("serve did not return after shutdown")
        .unwrap();
    assert!(
        TcpStream::connect(running.addr).await.is_err(),
        "still listening after shutdown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_are_refused_with_413_whether_chunked_or_declared() {
    let mut w = World::new();
    let alice = w.alice.user.clone();
    let (rec, _) = w.record(&alice, "1001", "01234567891", t0(), 300);
    let running = start(&w).await;
    let limit = callrec_api::ApiConfig::default().max_body_bytes as usize;

    // Chunked, no Content-Length, more than the limit in total.
    let mut req = format!(
        "POST /api/v1/recordings/{}/notes HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        rec.id, w.alice.token
    )
    .into_bytes();
    let chunk = vec![b'x'; 8192];
    req.extend_from_slice(b"9\r\n{\"text\":\"\r\n");
    for _ in 0..(limit / chunk.len() + 2) {
        req.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        req.extend_from_slice(&chunk);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"2\r\n\"}\r\n0\r\n\r\n");
    let r = exchange(running.addr, &req).await;
    assert_eq!(r.status, 413, "{}", String::from_utf8_lossy(&r.body));
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["error"]["code"], "payload_too_large");

    // A Content-Length over the limit is refused before the body is sent at all.
    let mut s = TcpStream::connect(running.addr).await.unwrap();
    let head = format!(
        "PUT /api/v1/site HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 1000000000\r\nConnection: close\r\n\r\n",
        w.admin.token
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let r = read_response(&mut s).await;
    assert_eq!(r.status, 413);

    // And a note of a sensible size goes through the same socket path.
    let note = serde_json::json!({"text": "called back"}).to_string();
    let req = format!(
        "POST /api/v1/recordings/{}/notes HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{note}",
        rec.id,
        w.alice.token,
        note.len()
    );
    let r = exchange(running.addr, req.as_bytes()).await;
    assert_eq!(r.status, 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_cannot_hold_shutdown_past_the_grace_period() {
    let mut w = World::with_config(callrec_api::ApiConfig {
        shutdown_grace: Duration::from_millis(300),
        ..callrec_api::ApiConfig::default()
    });
    let alice = w.alice.user.clone();
    // Larger than the socket buffers, so the server is left waiting to write.
    let (rec, _) = w.record(&alice, "1001", "01234567891", t0(), 500_000);
    let mut running = start(&w).await;
    let mut s = TcpStream::connect(running.addr).await.unwrap();
    let req = format!(
        "GET /api/v1/recordings/{}/audio HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n",
        rec.id, w.alice.token
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut first = [0u8; 1024];
    let n = s.read(&mut first).await.unwrap();
    assert!(first[..n].starts_with(b"HTTP/1.1 200"));
    // The client now reads nothing more and keeps the connection open.
    running.stop.take().unwrap().send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), running.server)
        .await
        .expect("serve waited on a stuck client past its grace period")
        .unwrap();
    drop(s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_portal_sign_in_over_the_socket_is_counted_against_the_peers_address() {
    let w = World::new();
    let running = start(&w).await;
    let before = w.audit_head().await;
    let body = "csrf=t&account=1001&password=not+the+password";
    let req = format!(
        "POST /signin HTTP/1.1\r\nHost: x\r\nCookie: callrec_signin=t\r\nContent-Type: \
         application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let r = exchange(running.addr, req.as_bytes()).await;
    assert_eq!(r.status, 401);
    let failed = w
        .audit_since(before)
        .await
        .into_iter()
        .find(|e| e.action == "session.signin_failed")
        .expect("the failure is audited");
    assert_eq!(failed.actor, "portal:127.0.0.1");
}

/// `[api] metrics_allow`: `/metrics` only to the listed networks, a 403 in the JSON error
/// shape to anyone else; the rest of the API is unchanged. Through a trusted proxy, the
/// forwarded client is who is checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_only_to_metrics_allow_when_it_is_set() {
    let get = |addr, forwarded: &str| {
        let req =
            format!("GET /metrics HTTP/1.1\r\nHost: x\r\n{forwarded}Connection: close\r\n\r\n");
        async move { exchange(addr, req.as_bytes()).await }
    };
    for (allow, proxies, forwarded, status) in [
        (vec![], vec![], "", 200),
        (vec!["10.0.0.0/8"], vec![], "", 403),
        (vec!["127.0.0.1/32"], vec![], "", 200),
        // A client behind a trusted proxy is checked, not the proxy.
        (
            vec!["127.0.0.1/32"],
            vec!["127.0.0.1/32"],
            "X-Forwarded-For: 203.0.113.9\r\n",
            403,
        ),
        (
            vec!["203.0.113.0/24"],
            vec!["127.0.0.1/32"],
            "X-Forwarded-For: 203.0.113.9\r\n",
            200,
        ),
        // An untrusted peer cannot claim an allowed address.
        (
            vec!["203.0.113.0/24"],
            vec![],
            "X-Forwarded-For: 203.0.113.9\r\n",
            403,
        ),
    ] {
        let w = World::with_config(callrec_api::ApiConfig {
            metrics_allow: allow.iter().map(|n| n.parse().unwrap()).collect(),
            trusted_proxies: callrec_api::forwarded::TrustedProxies::new(
                proxies.iter().map(|n| n.parse().unwrap()).collect(),
            ),
            ..callrec_api::ApiConfig::default()
        });
        let running = start(&w).await;
        let r = get(running.addr, forwarded).await;
        assert_eq!(
            r.status, status,
            "allow {allow:?} proxies {proxies:?} {forwarded}"
        );
        let body = String::from_utf8_lossy(&r.body);
        if status == 403 {
            let json: serde_json::Value = serde_json::from_str(&body).expect("a JSON error");
            assert_eq!(json["error"]["code"], "forbidden", "{body}");
            assert!(body.contains("metrics_allow"), "{body}");
        } else {
            assert!(body.contains("callrec_"), "{body}");
        }
        let health = exchange(
            running.addr,
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert_eq!(health.status, 200);
    }
}

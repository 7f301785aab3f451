//! How fast the simulator emits events, so a benchmark of the daemon knows the simulator
//! is not its bottleneck. Run with `cargo bench -p callrec-sim`.
//!
//! - storm: pre-rendered full-size channel events written to one socket as fast as it
//!   takes them (the reader only counts bytes);
//! - live calls: calls placed through the real templates and clock, every event rendered,
//!   serialised and written to a subscribed socket.

use std::time::{Duration, Instant};

use callrec_model::EventFormat;
use callrec_sim::load::{LoadSpec, StormSpec};
use callrec_sim::{SimConfig, Simulator};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn subscribed_socket(sim: &Simulator, format: &str) -> TcpStream {
    let mut s = TcpStream::connect(sim.esl_addr()).await.expect("connect");
    s.write_all(format!("auth ClueCon\n\nevent {format} ALL\n\n").as_bytes())
        .await
        .expect("send");
    // auth/request, auth reply, event reply.
    let mut seen = Vec::new();
    while seen.windows(2).filter(|w| w == b"\n\n").count() < 3 {
        let mut b = [0u8; 256];
        let n = s.read(&mut b).await.expect("read");
        seen.extend_from_slice(&b[..n]);
    }
    s
}

/// Reads until `events` frames of the given content type have arrived, framing by
/// `Content-Length` so the reader is never slower than the writer.
async fn count_frames(
    mut s: TcpStream,
    content_type: &'static str,
    events: u64,
) -> (u64, Duration) {
    let started = Instant::now();
    let mut seen = 0u64;
    let mut buf: Vec<u8> = Vec::with_capacity(4 << 20);
    let mut chunk = vec![0u8; 1 << 20];
    let mut pos = 0;
    'read: while seen < events {
        let n = s.read(&mut chunk).await.expect("read");
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        while let Some(end) = buf[pos..].windows(2).position(|w| w == b"\n\n") {
            let head = &buf[pos..pos + end];
            let len: usize = std::str::from_utf8(head)
                .ok()
                .and_then(|h| h.lines().find_map(|l| l.strip_prefix("Content-Length: ")))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let frame_end = pos + end + 2 + len;
            if frame_end > buf.len() {
                break;
            }
            if head
                .windows(content_type.len())
                .any(|w| w == content_type.as_bytes())
            {
                seen += 1;
                if seen >= events {
                    break 'read;
                }
            }
            pos = frame_end;
        }
        buf.drain(..pos);
        pos = 0;
    }
    (seen, started.elapsed())
}

async fn storm(format: EventFormat, label: &str, ct: &'static str) {
    let spool = tempfile::tempdir().expect("tempdir");
    let sim = Simulator::start(SimConfig {
        spool_dir: spool.path().into(),
        heartbeat: Duration::ZERO,
        ..SimConfig::default()
    })
    .await
    .expect("simulator");
    let sock = subscribed_socket(&sim, label).await;
    let calls = 2_000;
    let reader = tokio::spawn(count_frames(sock, ct, u64::MAX));
    let reports = sim
        .event_storm(StormSpec { calls, format })
        .await
        .expect("storm");
    sim.drop_connections();
    let (read, _) = reader.await.expect("reader");
    let r = &reports[0];
    println!(
        "storm {label:5}: {} events ({} read), {:.1} MB in {:.2?}: {:.0} events/s, {:.0} MB/s",
        r.events,
        read,
        r.bytes as f64 / 1e6,
        r.elapsed,
        r.events_per_second(),
        r.bytes as f64 / 1e6 / r.elapsed.as_secs_f64()
    );
}

async fn live_calls() {
    let spool = tempfile::tempdir().expect("tempdir");
    let sim = Simulator::start(SimConfig {
        spool_dir: spool.path().into(),
        heartbeat: Duration::ZERO,
        ..SimConfig::default()
    })
    .await
    .expect("simulator");
    let sock = subscribed_socket(&sim, "plain").await;
    let mut tap = sim.subscribe();
    let calls = 1_000;
    sim.start_load(LoadSpec {
        calls,
        per_second: 1000.0,
        callers: (1000..1100).map(|n| n.to_string()).collect(),
        callees: vec!["02071234567".into()],
        ring: Duration::from_secs(1),
        talk: Duration::from_secs(30),
    });
    let started = Instant::now();
    sim.advance(Duration::from_secs(40)).expect("clock");
    let generated = started.elapsed();
    let mut events = 0u64;
    while tap.try_recv().is_ok() {
        events += 1;
    }
    let (read, total) = count_frames(sock, "text/event-plain", events).await;
    let total = total + generated;
    println!(
        "live calls: {calls} SIP calls, {events} events generated in {generated:.2?} ({:.0}/s), \
         all {read} on the socket after {total:.2?} ({:.0} events/s end to end)",
        events as f64 / generated.as_secs_f64(),
        read as f64 / total.as_secs_f64()
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        storm(EventFormat::Plain, "plain", "text/event-plain").await;
        storm(EventFormat::Json, "json", "text/event-json").await;
        live_calls().await;
    });
}

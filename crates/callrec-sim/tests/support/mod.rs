//! Helpers shared by the simulator's integration tests: Event Socket peers that keep every
//! frame as written.
//!
//! The captures are read with `callrec_testkit::capture`, deliberately independent of the
//! simulator's own code: tests that compare the simulator with the captures must not use the
//! code under test to read the captures.

#![allow(dead_code)]

pub mod compare;

use std::time::Duration;

use callrec_testkit::capture::{Frame, take_frame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The next whole frame from `stream` (`buf` keeps what was read past it), or `None` on EOF
/// or timeout.
pub async fn read_frame(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    timeout: Duration,
) -> Option<Frame> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(f) = take_frame(buf) {
            return Some(f);
        }
        let mut chunk = vec![0u8; 64 * 1024];
        let n = tokio::time::timeout_at(deadline, stream.read(&mut chunk))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A bare Event Socket client that keeps every frame as written (for comparing header
/// names, order and duplicates, which a map-based client would fold).
pub struct RawClient {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Events that arrived while a command waited for its reply.
    pub pending: Vec<Frame>,
}

impl RawClient {
    /// Connects and authenticates.
    pub async fn connect(addr: std::net::SocketAddr, password: &str) -> RawClient {
        let stream = TcpStream::connect(addr)
            .await
            .expect("connect to simulator");
        let mut c = RawClient {
            stream,
            buf: Vec::new(),
            pending: Vec::new(),
        };
        let greeting = c
            .next_frame(Duration::from_secs(5))
            .await
            .expect("auth/request");
        assert_eq!(greeting.content_type(), "auth/request");
        let reply = c.command(&format!("auth {password}")).await;
        assert_eq!(reply.header("Reply-Text"), Some("+OK accepted"));
        c
    }

    /// Sends a command and returns the next reply; events that arrive first are kept.
    pub async fn command(&mut self, cmd: &str) -> Frame {
        self.send(cmd).await;
        self.next_reply(Duration::from_secs(10))
            .await
            .expect("reply")
    }

    pub async fn send(&mut self, cmd: &str) {
        self.stream
            .write_all(format!("{cmd}\n\n").as_bytes())
            .await
            .expect("write command");
    }

    /// The next event: one kept while waiting for a reply, or the next from the socket.
    pub async fn next_event(&mut self, timeout: Duration) -> Option<Frame> {
        if !self.pending.is_empty() {
            return Some(self.pending.remove(0));
        }
        loop {
            let f = self.next_frame(timeout).await?;
            if f.is_event() {
                return Some(f);
            }
        }
    }

    /// The next frame, or `None` on EOF or timeout.
    pub async fn next_frame(&mut self, timeout: Duration) -> Option<Frame> {
        read_frame(&mut self.stream, &mut self.buf, timeout).await
    }

    /// Events seen while waiting for replies.
    pub async fn next_reply(&mut self, timeout: Duration) -> Option<Frame> {
        loop {
            let f = self.next_frame(timeout).await?;
            if f.is_reply() {
                return Some(f);
            }
            self.pending.push(f);
        }
    }
}

/// The listener end of an outbound session: sends commands, keeps every frame.
pub struct RawPeer {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Every frame received, in order.
    pub frames: Vec<Frame>,
}

impl RawPeer {
    pub fn new(stream: TcpStream) -> RawPeer {
        RawPeer {
            stream,
            buf: Vec::new(),
            frames: Vec::new(),
        }
    }

    /// Sends a command with headers and waits for its reply (events before it are kept).
    pub async fn command(&mut self, line: &str, headers: &[(String, String)]) -> Frame {
        let mut cmd = format!("{line}\n");
        for (n, v) in headers {
            cmd.push_str(&format!("{n}: {v}\n"));
        }
        cmd.push('\n');
        self.stream.write_all(cmd.as_bytes()).await.expect("send");
        loop {
            let f = self
                .next_frame(Duration::from_secs(5))
                .await
                .expect("reply");
            self.frames.push(f.clone());
            if f.is_reply() {
                return f;
            }
        }
    }

    /// The next frame, or `None` on EOF or timeout.
    pub async fn next_frame(&mut self, timeout: Duration) -> Option<Frame> {
        read_frame(&mut self.stream, &mut self.buf, timeout).await
    }
}

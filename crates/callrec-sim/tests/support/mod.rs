//! Helpers shared by the simulator's integration tests.
//!
//! The frame parser here is deliberately independent of the simulator's own code: tests
//! that compare the simulator with the captures must not use the code under test to read
//! the captures.

#![allow(dead_code)]

pub mod compare;

use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Where the reference captures live.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/freeswitch")
}

/// Reads one fixture file.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = fixtures_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// One frame of an Event Socket stream, exactly as written.
#[derive(Debug, Clone)]
pub struct RawFrame {
    /// The envelope headers, values as written.
    pub envelope: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// The frame's bytes.
    pub bytes: Vec<u8>,
}

impl RawFrame {
    pub fn content_type(&self) -> &str {
        self.header("Content-Type").unwrap_or("")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.envelope
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn is_reply(&self) -> bool {
        matches!(self.content_type(), "command/reply" | "api/response")
    }

    pub fn is_event(&self) -> bool {
        self.content_type().starts_with("text/event-")
    }

    /// Header names and raw values of a `text/event-plain` body.
    pub fn plain_headers(&self) -> Vec<(String, String)> {
        let text = String::from_utf8_lossy(&self.body);
        let head = text.split("\n\n").next().unwrap_or("");
        head.lines()
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (n, v) = l.split_once(": ").unwrap_or((l, ""));
                (n.to_string(), v.to_string())
            })
            .collect()
    }

    /// The event's name: the last `Event-Name` (a PRIVATE_COMMAND repeats the command's).
    pub fn event_name(&self) -> String {
        let headers = self.plain_headers();
        let name = headers
            .iter()
            .rev()
            .find(|(n, _)| n == "Event-Name")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        match name.as_str() {
            "CHANNEL_EXECUTE" | "CHANNEL_EXECUTE_COMPLETE" => {
                let app = headers
                    .iter()
                    .find(|(n, _)| n == "Application")
                    .map(|(_, v)| v.as_str())
                    .unwrap_or("");
                format!("{name}:{app}")
            }
            "CUSTOM" => {
                let sub = headers
                    .iter()
                    .find(|(n, _)| n == "Event-Subclass")
                    .map(|(_, v)| v.as_str())
                    .unwrap_or("");
                format!("{name}:{sub}")
            }
            _ => name,
        }
    }

    /// The channel an event belongs to.
    pub fn unique_id(&self) -> Option<String> {
        self.plain_headers()
            .into_iter()
            .find(|(n, _)| n == "Unique-ID")
            .map(|(_, v)| v)
    }
}

/// Splits a byte stream into frames.
pub fn split_frames(data: &[u8]) -> Vec<RawFrame> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < data.len() {
        let Some(rel) = data[i..].windows(2).position(|w| w == b"\n\n") else {
            panic!("unterminated frame at byte {i}");
        };
        let head = String::from_utf8_lossy(&data[i..i + rel]).into_owned();
        let envelope: Vec<(String, String)> = head
            .lines()
            .map(|l| {
                let (n, v) = l.split_once(": ").unwrap_or((l, ""));
                (n.to_string(), v.to_string())
            })
            .collect();
        let len: usize = envelope
            .iter()
            .find(|(n, _)| n == "Content-Length")
            .map(|(_, v)| v.parse().expect("numeric Content-Length"))
            .unwrap_or(0);
        let end = i + rel + 2 + len;
        assert!(end <= data.len(), "frame body runs past the end");
        out.push(RawFrame {
            envelope,
            body: data[i + rel + 2..end].to_vec(),
            bytes: data[i..end].to_vec(),
        });
        i = end;
    }
    out
}

/// Splits what a client sent into commands (first line and header lines).
pub fn split_commands(data: &[u8]) -> Vec<(String, Vec<(String, String)>)> {
    String::from_utf8_lossy(data)
        .split("\n\n")
        .filter(|c| !c.trim().is_empty())
        .map(|c| {
            let mut lines = c.lines();
            let first = lines.next().unwrap_or("").to_string();
            let headers = lines
                .map(|l| {
                    let (n, v) = l.split_once(": ").unwrap_or((l, ""));
                    (n.to_string(), v.to_string())
                })
                .collect();
            (first, headers)
        })
        .collect()
}

/// A bare Event Socket client that keeps every frame as written (for comparing header
/// names, order and duplicates, which a map-based client would fold).
pub struct RawClient {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Events that arrived while a command waited for its reply.
    pub pending: Vec<RawFrame>,
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
    pub async fn command(&mut self, cmd: &str) -> RawFrame {
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
    pub async fn next_event(&mut self, timeout: Duration) -> Option<RawFrame> {
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
    pub async fn next_frame(&mut self, timeout: Duration) -> Option<RawFrame> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(f) = self.try_frame() {
                return Some(f);
            }
            let mut chunk = vec![0u8; 64 * 1024];
            let n = tokio::time::timeout_at(deadline, self.stream.read(&mut chunk))
                .await
                .ok()?
                .ok()?;
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn try_frame(&mut self) -> Option<RawFrame> {
        let rel = self.buf.windows(2).position(|w| w == b"\n\n")?;
        let head = String::from_utf8_lossy(&self.buf[..rel]).into_owned();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if self.buf.len() < rel + 2 + len {
            return None;
        }
        let bytes: Vec<u8> = self.buf.drain(..rel + 2 + len).collect();
        split_frames(&bytes).into_iter().next()
    }

    /// Events seen while waiting for replies.
    pub async fn next_reply(&mut self, timeout: Duration) -> Option<RawFrame> {
        loop {
            let f = self.next_frame(timeout).await?;
            if f.is_reply() {
                return Some(f);
            }
            self.pending.push(f);
        }
    }
}

/// Polls `check` until it returns true or the deadline passes.
pub async fn eventually(timeout: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The listener end of an outbound session: sends commands, keeps every frame.
pub struct RawPeer {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Every frame received, in order.
    pub frames: Vec<RawFrame>,
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
    pub async fn command(&mut self, line: &str, headers: &[(String, String)]) -> RawFrame {
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
    pub async fn next_frame(&mut self, timeout: Duration) -> Option<RawFrame> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(rel) = self.buf.windows(2).position(|w| w == b"\n\n") {
                let head = String::from_utf8_lossy(&self.buf[..rel]).into_owned();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("Content-Length: "))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                if self.buf.len() >= rel + 2 + len {
                    let bytes: Vec<u8> = self.buf.drain(..rel + 2 + len).collect();
                    return split_frames(&bytes).into_iter().next();
                }
            }
            let mut chunk = vec![0u8; 64 * 1024];
            let n = tokio::time::timeout_at(deadline, self.stream.read(&mut chunk))
                .await
                .ok()?
                .ok()?;
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

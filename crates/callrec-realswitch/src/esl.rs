//! A small blocking Event Socket client: enough to drive the switch from a test (`api`,
//! `bgapi`) and to watch its events. callrec itself speaks ESL through
//! `freeswitch-esl-tokio`; this one is deliberately separate so that the suite does not test
//! the product's ESL code with itself.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// One frame: its headers (values as sent, percent-encoding left alone) and its body.
#[derive(Debug, Clone, Default)]
pub struct Frame {
    /// The headers in the order-insensitive form tests need.
    pub headers: BTreeMap<String, String>,
    /// The body (`Content-Length` bytes), empty if none.
    pub body: String,
}

impl Frame {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// For a `text/event-plain` frame, the event's own headers (the body parsed).
    pub fn event(&self) -> BTreeMap<String, String> {
        parse_headers(&self.body)
    }
}

fn parse_headers(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// An authenticated inbound Event Socket connection.
pub struct Esl {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Esl {
    /// Connects to `127.0.0.1:port` and authenticates with `password`.
    pub fn connect(port: u16, password: &str) -> io::Result<Esl> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        let mut esl = Esl {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        };
        let hello = esl.read_frame()?;
        if hello.header("Content-Type") != Some("auth/request") {
            return Err(io::Error::other(format!("no auth request: {hello:?}")));
        }
        let reply = esl.command(&format!("auth {password}"))?;
        if !reply.starts_with("+OK") {
            return Err(io::Error::other(format!("auth refused: {reply}")));
        }
        Ok(esl)
    }

    /// A handle on the connection's socket: shutting it down from another thread ends a
    /// `read_frame` blocked on it.
    pub fn socket(&self) -> io::Result<TcpStream> {
        self.writer.try_clone()
    }

    /// Reads one frame.
    pub fn read_frame(&mut self) -> io::Result<Frame> {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            if line == "\n" {
                if head.is_empty() {
                    continue;
                }
                break;
            }
            head.push_str(&line);
        }
        let headers = parse_headers(&head);
        let len: usize = headers
            .get("Content-Length")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        self.reader.read_exact(&mut body)?;
        Ok(Frame {
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }

    /// Sends a command (`event plain ...`, `auth`, `bgapi ...`) and returns its `Reply-Text`.
    pub fn command(&mut self, command: &str) -> io::Result<String> {
        self.writer.write_all(format!("{command}\n\n").as_bytes())?;
        loop {
            let frame = self.read_frame()?;
            if frame.header("Content-Type") == Some("command/reply") {
                return Ok(frame.header("Reply-Text").unwrap_or_default().to_owned());
            }
        }
    }

    /// `api <command>`: its response body.
    pub fn api(&mut self, command: &str) -> io::Result<String> {
        self.writer
            .write_all(format!("api {command}\n\n").as_bytes())?;
        loop {
            let frame = self.read_frame()?;
            if frame.header("Content-Type") == Some("api/response") {
                return Ok(frame.body);
            }
        }
    }
}

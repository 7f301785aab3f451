//! The captures of a real FreeSWITCH (`tests/fixtures/freeswitch/`, described in its
//! README): each file is the exact byte stream of one side of one Event Socket connection.
//!
//! A frame is an envelope (header lines, a blank line) and `Content-Length` bytes of body; a
//! `text/event-plain` body is itself header lines with percent-encoded values. [`frames`]
//! splits a stream into [`Frame`]s that keep their bytes as written (to replay them) and read
//! their headers as written or decoded (to compare them); [`commands`] splits what a client
//! sent. The same frame parser reads what a socket delivers ([`take_frame`]).
//!
//! Test data: a malformed capture fails the test, naming where.

use std::path::PathBuf;

/// The directory holding the captures.
pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/freeswitch")
}

/// The bytes of capture `name` (a file name in [`dir`]).
pub fn read(name: &str) -> Vec<u8> {
    let path = dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The frames of capture `name`.
pub fn frames_of(name: &str) -> Vec<Frame> {
    frames(&read(name))
}

/// One frame of an Event Socket stream, exactly as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The envelope's headers in order, values as written.
    pub envelope: Vec<(String, String)>,
    /// The body (`Content-Length` bytes).
    pub body: Vec<u8>,
    /// The whole frame's bytes.
    pub bytes: Vec<u8>,
}

impl Frame {
    /// The envelope's `Content-Type`, or `""`.
    pub fn content_type(&self) -> &str {
        self.header("Content-Type").unwrap_or("")
    }

    /// An envelope header, as written.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.envelope
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// A reply to a command (`command/reply` or `api/response`).
    pub fn is_reply(&self) -> bool {
        matches!(self.content_type(), "command/reply" | "api/response")
    }

    /// An event, in any format.
    pub fn is_event(&self) -> bool {
        self.content_type().starts_with("text/event-")
    }

    /// The header lines of a `text/event-plain` body, names and values as written (values
    /// percent-encoded, duplicates and order kept).
    pub fn plain_headers(&self) -> Vec<(String, String)> {
        let text = String::from_utf8_lossy(&self.body);
        let head = text.split("\n\n").next().unwrap_or("");
        header_lines(head)
    }

    /// The event's headers with their values decoded: percent-decoded for
    /// `text/event-plain`, the JSON strings for `text/event-json` (order and duplicates kept
    /// in both).
    pub fn event_headers(&self) -> Vec<(String, String)> {
        if self.content_type() == "text/event-json" {
            json_headers(&self.body)
        } else {
            self.plain_headers()
                .into_iter()
                .map(|(n, v)| (n, decode(&v)))
                .collect()
        }
    }

    /// The decoded value of an event header; the last one when it repeats (a
    /// PRIVATE_COMMAND repeats the command's `Event-Name`).
    pub fn event_header(&self, name: &str) -> Option<String> {
        self.event_headers()
            .into_iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    /// The envelope's headers with their values percent-decoded (the reply to an outbound
    /// `connect` carries the whole channel data there).
    pub fn decoded_envelope(&self) -> Vec<(String, String)> {
        self.envelope
            .iter()
            .map(|(n, v)| (n.clone(), decode(v)))
            .collect()
    }

    /// A plain event's label: its `Event-Name` (the last one), with the application for
    /// `CHANNEL_EXECUTE[_COMPLETE]` and the subclass for `CUSTOM` (`CUSTOM:sofia::register`
    /// as written).
    pub fn event_name(&self) -> String {
        let headers = self.plain_headers();
        let get = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
                .unwrap_or("")
        };
        let name = headers
            .iter()
            .rev()
            .find(|(n, _)| n == "Event-Name")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        match name.as_str() {
            "CHANNEL_EXECUTE" | "CHANNEL_EXECUTE_COMPLETE" => {
                format!("{name}:{}", get("Application"))
            }
            "CUSTOM" => format!("{name}:{}", get("Event-Subclass")),
            _ => name,
        }
    }

    /// The channel a plain event belongs to.
    pub fn unique_id(&self) -> Option<String> {
        self.plain_headers()
            .into_iter()
            .find(|(n, _)| n == "Unique-ID")
            .map(|(_, v)| v)
    }
}

/// Splits a whole stream (a capture file) into frames.
pub fn frames(data: &[u8]) -> Vec<Frame> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < data.len() {
        match frame_at(data, at) {
            Some((frame, next)) => {
                out.push(frame);
                at = next;
            }
            None if data[at..].windows(2).any(|w| w == b"\n\n") => {
                panic!("the frame at byte {at} has a body running past the end")
            }
            None => panic!("unterminated frame at byte {at}"),
        }
    }
    out
}

/// Takes the first whole frame off the front of `buf` (bytes read from a socket so far), or
/// `None` while it is incomplete.
pub fn take_frame(buf: &mut Vec<u8>) -> Option<Frame> {
    let (frame, end) = frame_at(buf, 0)?;
    buf.drain(..end);
    Some(frame)
}

/// The frame starting at `at` and where the next one starts, if `data` holds all of it.
fn frame_at(data: &[u8], at: usize) -> Option<(Frame, usize)> {
    let head_len = data[at..].windows(2).position(|w| w == b"\n\n")?;
    let head = String::from_utf8_lossy(&data[at..at + head_len]);
    let envelope: Vec<(String, String)> = head.lines().map(header_line).collect();
    let body_len: usize =
        envelope
            .iter()
            .find(|(n, _)| n == "Content-Length")
            .map_or(0, |(_, v)| {
                v.parse()
                    .unwrap_or_else(|_| panic!("Content-Length {v:?} at byte {at}"))
            });
    let body_at = at + head_len + 2;
    let end = body_at + body_len;
    if end > data.len() {
        return None;
    }
    let frame = Frame {
        envelope,
        body: data[body_at..end].to_vec(),
        bytes: data[at..end].to_vec(),
    };
    Some((frame, end))
}

/// One command a client sent: its first line and its header lines.
pub type Command = (String, Vec<(String, String)>);

/// Splits what a client sent into commands (no command in the captures carries a body).
pub fn commands(data: &[u8]) -> Vec<Command> {
    String::from_utf8_lossy(data)
        .split("\n\n")
        .filter(|c| !c.trim().is_empty())
        .map(|c| {
            let mut lines = c.lines();
            let first = lines.next().unwrap_or("").to_string();
            (first, lines.map(header_line).collect())
        })
        .collect()
}

/// Decodes a percent-encoded header value as the switch encodes them.
pub fn decode(value: &str) -> String {
    percent_encoding::percent_decode_str(value)
        .decode_utf8_lossy()
        .into_owned()
}

fn header_lines(block: &str) -> Vec<(String, String)> {
    block
        .lines()
        .filter(|l| !l.is_empty())
        .map(header_line)
        .collect()
}

/// `Name: value`; a line without `": "` is a name with an empty value.
fn header_line(line: &str) -> (String, String) {
    let (n, v) = line.split_once(": ").unwrap_or((line, ""));
    (n.to_string(), v.to_string())
}

/// Keys of a JSON event in order, duplicates kept (a JSON map would fold them).
fn json_headers(body: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(body);
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    let read_string = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>| -> String {
        let mut s = String::new();
        while let Some(c) = chars.next() {
            match c {
                '"' => break,
                '\\' => match chars.next() {
                    Some('n') => s.push('\n'),
                    Some('r') => s.push('\r'),
                    Some('t') => s.push('\t'),
                    Some('u') => {
                        let hex: String = chars.by_ref().take(4).collect();
                        if let Some(ch) =
                            u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32)
                        {
                            s.push(ch);
                        }
                    }
                    Some(other) => s.push(other),
                    None => break,
                },
                c => s.push(c),
            }
        }
        s
    };
    while let Some(c) = chars.next() {
        if c == '"' {
            let key = read_string(&mut chars);
            while chars.peek().is_some_and(|c| *c != '"') {
                chars.next();
            }
            chars.next();
            let value = read_string(&mut chars);
            out.push((key, value));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_capture_splits_into_frames_that_rebuild_it() {
        let mut names: Vec<_> = std::fs::read_dir(dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".received.esl"))
            .collect();
        names.sort();
        assert!(names.len() > 10, "{names:?}");
        for name in names {
            let data = read(&name);
            let frames = frames(&data);
            assert!(!frames.is_empty(), "{name}");
            let rebuilt: Vec<u8> = frames.iter().flat_map(|f| f.bytes.clone()).collect();
            assert_eq!(rebuilt, data, "{name}");
        }
    }

    #[test]
    fn a_plain_event_reads_as_written_and_decoded() {
        let body = "Event-Name: CHANNEL_EXECUTE\nApplication: playback\nCaller-Caller-ID-Name: Outbound%20Call\nEvent-Name: CHANNEL_EXECUTE\n\n";
        let data = format!(
            "Content-Length: {}\nContent-Type: text/event-plain\n\n{body}",
            body.len()
        );
        let frame = frames(data.as_bytes()).remove(0);
        assert!(frame.is_event() && !frame.is_reply());
        assert_eq!(frame.event_name(), "CHANNEL_EXECUTE:playback");
        assert_eq!(frame.plain_headers()[2].1, "Outbound%20Call");
        assert_eq!(
            frame.event_header("Caller-Caller-ID-Name").as_deref(),
            Some("Outbound Call")
        );
    }

    #[test]
    fn a_socket_buffer_gives_frames_only_once_they_are_whole() {
        let mut buf = b"Content-Type: command/reply\nReply-Text: +OK\n\nContent-Length: 5\nContent-Type: api/response\n\n+OK".to_vec();
        let first = take_frame(&mut buf).unwrap();
        assert_eq!(first.header("Reply-Text"), Some("+OK"));
        assert_eq!(take_frame(&mut buf), None, "the body is still incomplete");
        buf.extend_from_slice(b"\n\n");
        assert_eq!(take_frame(&mut buf).unwrap().body, b"+OK\n\n");
        assert!(buf.is_empty());
    }

    #[test]
    fn a_json_event_keeps_its_keys_in_order() {
        let body = r#"{"Event-Name":"HEARTBEAT","Up-Time":"0 years, \"1\" day","Event-Name":"X"}"#;
        let data = format!(
            "Content-Length: {}\nContent-Type: text/event-json\n\n{body}",
            body.len()
        );
        let frame = frames(data.as_bytes()).remove(0);
        assert_eq!(
            frame.event_headers(),
            vec![
                ("Event-Name".into(), "HEARTBEAT".into()),
                ("Up-Time".into(), "0 years, \"1\" day".into()),
                ("Event-Name".into(), "X".into()),
            ]
        );
    }

    #[test]
    fn commands_keep_their_first_line_and_headers() {
        let sent = b"auth ClueCon\n\nsendmsg\ncall-command: hangup\n\n";
        assert_eq!(
            commands(sent),
            vec![
                ("auth ClueCon".to_string(), vec![]),
                (
                    "sendmsg".to_string(),
                    vec![("call-command".to_string(), "hangup".to_string())]
                ),
            ]
        );
    }
}

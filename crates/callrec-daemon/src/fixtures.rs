//! Test support: events read from the captures of a real FreeSWITCH
//! (`tests/fixtures/freeswitch/`), frame by frame, without a socket.

use std::collections::HashMap;
use std::path::PathBuf;

/// One frame's headers (percent-decoded for event bodies) and its body.
pub type Headers = HashMap<String, String>;

/// The directory holding the captures.
pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/freeswitch")
}

fn parse_headers(block: &str, decode: bool) -> Headers {
    block
        .lines()
        .filter_map(|line| line.split_once(": "))
        .map(|(k, v)| {
            let v = if decode {
                percent_encoding::percent_decode_str(v)
                    .decode_utf8_lossy()
                    .into_owned()
            } else {
                v.to_owned()
            };
            (k.to_owned(), v)
        })
        .collect()
}

/// Every `text/event-plain` event of a capture file, in order, as header maps.
pub fn plain_events(file: &str) -> Vec<Headers> {
    let data = std::fs::read(dir().join(file)).expect("fixture readable");
    let mut out = Vec::new();
    let mut i = 0;
    while i < data.len() {
        let Some(end) = data[i..].windows(2).position(|w| w == b"\n\n") else {
            break;
        };
        let head = String::from_utf8_lossy(&data[i..i + end]).into_owned();
        i += end + 2;
        let outer = parse_headers(&head, false);
        let len: usize = outer
            .get("Content-Length")
            .map_or(0, |l| l.parse().expect("Content-Length"));
        let body = &data[i..i + len];
        i += len;
        if outer.get("Content-Type").map(String::as_str) == Some("text/event-plain") {
            let text = String::from_utf8_lossy(body);
            let inner = text.split("\n\n").next().unwrap_or_default();
            out.push(parse_headers(inner, true));
        }
    }
    out
}

/// The channel data an outbound-socket capture starts with (the reply to `connect`).
pub fn connect_reply(file: &str) -> Headers {
    let data = std::fs::read(dir().join(file)).expect("fixture readable");
    let end = data
        .windows(2)
        .position(|w| w == b"\n\n")
        .expect("a first frame");
    parse_headers(&String::from_utf8_lossy(&data[..end]), true)
}

/// Every frame of a capture file exactly as it was on the wire, with its event name when it
/// is an event.
pub fn raw_frames(file: &str) -> Vec<(Option<String>, Vec<u8>)> {
    let data = std::fs::read(dir().join(file)).expect("fixture readable");
    let mut out = Vec::new();
    let mut i = 0;
    while i < data.len() {
        let Some(end) = data[i..].windows(2).position(|w| w == b"\n\n") else {
            break;
        };
        let start = i;
        let head = String::from_utf8_lossy(&data[i..i + end]).into_owned();
        i += end + 2;
        let outer = parse_headers(&head, false);
        let len: usize = outer
            .get("Content-Length")
            .map_or(0, |l| l.parse().expect("Content-Length"));
        let body = &data[i..i + len];
        i += len;
        let name = (outer.get("Content-Type").map(String::as_str) == Some("text/event-plain"))
            .then(|| {
                let text = String::from_utf8_lossy(body);
                let inner = text.split("\n\n").next().unwrap_or_default().to_owned();
                parse_headers(&inner, true).remove("Event-Name")
            })
            .flatten();
        out.push((name, data[start..i].to_vec()));
    }
    out
}

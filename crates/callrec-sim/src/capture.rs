//! Reading the reference captures (`tests/fixtures/freeswitch/*.esl`) that the simulator's
//! event templates are derived from.
//!
//! The captures are compiled in (`include_bytes!`), so a simulator never depends on the
//! working directory; they are parsed once, on first use.

use crate::wire::url_decode;

/// One frame of a capture: its envelope headers and body, and, for `text/event-plain`,
/// the decoded event headers.
#[derive(Debug, Clone)]
pub struct Frame {
    pub envelope: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Frame {
    pub fn content_type(&self) -> &str {
        self.envelope
            .iter()
            .find(|(n, _)| n == "Content-Type")
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    /// Decoded headers of a `text/event-plain` body (values percent-decoded).
    pub fn event_headers(&self) -> Vec<(String, String)> {
        let text = String::from_utf8_lossy(&self.body);
        let head = text.split("\n\n").next().unwrap_or("");
        parse_header_lines(head, true)
    }
}

/// Why an embedded capture could not be read.
#[derive(Debug, thiserror::Error)]
#[error("capture {name}: {reason}")]
pub struct CaptureError {
    /// Which capture.
    pub name: &'static str,
    /// What was wrong.
    pub reason: String,
}

/// Splits a capture into frames, honouring each envelope's `Content-Length`.
pub fn frames(name: &'static str, data: &[u8]) -> Result<Vec<Frame>, CaptureError> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < data.len() {
        let Some(rel) = data[i..].windows(2).position(|w| w == b"\n\n") else {
            return Err(CaptureError {
                name,
                reason: format!("unterminated header block at byte {i}"),
            });
        };
        let head = String::from_utf8_lossy(&data[i..i + rel]).into_owned();
        i += rel + 2;
        let envelope = parse_header_lines(&head, false);
        let len = match envelope.iter().find(|(n, _)| n == "Content-Length") {
            Some((_, v)) => v.parse::<usize>().map_err(|_| CaptureError {
                name,
                reason: format!("bad Content-Length {v:?}"),
            })?,
            None => 0,
        };
        if i + len > data.len() {
            return Err(CaptureError {
                name,
                reason: format!("body of {len} bytes runs past the end"),
            });
        }
        out.push(Frame {
            envelope,
            body: data[i..i + len].to_vec(),
        });
        i += len;
    }
    Ok(out)
}

fn parse_header_lines(head: &str, decode: bool) -> Vec<(String, String)> {
    head.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (n, v) = l.split_once(": ").unwrap_or((l, ""));
            let v = if decode { url_decode(v) } else { v.to_string() };
            (n.to_string(), v)
        })
        .collect()
}

/// The captures the templates come from.
pub mod files {
    macro_rules! fixture {
        ($file:literal) => {
            include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../tests/fixtures/freeswitch/",
                $file
            ))
        };
    }
    pub const RECORD: &[u8] = fixture!("record.events-plain.received.esl");
    pub const ERRORS: &[u8] = fixture!("errors.events-plain.received.esl");
    pub const SHUTDOWN: &[u8] = fixture!("shutdown.events-plain.received.esl");
    pub const SIP_HOLD: &[u8] = fixture!("sip-hold.events-plain.received.esl");
    pub const FEATURE_OUTBOUND: &[u8] = fixture!("feature-code-outbound.received.esl");
    pub const SIP_FEATURE_OUTBOUND: &[u8] = fixture!("sip-hold-feature-code.received.esl");
}

//! The Event Socket wire format, byte for byte as the switch writes it.
//!
//! Everything here is a pure function from values to bytes (or from bytes to a parsed
//! command), so the framing rules the captures show live in one place: header order,
//! `Content-Length` placement, the switch's percent-encoding, and the reply texts.

use bytes::{BufMut, Bytes, BytesMut};

/// The characters `switch_url_encode` escapes besides control and non-ASCII bytes.
///
/// Taken from `switch_utils.c`; the captures agree (`%25` for `%`, `%3A` for `:`, but
/// `/`, `,`, `*`, `(` and `)` pass through).
const URL_UNSAFE: &[u8] = b"\r\n \"#%&+:;<=>?@[\\]^`{|}";

/// Percent-encodes a header value the way FreeSWITCH does in `text/event-plain` bodies.
pub fn url_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + value.len() / 4);
    url_encode_into(value, &mut out);
    out
}

fn url_encode_into(value: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in value.as_bytes() {
        if !(b' '..=b'~').contains(&b) || URL_UNSAFE.contains(&b) {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 0x0f) as usize] as char);
        } else {
            out.push(b as char);
        }
    }
}

/// Decodes `%XX` escapes; malformed escapes are kept literally, as the switch does.
pub fn url_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hi = (bytes[i + 1] as char).to_digit(16);
            let lo = (bytes[i + 2] as char).to_digit(16);
            if let (Some(hi), Some(lo)) = (hi, lo) {
                out.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The greeting every inbound connection gets before anything else.
pub fn auth_request() -> Bytes {
    Bytes::from_static(b"Content-Type: auth/request\n\n")
}

/// A `command/reply` frame with its `Reply-Text` and optional extra headers.
pub fn command_reply(reply_text: &str, extra: &[(&str, &str)]) -> Bytes {
    let mut buf = BytesMut::with_capacity(64 + reply_text.len());
    buf.put_slice(b"Content-Type: command/reply\nReply-Text: ");
    buf.put_slice(reply_text.as_bytes());
    buf.put_u8(b'\n');
    for (name, value) in extra {
        buf.put_slice(name.as_bytes());
        buf.put_slice(b": ");
        buf.put_slice(value.as_bytes());
        buf.put_u8(b'\n');
    }
    buf.put_u8(b'\n');
    buf.freeze()
}

/// An `api/response` frame carrying the command's output as its body.
pub fn api_response(body: &str) -> Bytes {
    let mut buf = BytesMut::with_capacity(64 + body.len());
    buf.put_slice(b"Content-Type: api/response\nContent-Length: ");
    buf.put_slice(body.len().to_string().as_bytes());
    buf.put_slice(b"\n\n");
    buf.put_slice(body.as_bytes());
    buf.freeze()
}

/// The notice the switch sends before it closes an inbound connection.
///
/// `The system is being shut down.\n` on `fsctl shutdown`, the ClueCon goodbye on `exit`.
pub fn disconnect_notice(message: &str) -> Bytes {
    let mut buf = BytesMut::with_capacity(80 + message.len());
    buf.put_slice(b"Content-Type: text/disconnect-notice\nContent-Length: ");
    buf.put_slice(message.len().to_string().as_bytes());
    buf.put_slice(b"\n\n");
    buf.put_slice(message.as_bytes());
    buf.freeze()
}

/// The notice an outbound (socket application) session gets when it ends.
pub fn session_disconnect_notice(session_uuid: &str, message: &str) -> Bytes {
    let mut buf = BytesMut::with_capacity(160 + message.len());
    buf.put_slice(b"Content-Type: text/disconnect-notice\nControlled-Session-UUID: ");
    buf.put_slice(session_uuid.as_bytes());
    buf.put_slice(b"\nContent-Disposition: disconnect\nContent-Length: ");
    buf.put_slice(message.len().to_string().as_bytes());
    buf.put_slice(b"\n\n");
    buf.put_slice(message.as_bytes());
    buf.freeze()
}

/// The notice a lingering outbound session gets when its channel hangs up
/// (`feature-code-outbound.received.esl`).
pub fn linger_notice(session_uuid: &str, channel_name: &str) -> Bytes {
    format!(
        "Content-Type: text/disconnect-notice\nControlled-Session-UUID: {session_uuid}\n\
         Content-Disposition: linger\nChannel-Name: {channel_name}\nLinger-Time: -1\n\
         Content-Length: 0\n\n"
    )
    .into()
}

/// Message of the notice sent after `exit` (from `mod_event_socket.c`).
pub const GOODBYE: &str = "Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n";

/// Message of the notice sent to every listener on `fsctl shutdown` (the `shutdown` capture).
pub const SHUTTING_DOWN: &str = "The system is being shut down.\n";

/// One command a client sent: its first line and the `Name: value` lines after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCommand {
    /// The command line, e.g. `api status` or `sendmsg`.
    pub line: String,
    /// Headers that followed the command line (sendmsg, sendevent), in order.
    pub headers: Vec<(String, String)>,
    /// A body announced by a `Content-Length` header, if any.
    pub body: Option<String>,
}

impl ClientCommand {
    /// The value of a header, matched case-insensitively as the switch does.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reassembles client commands from a byte stream.
///
/// A command ends at a blank line; `Content-Length` announces a body that follows it.
/// Like `read_packet` in `mod_event_socket.c`, stray leading newlines are skipped and an
/// over-long header block is cut off rather than buffered forever.
#[derive(Debug, Default)]
pub struct CommandReader {
    buf: BytesMut,
}

/// The longest command header block the switch accepts before it gives up on it.
const MAX_COMMAND_HEADER: usize = 1024 * 1000;

/// Why the client's bytes could not be read as a command.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CommandError {
    /// The header block grew past what the switch would buffer.
    #[error("command header block longer than {MAX_COMMAND_HEADER} bytes")]
    TooLong,
    /// `Content-Length` was not a number.
    #[error("bad Content-Length {0:?} in client command")]
    BadContentLength(String),
}

impl CommandReader {
    /// Appends bytes read from the socket.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Takes the next complete command, if the buffer holds one.
    pub fn next_command(&mut self) -> Result<Option<ClientCommand>, CommandError> {
        // Leading blank lines carry nothing (the switch skips them too).
        let skip = self
            .buf
            .iter()
            .take_while(|b| **b == b'\n' || **b == b'\r')
            .count();
        let _ = self.buf.split_to(skip);
        let Some(end) = find_blank_line(&self.buf) else {
            if self.buf.len() > MAX_COMMAND_HEADER {
                return Err(CommandError::TooLong);
            }
            return Ok(None);
        };
        let head = String::from_utf8_lossy(&self.buf[..end.header_len]).into_owned();
        let mut lines = head.lines().map(|l| l.trim_end_matches('\r'));
        let line = lines.next().unwrap_or_default().to_string();
        let mut headers = Vec::new();
        let mut content_length = None;
        for l in lines {
            if l.is_empty() {
                continue;
            }
            let (name, value) = match l.split_once(':') {
                Some((n, v)) => (n.to_string(), v.trim_start().to_string()),
                None => (l.to_string(), String::new()),
            };
            if name.eq_ignore_ascii_case("content-length") {
                let n: usize = value
                    .trim()
                    .parse()
                    .map_err(|_| CommandError::BadContentLength(value.clone()))?;
                content_length = Some(n);
            }
            headers.push((name, value));
        }
        let body_len = content_length.unwrap_or(0);
        if self.buf.len() < end.total_len + body_len {
            return Ok(None);
        }
        let frame = self.buf.split_to(end.total_len + body_len);
        let body = content_length
            .filter(|n| *n > 0)
            .map(|_| String::from_utf8_lossy(&frame[end.total_len..]).into_owned());
        Ok(Some(ClientCommand {
            line,
            headers,
            body,
        }))
    }
}

struct BlankLine {
    header_len: usize,
    total_len: usize,
}

fn find_blank_line(buf: &[u8]) -> Option<BlankLine> {
    let mut i = 0;
    while i + 1 < buf.len() {
        if buf[i] == b'\n' {
            if buf[i + 1] == b'\n' {
                return Some(BlankLine {
                    header_len: i,
                    total_len: i + 2,
                });
            }
            if buf[i + 1] == b'\r' && i + 2 < buf.len() && buf[i + 2] == b'\n' {
                return Some(BlankLine {
                    header_len: i,
                    total_len: i + 3,
                });
            }
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_the_switch() {
        assert_eq!(url_encode("2001:db8::2"), "2001%3Adb8%3A%3A2");
        assert_eq!(
            url_encode("Tue, 24 Nov 2026 15:24:26 GMT"),
            "Tue,%2024%20Nov%202026%2015%3A24%3A26%20GMT"
        );
        assert_eq!(
            url_encode("tone_stream://%(1000,0,440);loops=60"),
            "tone_stream%3A//%25(1000,0,440)%3Bloops%3D60"
        );
        assert_eq!(url_encode("ARRAY::*48|:48"), "ARRAY%3A%3A*48%7C%3A48");
        assert_eq!(url_encode("+OK\n"), "%2BOK%0A");
    }

    #[test]
    fn decoding_undoes_encoding() {
        let s = "sofia/internal/1001@127.0.0.1 {a=b} 100% \u{e9}";
        assert_eq!(url_decode(&url_encode(s)), s);
        assert_eq!(url_decode("50%"), "50%");
        assert_eq!(url_decode("%zz"), "%zz");
    }

    #[test]
    fn reads_commands_split_across_reads() {
        let mut r = CommandReader::default();
        r.push(b"auth Clue");
        assert_eq!(r.next_command(), Ok(None));
        r.push(b"Con\n\nsendmsg\ncall-command: execute\nexecute-app-name: answer\n\n");
        let auth = r.next_command().unwrap().unwrap();
        assert_eq!(auth.line, "auth ClueCon");
        let msg = r.next_command().unwrap().unwrap();
        assert_eq!(msg.line, "sendmsg");
        assert_eq!(msg.header("Call-Command"), Some("execute"));
        assert_eq!(r.next_command(), Ok(None));
    }

    #[test]
    fn reads_a_body_announced_by_content_length() {
        let mut r = CommandReader::default();
        r.push(b"sendevent CUSTOM\nContent-Length: 5\n\nhel");
        assert_eq!(r.next_command(), Ok(None));
        r.push(b"lo\n\napi status\n\n");
        let ev = r.next_command().unwrap().unwrap();
        assert_eq!(ev.body.as_deref(), Some("hello"));
        assert_eq!(r.next_command().unwrap().unwrap().line, "api status");
    }

    #[test]
    fn api_response_counts_bytes_not_chars() {
        let frame = api_response("+OK Success\n");
        assert_eq!(
            &frame[..],
            b"Content-Type: api/response\nContent-Length: 12\n\n+OK Success\n"
        );
    }
}

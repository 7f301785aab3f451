//! Events as the switch fires them: ordered headers, an optional body, and their three
//! serialisations (`plain`, `json`, `xml`) framed for the socket.
//!
//! Header values are stored decoded; encoding happens once per format and is cached,
//! because one event usually goes to several listeners.

use std::sync::OnceLock;

use bytes::{BufMut, Bytes, BytesMut};

use callrec_model::EventFormat;

use crate::wire::url_encode;

/// One event: headers in the order the switch adds them, duplicates allowed
/// (the switch repeats `Hangup-Cause` and the write-codec headers).
#[derive(Debug, Default)]
pub struct Event {
    headers: Vec<(String, String)>,
    body: Option<String>,
    plain: OnceLock<Bytes>,
    json: OnceLock<Bytes>,
    xml: OnceLock<Bytes>,
}

impl Clone for Event {
    fn clone(&self) -> Self {
        Event {
            headers: self.headers.clone(),
            body: self.body.clone(),
            ..Event::default()
        }
    }
}

/// Parses the format keyword of the `event` command (`plain`, `json`, `xml`, any case).
pub fn parse_format(word: &str) -> Option<EventFormat> {
    word.to_ascii_lowercase().parse().ok()
}

impl Event {
    /// An empty event; the switch core adds the standard headers (see `Switch::new_event`).
    pub fn new() -> Event {
        Event::default()
    }

    /// Appends a header at the bottom, as `switch_event_add_header` does.
    pub fn push(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.headers.push((name.into(), value.into()));
    }

    /// Sets the body (BACKGROUND_JOB carries the command output here).
    pub fn set_body(&mut self, body: impl Into<String>) {
        self.body = Some(body.into());
    }

    /// All headers in order.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The body, if any.
    pub fn body(&self) -> Option<&str> {
        self.body.as_deref()
    }

    /// The first value of a header (names compared case-insensitively, as the switch does).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// `Event-Name`.
    pub fn name(&self) -> &str {
        self.header("Event-Name").unwrap_or("")
    }

    /// `Event-Subclass` of a CUSTOM event.
    pub fn subclass(&self) -> Option<&str> {
        self.header("Event-Subclass")
    }

    /// `Unique-ID` of a channel event.
    pub fn unique_id(&self) -> Option<&str> {
        self.header("Unique-ID")
    }

    /// The complete socket frame for a listener in `format`.
    pub fn frame(&self, format: EventFormat) -> Bytes {
        match format {
            EventFormat::Plain => self.plain.get_or_init(|| self.render_plain()).clone(),
            EventFormat::Json => self.json.get_or_init(|| self.render_json()).clone(),
            EventFormat::Xml => self.xml.get_or_init(|| self.render_xml()).clone(),
        }
    }

    /// The `text/event-plain` body (what `switch_event_serialize` returns).
    pub fn serialize_plain(&self) -> String {
        let mut out = String::with_capacity(64 * self.headers.len());
        for (name, value) in &self.headers {
            out.push_str(name);
            out.push_str(": ");
            out.push_str(&url_encode(value));
            out.push('\n');
        }
        // `switch_event_serialize` writes an empty body as no body at all.
        match self.body.as_deref().filter(|b| !b.is_empty()) {
            Some(body) => {
                out.push_str("Content-Length: ");
                out.push_str(&body.len().to_string());
                out.push_str("\n\n");
                out.push_str(body);
            }
            None => out.push('\n'),
        }
        out
    }

    /// The `text/event-json` body (what `switch_event_serialize_json` returns).
    pub fn serialize_json(&self) -> String {
        let mut out = String::with_capacity(64 * self.headers.len());
        out.push('{');
        let mut first = true;
        let mut field = |out: &mut String, name: &str, value: &str| {
            if !first {
                out.push(',');
            }
            first = false;
            json_string(out, name);
            out.push(':');
            json_string(out, value);
        };
        for (name, value) in &self.headers {
            field(&mut out, name, value);
        }
        if let Some(body) = &self.body {
            field(&mut out, "Content-Length", &body.len().to_string());
            field(&mut out, "_body", body);
        }
        out.push('}');
        out
    }

    /// The `text/event-xml` body (what `switch_event_xmlize` + `switch_xml_toxml` return).
    pub fn serialize_xml(&self) -> String {
        let mut out = String::from("<event>\n  <headers>\n");
        for (name, value) in &self.headers {
            out.push_str("    <");
            out.push_str(name);
            out.push('>');
            out.push_str(&xml_escape(&url_encode(value)));
            out.push_str("</");
            out.push_str(name);
            out.push_str(">\n");
        }
        out.push_str("  </headers>\n");
        // `switch_event_xmlize` leaves out an empty body.
        if let Some(body) = self.body.as_deref().filter(|b| !b.is_empty()) {
            out.push_str("  <Content-Length>");
            out.push_str(&body.len().to_string());
            out.push_str("</Content-Length>\n  <body>");
            out.push_str(&xml_escape(body));
            out.push_str("</body>\n");
        }
        out.push_str("</event>");
        out
    }

    fn render_plain(&self) -> Bytes {
        frame_with("text/event-plain", &self.serialize_plain())
    }

    fn render_json(&self) -> Bytes {
        frame_with("text/event-json", &self.serialize_json())
    }

    fn render_xml(&self) -> Bytes {
        frame_with("text/event-xml", &self.serialize_xml())
    }
}

/// `Content-Length` first, then `Content-Type`, exactly as `mod_event_socket.c` writes them.
fn frame_with(content_type: &str, body: &str) -> Bytes {
    let mut buf = BytesMut::with_capacity(body.len() + 64);
    buf.put_slice(b"Content-Length: ");
    buf.put_slice(body.len().to_string().as_bytes());
    buf.put_slice(b"\nContent-Type: ");
    buf.put_slice(content_type.as_bytes());
    buf.put_slice(b"\n\n");
    buf.put_slice(body.as_bytes());
    buf.freeze()
}

/// Writes a JSON string literal the way cJSON prints one (no escaping of `/`, UTF-8 kept).
fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The standard headers, in the order `switch_event_prep_for_delivery` adds them.
pub(crate) const CORE_HEADERS: &[&str] = &[
    "Event-Name",
    "Core-UUID",
    "FreeSWITCH-Hostname",
    "FreeSWITCH-Switchname",
    "FreeSWITCH-IPv4",
    "FreeSWITCH-IPv6",
    "Event-Date-Local",
    "Event-Date-GMT",
    "Event-Date-Timestamp",
    "Event-Calling-File",
    "Event-Calling-Function",
    "Event-Calling-Line-Number",
    "Event-Sequence",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Event {
        let mut e = Event::new();
        e.push("Event-Name", "BACKGROUND_JOB");
        e.push("Job-Command", "status");
        e.set_body("UP 0 years\n");
        e
    }

    #[test]
    fn plain_body_carries_its_own_content_length() {
        let e = sample();
        assert_eq!(
            e.serialize_plain(),
            "Event-Name: BACKGROUND_JOB\nJob-Command: status\nContent-Length: 11\n\nUP 0 years\n"
        );
        let frame = e.frame(EventFormat::Plain);
        assert!(frame.starts_with(b"Content-Length: 78\nContent-Type: text/event-plain\n\n"));
    }

    #[test]
    fn plain_without_body_ends_with_a_blank_line() {
        let mut e = Event::new();
        e.push("Event-Name", "API");
        e.push("API-Command-Argument", "channels as json");
        assert_eq!(
            e.serialize_plain(),
            "Event-Name: API\nAPI-Command-Argument: channels%20as%20json\n\n"
        );
    }

    #[test]
    fn an_empty_body_is_no_body_in_plain_and_xml_and_an_empty_one_in_json() {
        let mut e = Event::new();
        e.push("Event-Name", "BACKGROUND_JOB");
        e.set_body("");
        assert_eq!(e.serialize_plain(), "Event-Name: BACKGROUND_JOB\n\n");
        assert!(!e.serialize_xml().contains("body"), "{}", e.serialize_xml());
        assert_eq!(
            e.serialize_json(),
            "{\"Event-Name\":\"BACKGROUND_JOB\",\"Content-Length\":\"0\",\"_body\":\"\"}"
        );
    }

    #[test]
    fn json_keeps_duplicates_and_adds_body_fields() {
        let mut e = sample();
        e.push("Quote", "a\"b\n");
        assert_eq!(
            e.serialize_json(),
            "{\"Event-Name\":\"BACKGROUND_JOB\",\"Job-Command\":\"status\",\
             \"Quote\":\"a\\\"b\\n\",\"Content-Length\":\"11\",\"_body\":\"UP 0 years\\n\"}"
        );
    }
}

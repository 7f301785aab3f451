//! Comparing an event stream from the simulator with a capture of the real switch:
//! per channel, the same event names in the same order with the same header-name sets.

use std::collections::BTreeSet;

use super::RawFrame;

/// Events that say nothing about the call under test: timer-driven or caused by phones
/// re-registering during the capture.
pub fn is_ambient(label: &str) -> bool {
    matches!(
        label,
        "HEARTBEAT"
            | "RE_SCHEDULE"
            | "MESSAGE_QUERY"
            | "CUSTOM:sofia::pre_register"
            | "CUSTOM:sofia::register_attempt"
            | "CUSTOM:sofia::register"
    )
}

/// Pairs of events whose relative order the real switch does not fix (thread scheduling).
/// `races_are_observed_in_the_captures` proves each pair occurs in both orders.
pub const RACES: &[(&str, &str)] = &[
    ("CHANNEL_CALLSTATE", "CALL_UPDATE"),
    ("CHANNEL_EXECUTE:hangup", "CHANNEL_HANGUP"),
];

/// One event reduced to what is compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ev {
    pub label: String,
    pub names: BTreeSet<String>,
    pub uuid: Option<String>,
    pub headers: Vec<(String, String)>,
}

impl Ev {
    pub fn of(frame: &RawFrame) -> Ev {
        let headers: Vec<(String, String)> = if frame.content_type() == "text/event-json" {
            json_headers(&frame.body)
        } else {
            frame
                .plain_headers()
                .into_iter()
                .map(|(n, v)| (n, decode(&v)))
                .collect()
        };
        let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let name = headers
            .iter()
            .rev()
            .find(|(n, _)| n == "Event-Name")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let label = match name.as_str() {
            "CHANNEL_EXECUTE" | "CHANNEL_EXECUTE_COMPLETE" => {
                format!("{name}:{}", get("Application").unwrap_or_default())
            }
            "CUSTOM" => format!("{name}:{}", get("Event-Subclass").unwrap_or_default()),
            _ => name,
        };
        Ev {
            label,
            names: headers.iter().map(|(n, _)| n.clone()).collect(),
            uuid: get("Unique-ID"),
            headers,
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn decode(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(x) = u8::from_str_radix(&v[i + 1..i + 3], 16)
        {
            out.push(x);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Keys of a JSON event in order, duplicates kept (serde_json would fold them).
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

/// Channel events grouped by channel, channels in order of first appearance.
pub fn per_channel(events: &[Ev]) -> Vec<(String, Vec<Ev>)> {
    let mut out: Vec<(String, Vec<Ev>)> = Vec::new();
    for e in events {
        let Some(u) = &e.uuid else { continue };
        match out.iter_mut().find(|(k, _)| k == u) {
            Some((_, v)) => v.push(e.clone()),
            None => out.push((u.clone(), vec![e.clone()])),
        }
    }
    out
}

/// The events that belong to no channel and are not ambient noise, in order.
pub fn global(events: &[Ev]) -> Vec<Ev> {
    events
        .iter()
        .filter(|e| e.uuid.is_none() && !is_ambient(&e.label))
        .cloned()
        .collect()
}

fn is_race(a: &str, b: &str) -> bool {
    RACES
        .iter()
        .any(|(x, y)| (x == &a && y == &b) || (x == &b && y == &a))
}

/// Compares two sequences: same labels in the same order (allowing the known races) and
/// the same header names per event. Returns every difference found.
pub fn diff_sequence(what: &str, sim: &[Ev], cap: &[Ev]) -> Vec<String> {
    let mut problems = Vec::new();
    let sl: Vec<&str> = sim.iter().map(|e| e.label.as_str()).collect();
    let cl: Vec<&str> = cap.iter().map(|e| e.label.as_str()).collect();
    if sl.len() != cl.len() {
        problems.push(format!(
            "{what}: {} events, capture has {}\n  sim: {}\n  cap: {}",
            sl.len(),
            cl.len(),
            sl.join(" "),
            cl.join(" ")
        ));
        return problems;
    }
    // (sim index, capture index, raced): a raced event may show the caller profile as it
    // was on the other side of the race (the loopback A leg's caller-ID flip).
    let mut pairs = Vec::new();
    let mut i = 0;
    while i < sl.len() {
        if sl[i] == cl[i] {
            pairs.push((i, i, false));
            i += 1;
        } else if i + 1 < sl.len()
            && sl[i] == cl[i + 1]
            && sl[i + 1] == cl[i]
            && is_race(sl[i], sl[i + 1])
        {
            pairs.push((i, i + 1, true));
            pairs.push((i + 1, i, true));
            i += 2;
        } else {
            problems.push(format!(
                "{what}: event #{i} is {} where the capture has {}\n  sim: {}\n  cap: {}",
                sl[i],
                cl[i],
                sl.join(" "),
                cl.join(" ")
            ));
            return problems;
        }
    }
    for (s, c, raced) in pairs {
        let keep = |n: &&String| !(raced && n.starts_with("Caller-"));
        let a: BTreeSet<&String> = sim[s].names.iter().filter(keep).collect();
        let b: BTreeSet<&String> = cap[c].names.iter().filter(keep).collect();
        if a != b {
            let extra: Vec<&&String> = a.difference(&b).collect();
            let missing: Vec<&&String> = b.difference(&a).collect();
            problems.push(format!(
                "{what}: {} (#{s}) header names differ: extra {extra:?}, missing {missing:?}",
                sim[s].label
            ));
        }
    }
    problems
}

/// Compares a whole simulated stream with a capture, channel by channel.
pub fn diff_streams(sim: &[Ev], cap: &[Ev]) -> Vec<String> {
    let mut problems = Vec::new();
    let (sc, cc) = (per_channel(sim), per_channel(cap));
    if sc.len() != cc.len() {
        problems.push(format!("{} channels, capture has {}", sc.len(), cc.len()));
    }
    for (k, ((_, s), (_, c))) in sc.iter().zip(cc.iter()).enumerate() {
        let name = c
            .iter()
            .find_map(|e| e.get("Channel-Name").map(str::to_string))
            .unwrap_or_default();
        problems.extend(diff_sequence(&format!("channel #{k} ({name})"), s, c));
    }
    problems.extend(diff_sequence(
        "non-channel events",
        &global(sim),
        &global(cap),
    ));
    problems
}

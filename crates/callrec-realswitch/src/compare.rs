//! Comparing two runs of one [`crate::scenario`]: the real switch's and the simulator's.
//!
//! Each run is reduced to what must agree whatever the uuids, times and host: per leg, the
//! event names in order, each event's set of header names and the values of a few headers
//! that say what happened ([`COMPARED_VALUES`]); the events of no channel (BACKGROUND_JOB)
//! the same way; the reply to each command; and each recording's shape (its length and
//! where it holds digital silence, which only masking writes). Every disagreement is a
//! [`Difference`]; which of them are known and deliberate is the test's to say.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use crate::scenario::Run;
use crate::wav::Wav;

/// Headers whose values are compared, not only their presence: what a recorder reads to
/// know which channel it is, where the channel is and how a recording ended.
pub const COMPARED_VALUES: &[&str] = &[
    "Channel-Name",
    "Call-Direction",
    "Channel-State",
    "Channel-Call-State",
    "Answer-State",
    "Hangup-Cause",
    "Record-File-Path",
    "Record-Completion-Cause",
    "variable_RECORD_DISCARDED",
    "variable_callrec_user",
    "variable_other_loopback_leg_uuid",
    "Caller-Caller-ID-Number",
    "Caller-Destination-Number",
    "Job-Command",
];

/// How far two recordings' lengths, and the edges of their silences, may be apart (s), on
/// top of [`drift`]: the two switches take the same commands at slightly different moments.
pub const AUDIO_TOLERANCE: f64 = 0.2;

/// The shortest run of zero samples counted as silence (s). Only masking writes zeros: the
/// real switch writes the tone's gaps as -1 and a parked call as -2.
pub const MIN_SILENCE: f64 = 0.25;

/// Which switch something was seen on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Side {
    /// The real FreeSWITCH.
    Switch,
    /// The simulator.
    Sim,
}

/// What kind of thing differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// An event one side sent and the other did not, at that place in the leg's sequence.
    Event(Side),
    /// A header one side's event has and the other's lacks.
    Header(Side),
    /// A header of [`COMPARED_VALUES`] with different values.
    Value,
    /// The reply to a command.
    Reply,
    /// A recording's shape.
    Audio,
}

/// One disagreement between the two runs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Difference {
    /// The scenario.
    pub scenario: &'static str,
    /// What differs.
    pub kind: Kind,
    /// The leg (`c.a`), `-` for events of no channel, the file for audio, `` for replies.
    pub leg: String,
    /// The event's name (empty for replies and audio).
    pub event: String,
    /// The header, the command or what about the file.
    pub item: String,
    /// What the switch had.
    pub switch: String,
    /// What the simulator had.
    pub sim: String,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Difference {
            scenario,
            kind,
            leg,
            event,
            item,
            switch,
            sim,
        } = self;
        match kind {
            Kind::Event(side) => write!(
                f,
                "{scenario} {leg}: {event} only on the {side:?} (after {item})"
            ),
            Kind::Header(side) => {
                write!(f, "{scenario} {leg} {event}: {item} only on the {side:?}")
            }
            Kind::Value => write!(
                f,
                "{scenario} {leg} {event}: {item} is {switch:?} on the switch, {sim:?} in the sim"
            ),
            Kind::Reply => write!(
                f,
                "{scenario} `{item}`: the switch answered {switch:?}, the sim {sim:?}"
            ),
            Kind::Audio => write!(
                f,
                "{scenario} {leg}: {item}: {switch} on the switch, {sim} in the sim"
            ),
        }
    }
}

/// One event reduced to what is compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ev {
    /// `Event-Name`.
    pub name: String,
    /// Every header name.
    pub headers: BTreeSet<String>,
    /// The values of [`COMPARED_VALUES`], with uuids and paths named as the scenario names
    /// them.
    pub values: BTreeMap<String, String>,
}

/// A recording's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Audio {
    /// Length in seconds, as the header says.
    pub seconds: f64,
    /// Channels.
    pub channels: u16,
    /// Stretches of digital silence (start, end in seconds) of at least [`MIN_SILENCE`].
    pub silences: Vec<(f64, f64)>,
    /// The header's RIFF size less its data size: 36 in a finished 44-byte header.
    pub riff_less_data: i64,
    /// Bytes after the audio the header announces: audio written under a header the switch
    /// never finished (a crash).
    pub unannounced: u64,
}

/// The RIFF size, and where the data chunk's size and its data are.
fn header_sizes(bytes: &[u8]) -> Option<(u32, u32, usize)> {
    let u32_at = |at: usize| {
        Some(u32::from_le_bytes([
            *bytes.get(at)?,
            *bytes.get(at + 1)?,
            *bytes.get(at + 2)?,
            *bytes.get(at + 3)?,
        ]))
    };
    let riff = u32_at(4)?;
    let mut at = 12;
    while at + 8 <= bytes.len() {
        let len = u32_at(at + 4)?;
        if &bytes[at..at + 4] == b"data" {
            return Some((riff, len, at + 8));
        }
        at += 8 + usize::try_from(len).ok()? + (len as usize & 1);
    }
    None
}

/// A run reduced to what is compared.
#[derive(Debug)]
pub struct Reduced {
    /// The scenario.
    pub scenario: &'static str,
    /// Per leg (`c.a`, `c.b`), its events in order.
    pub legs: BTreeMap<String, Vec<Ev>>,
    /// Events of no channel, in order.
    pub others: Vec<Ev>,
    /// Commands and the first line of their replies.
    pub replies: Vec<(String, String)>,
    /// When each reply came (s from the start of the run).
    pub replied: Vec<f64>,
    /// Each recording by the scenario's name: its shape, `None` if there is no file.
    pub files: BTreeMap<String, Option<Audio>>,
}

/// Reduces a run.
pub fn reduce(run: &Run) -> Reduced {
    let leg_of: BTreeMap<&str, String> = run
        .legs
        .iter()
        .map(|((call, leg), uuid)| (uuid.as_str(), format!("{call}.{}", leg.name())))
        .collect();
    let mut legs: BTreeMap<String, Vec<Ev>> = BTreeMap::new();
    let mut others = Vec::new();
    for e in &run.events {
        let ev = Ev {
            name: e.get("Event-Name").cloned().unwrap_or_default(),
            headers: e.keys().cloned().collect(),
            values: COMPARED_VALUES
                .iter()
                .filter_map(|h| Some((h.to_string(), run.named(&decode(e.get(*h)?)))))
                .collect(),
        };
        match e.get("Unique-ID") {
            Some(u) => {
                let leg = leg_of
                    .get(u.as_str())
                    .cloned()
                    .unwrap_or_else(|| format!("unknown {u}"));
                legs.entry(leg).or_default().push(ev);
            }
            None => others.push(ev),
        }
    }
    let files = run
        .files
        .iter()
        .map(|(name, path)| {
            let audio = std::fs::read(path).ok().and_then(|bytes| {
                let wav = Wav::parse(&bytes)?;
                let (riff, data, from) = header_sizes(&bytes)?;
                Some(Audio {
                    seconds: wav.seconds(),
                    channels: wav.channels,
                    silences: wav.silences(MIN_SILENCE),
                    riff_less_data: i64::from(riff) - i64::from(data),
                    unannounced: (bytes.len() as u64).saturating_sub(from as u64 + u64::from(data)),
                })
            });
            (name.to_string(), audio)
        })
        .collect();
    Reduced {
        scenario: run.scenario,
        legs,
        others,
        replies: run.replies.clone(),
        replied: run.replied.iter().map(Duration::as_secs_f64).collect(),
        files,
    }
}

/// Every difference between the switch's run and the simulator's of one scenario.
pub fn compare(switch: &Reduced, sim: &Reduced) -> Vec<Difference> {
    let scenario = switch.scenario;
    let mut out = Vec::new();
    let legs: BTreeSet<&String> = switch.legs.keys().chain(sim.legs.keys()).collect();
    let none = Vec::new();
    for leg in legs {
        let a = switch.legs.get(leg).unwrap_or(&none);
        let b = sim.legs.get(leg).unwrap_or(&none);
        compare_sequence(scenario, leg, a, b, &mut out);
    }
    compare_sequence(scenario, "-", &switch.others, &sim.others, &mut out);
    for (i, ((command, real), (_, simmed))) in switch.replies.iter().zip(&sim.replies).enumerate() {
        if real != simmed {
            out.push(Difference {
                scenario,
                kind: Kind::Reply,
                leg: String::new(),
                event: String::new(),
                item: format!("{i}: {command}"),
                switch: real.clone(),
                sim: simmed.clone(),
            });
        }
    }
    let tolerance = AUDIO_TOLERANCE + drift(switch, sim);
    let files: BTreeSet<&String> = switch.files.keys().chain(sim.files.keys()).collect();
    for file in files {
        let a = switch.files.get(file).cloned().flatten();
        let b = sim.files.get(file).cloned().flatten();
        compare_audio(scenario, file, a.as_ref(), b.as_ref(), tolerance, &mut out);
    }
    out
}

fn compare_sequence(
    scenario: &'static str,
    leg: &str,
    switch: &[Ev],
    sim: &[Ev],
    out: &mut Vec<Difference>,
) {
    let names = |evs: &[Ev]| evs.iter().map(|e| e.name.clone()).collect::<Vec<_>>();
    let (a, b) = (names(switch), names(sim));
    let diff = |kind, event: &str, item: &str| Difference {
        scenario,
        kind,
        leg: leg.to_owned(),
        event: event.to_owned(),
        item: item.to_owned(),
        switch: String::new(),
        sim: String::new(),
    };
    for step in align(&a, &b) {
        match step {
            Aligned::Both(i, j) => {
                let (x, y) = (&switch[i], &sim[j]);
                for h in x.headers.difference(&y.headers) {
                    out.push(diff(Kind::Header(Side::Switch), &x.name, h));
                }
                for h in y.headers.difference(&x.headers) {
                    out.push(diff(Kind::Header(Side::Sim), &x.name, h));
                }
                for (h, v) in &x.values {
                    match y.values.get(h) {
                        Some(w) if w != v => out.push(Difference {
                            switch: v.clone(),
                            sim: w.clone(),
                            ..diff(Kind::Value, &x.name, h)
                        }),
                        _ => {}
                    }
                }
            }
            Aligned::SwitchOnly(i) => {
                let after = if i == 0 { "the start" } else { &a[i - 1] };
                out.push(diff(Kind::Event(Side::Switch), &a[i], after));
            }
            Aligned::SimOnly(j) => {
                let after = if j == 0 { "the start" } else { &b[j - 1] };
                out.push(diff(Kind::Event(Side::Sim), &b[j], after));
            }
        }
    }
}

/// How much more one run's commands were spread out than the other's (s): the largest
/// difference between the two runs in the time from one reply to another. A switch busy
/// with other work answers late, and its recording is then as much longer or shorter; the
/// audio is compared with that much more tolerance.
pub fn drift(switch: &Reduced, sim: &Reduced) -> f64 {
    let (a, b) = (&switch.replied, &sim.replied);
    let n = a.len().min(b.len());
    let mut worst: f64 = 0.0;
    for i in 0..n {
        for j in 0..i {
            worst = worst.max(((a[i] - a[j]) - (b[i] - b[j])).abs());
        }
    }
    worst
}

fn compare_audio(
    scenario: &'static str,
    file: &str,
    switch: Option<&Audio>,
    sim: Option<&Audio>,
    tolerance: f64,
    out: &mut Vec<Difference>,
) {
    let diff = |item: &str, switch: String, sim: String| Difference {
        scenario,
        kind: Kind::Audio,
        leg: file.to_owned(),
        event: String::new(),
        item: item.to_owned(),
        switch,
        sim,
    };
    let (a, b) = match (switch, sim) {
        (Some(a), Some(b)) => (a, b),
        (None, None) => return,
        (a, b) => {
            let said =
                |x: Option<&Audio>| if x.is_some() { "a file" } else { "no file" }.to_owned();
            out.push(diff("the file", said(a), said(b)));
            return;
        }
    };
    if (a.seconds - b.seconds).abs() > tolerance {
        out.push(diff(
            "length",
            format!("{:.2} s", a.seconds),
            format!("{:.2} s", b.seconds),
        ));
    }
    for (what, x, y) in [
        ("channels", i64::from(a.channels), i64::from(b.channels)),
        (
            "RIFF size less data size",
            a.riff_less_data,
            b.riff_less_data,
        ),
        (
            "bytes after the announced data",
            a.unannounced as i64,
            b.unannounced as i64,
        ),
    ] {
        if x != y {
            out.push(diff(what, x.to_string(), y.to_string()));
        }
    }
    let close = |x: &(f64, f64), y: &(f64, f64)| {
        (x.0 - y.0).abs() <= tolerance && (x.1 - y.1).abs() <= tolerance
    };
    let same = a.silences.len() == b.silences.len()
        && a.silences.iter().zip(&b.silences).all(|(x, y)| close(x, y));
    if !same {
        let show = |s: &[(f64, f64)]| {
            let parts: Vec<String> = s
                .iter()
                .map(|(from, to)| format!("{from:.2}-{to:.2} s"))
                .collect();
            format!("[{}]", parts.join(", "))
        };
        out.push(diff("silences", show(&a.silences), show(&b.silences)));
    }
}

/// A step of the alignment of two event sequences.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Aligned {
    Both(usize, usize),
    SwitchOnly(usize),
    SimOnly(usize),
}

/// Aligns two sequences on their longest common subsequence: what is left over on either
/// side is an event missing or out of place.
fn align(a: &[String], b: &[String]) -> Vec<Aligned> {
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            out.push(Aligned::Both(i, j));
            i += 1;
            j += 1;
        } else if j == m || (i < n && lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push(Aligned::SwitchOnly(i));
            i += 1;
        } else {
            out.push(Aligned::SimOnly(j));
            j += 1;
        }
    }
    out
}

/// Undoes the percent-encoding of an event-plain header value.
fn decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |k: usize| {
            bytes
                .get(k)
                .and_then(|c| char::from(*c).to_digit(16))
                .and_then(|d| u8::try_from(d).ok())
        };
        match (bytes[i], hex(i + 1), hex(i + 2)) {
            (b'%', Some(hi), Some(lo)) => {
                out.push(hi * 16 + lo);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn a_moved_event_shows_once_on_each_side() {
        let steps = align(&words("A H S C"), &words("A S H C"));
        let only: Vec<_> = steps
            .iter()
            .filter(|s| !matches!(s, Aligned::Both(..)))
            .collect();
        assert_eq!(only.len(), 2, "{steps:?}");
    }

    #[test]
    fn percent_encoding_is_undone() {
        assert_eq!(decode("Outbound%20Call"), "Outbound Call");
        assert_eq!(decode("100%"), "100%");
    }
}

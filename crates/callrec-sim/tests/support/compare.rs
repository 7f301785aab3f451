//! Comparing an event stream from the simulator with a capture of the real switch:
//! per channel, the same event names in the same order with the same header-name sets.

use std::collections::BTreeSet;

use callrec_testkit::capture::Frame;

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
/// `races_are_observed_in_the_captures` proves each pair occurs in both orders. An entry
/// without a `:` stands for every label of that event (`CHANNEL_CALLSTATE` for
/// `CHANNEL_CALLSTATE:ACTIVE`, ...).
pub const RACES: &[(&str, &str)] = &[
    ("CHANNEL_CALLSTATE", "CALL_UPDATE"),
    ("CHANNEL_EXECUTE:hangup", "CHANNEL_HANGUP"),
];

/// Whether `label` is the event a [`RACES`] entry names.
pub fn race_entry_matches(entry: &str, label: &str) -> bool {
    label == entry || (!entry.contains(':') && label.split(':').next() == Some(entry))
}

/// One event reduced to what is compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ev {
    pub label: String,
    pub names: BTreeSet<String>,
    pub uuid: Option<String>,
    pub headers: Vec<(String, String)>,
}

impl Ev {
    pub fn of(frame: &Frame) -> Ev {
        let headers = frame.event_headers();
        let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let name = headers
            .iter()
            .rev()
            .find(|(n, _)| n == "Event-Name")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        // A state change is labelled with the state it enters: where a leg's recording
        // stops is only meaningful against which CHANNEL_STATE it follows (CS_HANGUP, not
        // CS_REPORTING).
        let label = match name.as_str() {
            "CHANNEL_EXECUTE" | "CHANNEL_EXECUTE_COMPLETE" => {
                format!("{name}:{}", get("Application").unwrap_or_default())
            }
            "CUSTOM" => format!("{name}:{}", get("Event-Subclass").unwrap_or_default()),
            "CHANNEL_STATE" => format!("{name}:{}", get("Channel-State").unwrap_or_default()),
            "CHANNEL_CALLSTATE" => {
                format!("{name}:{}", get("Channel-Call-State").unwrap_or_default())
            }
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
    let m = race_entry_matches;
    RACES
        .iter()
        .any(|(x, y)| (m(x, a) && m(y, b)) || (m(x, b) && m(y, a)))
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

/// Where a leg's recordings stopped: the leg's own events around its run of
/// RECORD_STOP / MEDIA_BUG_STOP pairs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct StopPlace {
    /// The leg's event before the first RECORD_STOP.
    pub before: String,
    /// The leg's event after the last MEDIA_BUG_STOP.
    pub after: String,
}

/// Per leg that has a RECORD_STOP: where its recordings stopped, or what is wrong with the
/// run (a RECORD_STOP not followed by its MEDIA_BUG_STOP, stops in two places).
pub fn stop_places(events: &[Ev]) -> Vec<(String, Result<StopPlace, String>)> {
    let is_stop = |e: &Ev| e.label == "RECORD_STOP" || e.label == "MEDIA_BUG_STOP";
    let mut out = Vec::new();
    for (uuid, leg) in per_channel(events) {
        let Some(first) = leg.iter().position(|e| e.label == "RECORD_STOP") else {
            continue;
        };
        let end = leg[first..]
            .iter()
            .position(|e| !is_stop(e))
            .map_or(leg.len(), |n| first + n);
        let run: Vec<&str> = leg[first..end].iter().map(|e| e.label.as_str()).collect();
        let paired = run.len().is_multiple_of(2)
            && run
                .chunks(2)
                .all(|p| p == ["RECORD_STOP", "MEDIA_BUG_STOP"]);
        let place = if !paired {
            Err(format!(
                "stop events {run:?} are not RECORD_STOP, MEDIA_BUG_STOP pairs"
            ))
        } else if leg[end..].iter().any(is_stop) {
            Err("recordings stop in more than one place".to_string())
        } else {
            let label = |i: Option<usize>| {
                i.and_then(|i| leg.get(i))
                    .map_or("(none)".to_string(), |e| e.label.clone())
            };
            Ok(StopPlace {
                before: label(first.checked_sub(1)),
                after: label(Some(end)),
            })
        };
        out.push((uuid, place));
    }
    out
}

/// Every leg of `sim` whose recordings stopped, stopped them where the capture's recorded
/// legs did. This holds whichever leg is recorded and whoever hangs up, so it also judges
/// legs the capture never recorded (the switch removes a leg's media bugs as that leg
/// enters CS_HANGUP, whatever the other leg is doing).
pub fn diff_stop_places(sim: &[Ev], cap: &[Ev]) -> Vec<String> {
    let mut captured = std::collections::BTreeSet::new();
    let mut problems = Vec::new();
    for (uuid, place) in stop_places(cap) {
        match place {
            Ok(p) => {
                captured.insert(p);
            }
            Err(e) => problems.push(format!("capture, leg {uuid}: {e}")),
        }
    }
    for (uuid, place) in stop_places(sim) {
        match place {
            Ok(p) if captured.contains(&p) => {}
            Ok(p) if captured.is_empty() => problems.push(format!(
                "leg {uuid}: recordings stop between {} and {}; the capture stops none",
                p.before, p.after
            )),
            Ok(p) => problems.push(format!(
                "leg {uuid}: recordings stop between {} and {}, the capture's between {}",
                p.before,
                p.after,
                captured
                    .iter()
                    .map(|c| format!("{} and {}", c.before, c.after))
                    .collect::<Vec<_>>()
                    .join(" / ")
            )),
            Err(e) => problems.push(format!("leg {uuid}: {e}")),
        }
    }
    problems
}

/// `sim` without one leg's recording: its RECORD_* and MEDIA_BUG_* events, the API event
/// of the `uuid_record` that started it, and the `record_*` variables it left on the leg.
/// What remains must match a capture in which that leg was not recorded.
pub fn without_recording_of(sim: &[Ev], uuid: &str) -> Vec<Ev> {
    const OWN: &[&str] = &[
        "RECORD_START",
        "MEDIA_BUG_START",
        "RECORD_STOP",
        "MEDIA_BUG_STOP",
    ];
    sim.iter()
        .filter(|e| !(e.uuid.as_deref() == Some(uuid) && OWN.contains(&e.label.as_str())))
        .filter(|e| {
            !(e.label == "API"
                && e.get("API-Command") == Some("uuid_record")
                && e.get("API-Command-Argument")
                    .is_some_and(|a| a.starts_with(uuid)))
        })
        .map(|e| {
            let mut e = e.clone();
            if e.uuid.as_deref() == Some(uuid) {
                let left = |n: &String| {
                    n.starts_with("variable_record_") || n.starts_with("variable_RECORD_")
                };
                e.names.retain(|n| !left(n));
                e.headers.retain(|(n, _)| !left(n));
            }
            e
        })
        .collect()
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
    problems.extend(diff_stop_places(sim, cap));
    problems
}

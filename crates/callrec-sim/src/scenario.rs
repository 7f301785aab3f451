//! Scenario files for the `callrec-sim` binary and the demo: what happens, and when.
//!
//! One action per line, at an offset from the start; `#` starts a comment:
//!
//! ```text
//! # 1001 calls 1000; on hold after 10 s for 8 s, dials *48 meanwhile
//! 0s    call 1001 1000 ring=2s talk=40s hold=10s+8s callrec_user=1001
//! 14s   feature 1001 *48
//! 20s   call 442920123123 1002 ring=3s talk=25s name=Alice
//! 30s   call 1003 02071234567 unanswered ring=5s
//! 50s   hangup 1
//! 90s   shutdown
//! ```
//!
//! Numbers of up to five digits are directory users (phones on the switch), longer ones are
//! external. `loopback=9999` places a loopback pair instead of bridged SIP legs. Other verbs:
//! `hangup <n>` (the n-th `call`, from 1), `drop` (cut every Event Socket connection),
//! `crash`, `boot`, `shutdown`.

use std::time::Duration;

use crate::calls::{CallHandle, CallSpec, Party, Side};
use crate::sim::Simulator;

/// Something that happens at an offset from the start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Place a call.
    Call(CallSpec),
    /// A user dials a feature code.
    Feature {
        /// The dialling directory user.
        user: String,
        /// The code (`*48`).
        code: String,
    },
    /// Hang up the n-th call (from 1), from the caller's side.
    Hangup(usize),
    /// Cut every Event Socket connection.
    Drop,
    /// Kill the switch (`kill -9`).
    Crash,
    /// Start it again.
    Boot,
    /// `fsctl shutdown`.
    Shutdown,
}

/// A parsed scenario: actions in time order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scenario {
    /// `(offset, action)`, sorted by offset.
    pub actions: Vec<(Duration, Action)>,
}

/// A line the parser did not understand.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("scenario line {line}: {reason}")]
pub struct ScenarioError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

/// Parses `2s`, `500ms`, `1m`, `1.5s`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let (num, unit) = match s.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let v: f64 = num.parse().ok()?;
    if !v.is_finite() || v < 0.0 {
        return None;
    }
    let secs = match unit {
        "ms" => v / 1000.0,
        "s" => v,
        "m" | "min" => v * 60.0,
        "h" => v * 3600.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(secs))
}

fn party(number: &str) -> Party {
    if number.len() <= 5 && number.chars().all(|c| c.is_ascii_digit()) {
        Party::user(number)
    } else {
        Party::external(number)
    }
}

impl Scenario {
    /// Parses a scenario file's text.
    pub fn parse(text: &str) -> Result<Scenario, ScenarioError> {
        let mut actions = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let err = |reason: String| ScenarioError {
                line: i + 1,
                reason,
            };
            let mut words = line.split_whitespace();
            let at = words
                .next()
                .and_then(parse_duration)
                .ok_or_else(|| err("expected an offset such as 10s".into()))?;
            let verb = words
                .next()
                .ok_or_else(|| err("expected an action".into()))?;
            let rest: Vec<&str> = words.collect();
            let action = match verb {
                "call" => Action::Call(parse_call(&rest).map_err(err)?),
                "feature" => match rest.as_slice() {
                    [user, code] => Action::Feature {
                        user: user.to_string(),
                        code: code.to_string(),
                    },
                    _ => return Err(err("feature <user> <code>".into())),
                },
                "hangup" => {
                    let n = rest
                        .first()
                        .and_then(|n| n.parse::<usize>().ok())
                        .filter(|n| *n > 0)
                        .ok_or_else(|| err("hangup <call number from 1>".into()))?;
                    Action::Hangup(n)
                }
                "drop" => Action::Drop,
                "crash" => Action::Crash,
                "boot" => Action::Boot,
                "shutdown" => Action::Shutdown,
                other => return Err(err(format!("unknown action {other:?}"))),
            };
            actions.push((at, action));
        }
        actions.sort_by_key(|(at, _)| *at);
        Ok(Scenario { actions })
    }

    /// Plays the scenario on a simulator whose clock runs by itself, from now.
    pub async fn run(&self, sim: &Simulator) {
        let start = sim.now();
        let mut calls: Vec<CallHandle> = Vec::new();
        for (at, action) in &self.actions {
            loop {
                let elapsed = (sim.now() - start).to_std().unwrap_or_default();
                if elapsed >= *at {
                    break;
                }
                let left = *at - elapsed;
                tokio::time::sleep(left.min(Duration::from_millis(200))).await;
            }
            match action {
                Action::Call(spec) => calls.push(sim.place_call(spec.clone())),
                Action::Feature { user, code } => {
                    sim.dial_feature_code(user, code);
                }
                Action::Hangup(n) => {
                    if let Some(call) = calls.get(n - 1) {
                        sim.hangup_call(call, Side::Caller);
                    }
                }
                Action::Drop => sim.drop_connections(),
                Action::Crash => sim.crash(),
                Action::Boot => sim.boot(),
                Action::Shutdown => sim.shutdown_switch(),
            }
        }
    }
}

fn parse_call(words: &[&str]) -> Result<CallSpec, String> {
    let [from, to, opts @ ..] = words else {
        return Err("call <caller> <callee> [options]".into());
    };
    let mut caller = party(from);
    let mut spec = CallSpec::between(party(from), party(to));
    for opt in opts {
        let (key, value) = opt.split_once('=').unwrap_or((opt, ""));
        let dur = || parse_duration(value).ok_or_else(|| format!("bad duration in {opt}"));
        match key {
            "ring" => spec = spec.ring(dur()?),
            "talk" => spec = spec.talk(dur()?, Side::Caller),
            "talk_callee" => spec = spec.talk(dur()?, Side::Callee),
            "hold" => {
                let (at, len) = value
                    .split_once('+')
                    .ok_or_else(|| format!("hold=<at>+<length> in {opt}"))?;
                let at = parse_duration(at).ok_or_else(|| format!("bad duration in {opt}"))?;
                let len = parse_duration(len).ok_or_else(|| format!("bad duration in {opt}"))?;
                spec = spec.hold(Side::Caller, at, len);
            }
            "callrec_user" => spec = spec.callrec_user(value),
            "loopback" => spec = spec.loopback(value),
            "name" => caller = caller.named(value),
            "unanswered" => spec = spec.unanswered(),
            _ => return Err(format!("unknown option {opt:?}")),
        }
    }
    spec.caller = caller;
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scenario_reads_as_written() {
        let s = Scenario::parse(
            "# comment\n\
             20s call 442920123123 1002 ring=3s talk=25s name=Alice\n\
             0s  call 1001 1000 ring=2s talk=40s hold=10s+8s callrec_user=1001\n\
             14s feature 1001 *48   # trailing comment\n\
             50s hangup 1\n",
        )
        .expect("parses");
        assert_eq!(s.actions.len(), 4);
        assert_eq!(s.actions[0].0, Duration::ZERO);
        let Action::Call(first) = &s.actions[0].1 else {
            panic!("a call first")
        };
        assert_eq!(first.caller, Party::user("1001"));
        assert_eq!(first.holds.len(), 1);
        assert_eq!(first.callrec_user.as_deref(), Some("1001"));
        let Action::Call(second) = &s.actions[2].1 else {
            panic!("the external call")
        };
        assert_eq!(
            second.caller,
            Party::external("442920123123").named("Alice")
        );
        assert_eq!(s.actions[3].1, Action::Hangup(1));
    }

    #[test]
    fn mistakes_name_their_line() {
        let e = Scenario::parse("0s call 1001 1000\n5s dance\n").expect_err("bad verb");
        assert_eq!(e.line, 2);
        let e = Scenario::parse("soon call 1 2").expect_err("bad offset");
        assert_eq!(e.line, 1);
        let e = Scenario::parse("0s call 1001 1000 hold=10s").expect_err("bad hold");
        assert!(e.reason.contains("hold"));
    }

    #[test]
    fn durations_take_units() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_duration("-1s"), None);
        assert_eq!(parse_duration("3 days"), None);
    }
}

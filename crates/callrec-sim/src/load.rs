//! Load for the benchmarks: many calls at a set rate, or a storm of full-size channel
//! events written as fast as the socket takes them.
//!
//! A storm never renders events while it runs: one SIP call (two legs bridged, recorded,
//! held, hung up: about 130 events of up to 335 headers each) is rendered once through the
//! real templates, and every further call reuses those bytes with its own UUIDs patched in
//! at precomputed offsets. UUIDs have a fixed length, so every `Content-Length` stays right.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::calls::{CallSpec, Side};
use callrec_model::EventFormat;

/// How a storm is made.
#[derive(Debug, Clone)]
pub struct StormSpec {
    /// How many complete calls (each about 130 events) to write to every subscribed
    /// inbound connection.
    pub calls: usize,
    /// Plain or JSON frames.
    pub format: EventFormat,
}

/// What one connection's storm achieved.
#[derive(Debug, Clone, PartialEq)]
pub struct StormReport {
    /// Events written.
    pub events: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Wall-clock time from the first byte to the last.
    pub elapsed: Duration,
}

impl StormReport {
    /// Events per second.
    pub fn events_per_second(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// One call's frames with the places its UUIDs go.
#[derive(Debug)]
pub(crate) struct StormPlan {
    pub frames: Vec<(Bytes, Vec<(usize, usize)>)>,
    pub calls: usize,
    pub uuid_count: usize,
}

impl StormPlan {
    /// Builds the plan from one rendered call: `frames` and the UUIDs to replace.
    pub(crate) fn new(frames: Vec<Bytes>, uuids: &[String], calls: usize) -> StormPlan {
        let frames = frames
            .into_iter()
            .map(|f| {
                let mut spots = Vec::new();
                for (k, u) in uuids.iter().enumerate() {
                    let needle = u.as_bytes();
                    let mut i = 0;
                    while let Some(pos) = find(&f[i..], needle) {
                        spots.push((i + pos, k));
                        i += pos + needle.len();
                    }
                }
                (f, spots)
            })
            .collect();
        StormPlan {
            frames,
            calls,
            uuid_count: uuids.len(),
        }
    }

    /// Number of events the whole storm writes.
    pub(crate) fn events(&self) -> u64 {
        (self.frames.len() * self.calls) as u64
    }

    /// The frames of call `n`, appended to `out`.
    pub(crate) fn render_call(&self, n: usize, out: &mut BytesMut) {
        let ids: Vec<[u8; 36]> = (0..self.uuid_count).map(|k| storm_uuid(n, k)).collect();
        for (frame, spots) in &self.frames {
            let start = out.len();
            out.extend_from_slice(frame);
            for (pos, k) in spots {
                out[start + pos..start + pos + 36].copy_from_slice(&ids[*k]);
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A UUID unique to (call, leg), formatted like the switch's.
fn storm_uuid(call: usize, leg: usize) -> [u8; 36] {
    let s = format!(
        "{:08x}-{:04x}-4000-8000-{:012x}",
        call as u32,
        leg as u16,
        0x5107_0000_0000u64 | call as u64
    );
    let mut out = [b'0'; 36];
    out.copy_from_slice(&s.as_bytes()[..36]);
    out
}

/// Writes a storm to a socket: the per-connection half of [`crate::Simulator::event_storm`].
pub(crate) async fn write_storm<W: tokio::io::AsyncWrite + Unpin>(
    plan: &StormPlan,
    writer: &mut W,
) -> std::io::Result<StormReport> {
    use tokio::io::AsyncWriteExt;
    let started = Instant::now();
    let mut bytes = 0u64;
    let mut buf = BytesMut::with_capacity(512 * 1024);
    for n in 0..plan.calls {
        plan.render_call(n, &mut buf);
        if buf.len() >= 256 * 1024 || n + 1 == plan.calls {
            writer.write_all(&buf).await?;
            bytes += buf.len() as u64;
            buf.clear();
        }
    }
    writer.flush().await?;
    Ok(StormReport {
        events: plan.events(),
        bytes,
        elapsed: started.elapsed(),
    })
}

/// Calls placed one after another at a set rate, for load tests.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// How many calls in total.
    pub calls: usize,
    /// How many new calls per simulated second.
    pub per_second: f64,
    /// Directory users who call, in turn.
    pub callers: Vec<String>,
    /// Who they call, in turn (directory users or external numbers).
    pub callees: Vec<String>,
    /// Ring time of every call.
    pub ring: Duration,
    /// Talk time of every call (how long the calls stay live).
    pub talk: Duration,
}

impl LoadSpec {
    /// The `n`th call of the load.
    pub fn call(&self, n: usize) -> CallSpec {
        let caller = self
            .callers
            .get(n % self.callers.len().max(1))
            .cloned()
            .unwrap_or_else(|| "1001".into());
        let callee = self
            .callees
            .get(n % self.callees.len().max(1))
            .cloned()
            .unwrap_or_else(|| "1000".into());
        let callee_party = if callee.len() <= 5 {
            crate::Party::user(&callee)
        } else {
            crate::Party::external(&callee)
        };
        CallSpec::between(crate::Party::user(&caller), callee_party)
            .ring(self.ring)
            .talk(self.talk, Side::Caller)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storm_uuids_are_unique_and_switch_shaped() {
        let a = storm_uuid(1, 0);
        let b = storm_uuid(1, 1);
        let c = storm_uuid(2, 0);
        assert_ne!(a, b);
        assert_ne!(a, c);
        let s = std::str::from_utf8(&a).expect("ascii");
        assert!(uuid::Uuid::parse_str(s).is_ok(), "{s}");
    }

    #[test]
    fn patching_keeps_frames_the_same_length() {
        let u = "b0121122-8b41-4d85-8be3-48d9a317c792".to_string();
        let frame = Bytes::from(format!(
            "Content-Length: 50\n\nUnique-ID: {u}\nOther: {u}\n"
        ));
        let plan = StormPlan::new(vec![frame.clone()], std::slice::from_ref(&u), 3);
        let mut out = BytesMut::new();
        plan.render_call(2, &mut out);
        assert_eq!(out.len(), frame.len());
        let text = String::from_utf8_lossy(&out);
        assert!(!text.contains(&u));
        assert_eq!(
            text.matches(std::str::from_utf8(&storm_uuid(2, 0)).expect("ascii"))
                .count(),
            2
        );
    }
}

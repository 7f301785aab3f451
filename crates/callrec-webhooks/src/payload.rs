//! The JSON body of an event:
//!
//! ```json
//! {"id": "5f0c…", "type": "recording.stored", "occurred_at": "2026-12-04T10:00:00.123Z",
//!  "recording": { …the recording as GET /api/v1/recordings/{id} shows it… }}
//! ```
//!
//! `type` is `recording.stored`, `recording.failed`, `recording.discarded`,
//! `recording.deleted`, or `call.not_recorded` (a recording failed for a user whose mode
//! says every call is recorded). `recording` is the recording as it is when the event is
//! sent, so an event delivered late may show a later state, and an erased number is not sent
//! on. The same event has the same `id` on every attempt and every endpoint.

use callrec_api::replies::Recording;
use callrec_store::DueEvent;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

/// An event as sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Payload {
    /// The event's id: receivers de-duplicate on it.
    pub id: String,
    /// What happened.
    #[serde(rename = "type")]
    pub kind: String,
    /// When it happened, RFC 3339 UTC with milliseconds.
    pub occurred_at: String,
    /// The recording it happened to.
    pub recording: Recording,
}

impl Payload {
    /// The body of `event`.
    pub fn of(event: &DueEvent) -> Payload {
        Payload {
            id: event.id.clone(),
            kind: event.kind.clone(),
            occurred_at: rfc3339(event.at),
            recording: event.recording.clone().into(),
        }
    }

    /// The bytes POSTed.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a payload always serialises")
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

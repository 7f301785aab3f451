//! What the daemon reads from one switch event.
//!
//! First step of the flow: the ESL session hands every event (plain or JSON, the crate parses
//! both into the same header map) to [`ChannelEvent::from_headers`], which keeps the few
//! headers a decision needs and rejects an event that lacks what its kind requires. Nothing
//! here knows about users or recordings.

use freeswitch_esl_tokio::HeaderLookup;

pub use callrec_model::Micros;

/// The events the daemon subscribes to (SPEC §3.1), by name. CHANNEL_PROGRESS and
/// CHANNEL_PROGRESS_MEDIA (a leg ringing, or playing early media) are where a recording is
/// armed before answer (SPEC §3.3), so that it does not wait for CHANNEL_ANSWER to cross the
/// Event Socket.
pub const SUBSCRIBED_EVENTS: &[&str] = &[
    "CHANNEL_PROGRESS",
    "CHANNEL_PROGRESS_MEDIA",
    "CHANNEL_ANSWER",
    "CHANNEL_BRIDGE",
    "CHANNEL_HOLD",
    "CHANNEL_UNHOLD",
    "CHANNEL_HANGUP_COMPLETE",
    "RECORD_START",
    "RECORD_STOP",
    "BACKGROUND_JOB",
    "HEARTBEAT",
];

/// Which of the subscribed events this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// `CHANNEL_PROGRESS` or `CHANNEL_PROGRESS_MEDIA`: ringing, not answered yet.
    Progress,
    /// `CHANNEL_ANSWER`.
    Answer,
    /// `CHANNEL_BRIDGE`.
    Bridge,
    /// `CHANNEL_HOLD`.
    Hold,
    /// `CHANNEL_UNHOLD`.
    Unhold,
    /// `CHANNEL_HANGUP_COMPLETE`.
    HangupComplete,
    /// `RECORD_START`.
    RecordStart,
    /// `RECORD_STOP`.
    RecordStop,
    /// `HEARTBEAT`: liveness only.
    Heartbeat,
    /// `BACKGROUND_JOB`: a command result, read by the command connection.
    BackgroundJob,
    /// Anything else (a switch may send more than was asked for).
    Other,
}

impl EventKind {
    /// The kind named by an `Event-Name` value.
    pub fn from_name(name: &str) -> EventKind {
        match name {
            "CHANNEL_PROGRESS" | "CHANNEL_PROGRESS_MEDIA" => EventKind::Progress,
            "CHANNEL_ANSWER" => EventKind::Answer,
            "CHANNEL_BRIDGE" => EventKind::Bridge,
            "CHANNEL_HOLD" => EventKind::Hold,
            "CHANNEL_UNHOLD" => EventKind::Unhold,
            "CHANNEL_HANGUP_COMPLETE" => EventKind::HangupComplete,
            "RECORD_START" => EventKind::RecordStart,
            "RECORD_STOP" => EventKind::RecordStop,
            "HEARTBEAT" => EventKind::Heartbeat,
            "BACKGROUND_JOB" => EventKind::BackgroundJob,
            _ => EventKind::Other,
        }
    }

    /// Whether events of this kind are about one channel (and so must name it).
    pub fn is_channel_event(self) -> bool {
        !matches!(
            self,
            EventKind::Heartbeat | EventKind::BackgroundJob | EventKind::Other
        )
    }
}

/// An event the daemon cannot use although it asked for it: counted as malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MalformedEvent {
    /// No `Event-Name` header.
    #[error("event without Event-Name")]
    NoName,
    /// A channel event without `Unique-ID`.
    #[error("{event} without Unique-ID")]
    NoUniqueId {
        /// The event name.
        event: String,
    },
    /// `Event-Date-Timestamp` missing or not an integer.
    #[error("{event} with a bad Event-Date-Timestamp: {value:?}")]
    BadTimestamp {
        /// The event name.
        event: String,
        /// What the header held, if anything.
        value: Option<String>,
    },
}

/// The headers of one event that the call table and the decisions use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelEvent {
    /// Which event.
    pub kind: EventKind,
    /// `Unique-ID` (empty for events that are not about a channel).
    pub uuid: String,
    /// `Event-Date-Timestamp`.
    pub at: Micros,
    /// `Other-Leg-Unique-ID`: the bridged peer.
    pub other_leg: Option<String>,
    /// `variable_other_loopback_leg_uuid`: the other half of a loopback pair.
    pub loopback_peer: Option<String>,
    /// `variable_loopback_leg` is `A`: the loopback leg that was originated (the B leg runs
    /// the dialplan). Its recordings end about 0.5 s before the call; the B leg's do not.
    pub loopback_a: bool,
    /// `Channel-Call-UUID` when it names another channel: the leg that created this one.
    pub call_uuid: Option<String>,
    /// `Call-Direction` as the switch sees the leg (`inbound` = the leg called the switch).
    pub call_direction: Option<String>,
    /// `Caller-Caller-ID-Number`.
    pub caller_number: Option<String>,
    /// `Caller-Caller-ID-Name`.
    pub caller_name: Option<String>,
    /// `Caller-Destination-Number`.
    pub destination: Option<String>,
    /// `variable_dialed_user`: the directory user a leg rings (or, on the calling leg after
    /// a bridge, the one it reached).
    pub dialed_user: Option<String>,
    /// Values of the configured ownership headers (SPEC §3.2), in configured order; `None`
    /// where the event lacks the header.
    pub owner_headers: Vec<Option<String>>,
    /// `Record-File-Path` (RECORD_START/STOP).
    pub record_path: Option<String>,
    /// `Recording-Variable-callrec_id`: the recording id the daemon passed to the switch.
    pub callrec_id: Option<String>,
    /// `Record-Completion-Cause` (RECORD_STOP).
    pub completion_cause: Option<String>,
    /// `variable_RECORD_DISCARDED` is `true`: the switch deleted a too-short file.
    pub record_discarded: bool,
    /// `Answer-State` is `early`: the leg has media before its answer (it was pre-answered:
    /// CHANNEL_PROGRESS_MEDIA), so a recording armed on it changes nothing the caller hears.
    pub early_media: bool,
    /// `variable_callrec_armed`: the file the shipped dialplan armed this leg to record at
    /// answer (`dialplan/callrec-arm.xml`), if it did.
    pub switch_armed: Option<String>,
}

impl ChannelEvent {
    /// Reads an event; `owner_header_names` is the configured `[match] headers` list.
    pub fn from_headers(
        event: &impl HeaderLookup,
        owner_header_names: &[String],
    ) -> Result<ChannelEvent, MalformedEvent> {
        let name = event
            .header_str("Event-Name")
            .ok_or(MalformedEvent::NoName)?;
        let kind = EventKind::from_name(name);
        let owned = |key: &str| event.header_str(key).map(str::to_owned);
        let uuid = match event.header_str("Unique-ID") {
            Some(uuid) if !uuid.is_empty() => uuid.to_owned(),
            _ if kind.is_channel_event() => {
                return Err(MalformedEvent::NoUniqueId {
                    event: name.to_owned(),
                });
            }
            _ => String::new(),
        };
        let at = match event.header_str("Event-Date-Timestamp") {
            Some(raw) => raw
                .parse::<Micros>()
                .map_err(|_| MalformedEvent::BadTimestamp {
                    event: name.to_owned(),
                    value: Some(raw.to_owned()),
                })?,
            None if kind.is_channel_event() => {
                return Err(MalformedEvent::BadTimestamp {
                    event: name.to_owned(),
                    value: None,
                });
            }
            None => 0,
        };
        let call_uuid = owned("Channel-Call-UUID").filter(|c| !c.is_empty() && *c != uuid);
        Ok(ChannelEvent {
            kind,
            at,
            other_leg: owned("Other-Leg-Unique-ID").filter(|s| !s.is_empty()),
            loopback_peer: owned("variable_other_loopback_leg_uuid").filter(|s| !s.is_empty()),
            loopback_a: owned("variable_loopback_leg").as_deref() == Some("A"),
            call_uuid,
            call_direction: owned("Call-Direction"),
            caller_number: owned("Caller-Caller-ID-Number"),
            caller_name: owned("Caller-Caller-ID-Name"),
            destination: owned("Caller-Destination-Number"),
            dialed_user: owned("variable_dialed_user").filter(|v| !v.is_empty()),
            owner_headers: owner_header_names
                .iter()
                .map(|h| owned(h).filter(|v| !v.is_empty()))
                .collect(),
            record_path: owned("Record-File-Path"),
            callrec_id: owned("Recording-Variable-callrec_id"),
            completion_cause: owned("Record-Completion-Cause"),
            record_discarded: event
                .header_str("variable_RECORD_DISCARDED")
                .is_some_and(|v| v.eq_ignore_ascii_case("true")),
            early_media: event.header_str("Answer-State") == Some("early"),
            switch_armed: owned("variable_callrec_armed").filter(|v| !v.is_empty()),
            uuid,
        })
    }

    /// An event of no kind about no channel, to build others from.
    pub fn empty() -> ChannelEvent {
        ChannelEvent {
            kind: EventKind::Other,
            uuid: String::new(),
            at: 0,
            other_leg: None,
            loopback_peer: None,
            loopback_a: false,
            call_uuid: None,
            call_direction: None,
            caller_number: None,
            caller_name: None,
            destination: None,
            dialed_user: None,
            owner_headers: Vec::new(),
            record_path: None,
            callrec_id: None,
            completion_cause: None,
            record_discarded: false,
            early_media: false,
            switch_armed: None,
        }
    }

    /// Every other channel this event says is part of the same call.
    pub fn peers(&self) -> impl Iterator<Item = &str> {
        [&self.other_leg, &self.loopback_peer, &self.call_uuid]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .filter(|peer| *peer != self.uuid)
    }
}

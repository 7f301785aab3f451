//! The named enums and ids of SPEC §1.
//!
//! Every enum here has one spelling on the wire, in the index and in the config file: the
//! `snake_case` name that `as_str` returns and `FromStr` accepts. Parsing never falls back to a
//! default; an unknown name is an error that says which names are allowed.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A name that is not one of an enum's spellings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{given}` (expected one of: {})", allowed.join(", "))]
pub struct UnknownName {
    /// What kind of name it should have been, e.g. `recording mode`.
    pub what: &'static str,
    /// What was given.
    pub given: String,
    /// The accepted spellings.
    pub allowed: &'static [&'static str],
}

/// Declares an enum whose values each have one `snake_case` spelling, used on the wire, in the
/// index and in config files: `as_str`, `Display`, `FromStr` (an unknown name is an
/// [`UnknownName`] listing the allowed ones, never a fallback), serde, and `ALL`.
///
/// The crate using it must depend on `serde` (with `derive`).
#[macro_export]
macro_rules! named_enum {
    (
        $(#[$meta:meta])*
        $name:ident, $what:literal {
            $( $(#[$vmeta:meta])* $variant:ident => $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ::serde::Serialize, ::serde::Deserialize)]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $text)] $variant ),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The one spelling used on the wire, in the index and in config files.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::UnknownName;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err($crate::UnknownName {
                        what: $what,
                        // Bounded: the text may come from a URL or a config file.
                        given: s.chars().take(64).collect(),
                        allowed: &[$($text),+],
                    }),
                }
            }
        }
    };
}

named_enum! {
    /// A user's recording mode (SPEC §1).
    RecordingMode, "recording mode" {
        /// Never recorded; *44 is refused.
        Never => "never",
        /// Every answered call recorded; pause refused.
        Always => "always",
        /// Every call recorded; *48/*49 and the API may pause and resume.
        AlwaysPausable => "always_pausable",
        /// Nothing recorded until *44 or the API starts it; then pausable.
        OnDemand => "on_demand",
    }
}

impl RecordingMode {
    /// Whether a call of a user in this mode is recorded from the moment it is answered.
    pub fn records_on_answer(self) -> bool {
        matches!(self, RecordingMode::Always | RecordingMode::AlwaysPausable)
    }

    /// Whether a running recording of this user may be paused and resumed.
    pub fn may_pause(self) -> bool {
        matches!(
            self,
            RecordingMode::AlwaysPausable | RecordingMode::OnDemand
        )
    }

    /// Whether this user may start a recording on demand (*44, API `start`).
    pub fn may_start_on_demand(self) -> bool {
        !matches!(self, RecordingMode::Never)
    }
}

named_enum! {
    /// What a user may see and do through the API.
    Role, "role" {
        /// Their own recordings and calls only.
        User => "user",
        /// Their whole site.
        Admin => "admin",
    }
}

named_enum! {
    /// How a pause is carried out on the switch (SPEC §3.4).
    PauseBehavior, "pause behavior" {
        /// `uuid_record mask`/`unmask`: silence written, timeline kept.
        Silence => "silence",
        /// `uuid_record pause`/`resume`: nothing written while paused.
        Skip => "skip",
    }
}

named_enum! {
    /// What happens when a user is over their storage quota (SPEC §4.4).
    QuotaPolicy, "quota policy" {
        /// Keep recording; flag the user as over quota.
        Alert => "alert",
        /// Delete the user's oldest recordings not on hold until usage fits (never on a site
        /// under legal hold, whose recordings are all kept seven years, nor when held
        /// recordings and the new one exceed the quota alone: then it alerts).
        EvictOldest => "evict_oldest",
    }
}

named_enum! {
    /// A call's direction from the recorded user's point of view.
    Direction, "direction" {
        /// From outside to the user.
        Inbound => "inbound",
        /// From the user to outside.
        Outbound => "outbound",
        /// Between two users of the switch.
        Internal => "internal",
    }
}

named_enum! {
    /// Where a recording is in its life (SPEC §1).
    RecordingState, "recording state" {
        /// The switch is writing the file.
        Recording => "recording",
        /// The file is in the store, hashed and indexed.
        Stored => "stored",
        /// Shorter than the site's `min_seconds`; the switch deleted it.
        Discarded => "discarded",
        /// Something went wrong; the reason says what. Any file is kept.
        Failed => "failed",
        /// Removed by retention, quota or an admin; the row is a tombstone.
        Deleted => "deleted",
    }
}

named_enum! {
    /// What happened to a recording at one instant.
    SegmentKind, "segment kind" {
        /// Recording started.
        Start => "start",
        /// Recording paused (masked or skipped).
        Pause => "pause",
        /// Recording resumed.
        Resume => "resume",
        /// Recording stopped.
        Stop => "stop",
    }
}

named_enum! {
    /// Who or what caused a segment.
    SegmentSource, "segment source" {
        /// A feature code dialled on the handset.
        Handset => "handset",
        /// A call to the REST API.
        Api => "api",
        /// The user's recording mode or the switch (answer, hangup).
        Policy => "policy",
    }
}

named_enum! {
    /// What a user, an admin or a feature code asks of a call's recording (SPEC §3.5, §5).
    RecordingAction, "recording action" {
        /// Start recording now (*44; on demand).
        Start => "start",
        /// Stop recording; the file is stored as usual.
        Stop => "stop",
        /// Pause (*48): mask or skip, by the site's pause behavior.
        Pause => "pause",
        /// Resume after a pause (*49).
        Resume => "resume",
    }
}

macro_rules! row_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

row_id!(
    /// The id of a site in the index.
    SiteId
);
row_id!(
    /// The id of a user in the index.
    UserId
);
row_id!(
    /// The id of an API token (not the secret).
    TokenId
);

/// The sortable unique id of a recording: a UUIDv7 in its hyphenated text form.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RecordingId(String);

impl RecordingId {
    /// A new id, ordered after every id made earlier by this process.
    pub fn new() -> Self {
        RecordingId(uuid::Uuid::now_v7().hyphenated().to_string())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last six hex digits: the short suffix of file names.
    pub fn short(&self) -> &str {
        &self.0[self.0.len() - 6..]
    }
}

impl Default for RecordingId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for RecordingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Input quoted back in an error message: at most 64 characters, then how long it was. A
/// reply never echoes a 65,000-character path segment whole.
pub fn excerpt(s: &str) -> String {
    const SHOWN: usize = 64;
    match s.char_indices().nth(SHOWN) {
        None => s.to_owned(),
        Some((cut, _)) => format!("{}… ({} characters)", &s[..cut], s.chars().count()),
    }
}

/// Text that is not a recording id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a recording id (a UUID)")]
pub struct BadRecordingId(pub String);

impl FromStr for RecordingId {
    type Err = BadRecordingId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        uuid::Uuid::try_parse(s)
            .map(|u| RecordingId(u.hyphenated().to_string()))
            .map_err(|_| BadRecordingId(excerpt(s)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_quote_at_most_64_characters_of_their_input() {
        assert_eq!(excerpt("short"), "short");
        let long = "é".repeat(65_000);
        let quoted = excerpt(&long);
        assert!(quoted.starts_with(&"é".repeat(64)));
        assert!(quoted.ends_with("… (65000 characters)"), "{quoted}");
        let err = long.parse::<RecordingId>().unwrap_err().to_string();
        assert!(err.len() < 200, "{}", err.len());
    }

    #[test]
    fn every_name_round_trips_through_its_spelling() {
        for mode in RecordingMode::ALL {
            assert_eq!(mode.as_str().parse::<RecordingMode>(), Ok(*mode));
            assert_eq!(
                serde_json::to_string(mode).unwrap(),
                format!("\"{}\"", mode.as_str())
            );
        }
        for state in RecordingState::ALL {
            assert_eq!(state.as_str().parse::<RecordingState>(), Ok(*state));
        }
    }

    #[test]
    fn unknown_mode_names_the_allowed_ones() {
        let err = "sometimes".parse::<RecordingMode>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown recording mode `sometimes` (expected one of: never, always, always_pausable, on_demand)"
        );
    }

    #[test]
    fn recording_ids_sort_by_creation_and_parse_back() {
        let a = RecordingId::new();
        let b = RecordingId::new();
        assert!(a < b);
        assert_eq!(a.as_str().parse::<RecordingId>().unwrap(), a);
        assert_eq!(a.short().len(), 6);
        assert!("../etc/passwd".parse::<RecordingId>().is_err());
    }
}

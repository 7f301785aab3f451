//! callrec's vocabulary: the words every other crate speaks.
//!
//! Owns the plain types that more than one crate needs and that depend on nothing of callrec's
//! own: the named enums of SPEC §1 (modes, roles, states, directions, segment kinds and
//! sources, recording actions) and `named_enum!` that declares them, the recording and row
//! ids, one [`Clock`] with a system and a manual clock, the live-call view the daemon reports
//! and the API shows with the seam between the two ([`LiveCalls`]), the typed error of a
//! recording action, the prompts a feature call can hear, and the recording a decision to
//! record creates ([`NewRecording`]). It owns no I/O, no SQL, no HTTP
//! and no ESL: its only dependencies are serde, chrono, thiserror and uuid, so the
//! configuration, the store, the daemon, the API and the simulator can all depend on it
//! without pulling each other in.
//!
//! # Map
//!
//! | module | what |
//! | --- | --- |
//! | [`names`] | [`named_enum!`], [`UnknownName`], the domain enums, [`RecordingId`] and the row ids |
//! | [`clock`] | [`Clock`], [`SystemClock`], [`ManualClock`], [`Micros`] |
//! | [`limits`] | bounds on site settings (retention, `min_seconds`) |
//! | [`live`] | [`LiveCall`] and [`CallRecording`]: a call in progress as a user sees it; [`LiveCalls`], the seam between the daemon and the API |
//! | [`action`] | [`ActionError`]: why a pause, resume, start or stop was refused |
//! | [`prompt`] | [`Prompt`]: what a feature-code caller hears |
//! | [`wire`] | [`EventFormat`]: how the switch encodes the events it sends |
//! | [`recording`] | [`NewRecording`]: the row the daemon's decision to record creates |

#![deny(missing_docs)]

pub mod action;
pub mod clock;
pub mod limits;
pub mod live;
pub mod names;
pub mod prompt;
pub mod recording;
pub mod wire;

pub use action::ActionError;
pub use clock::{Clock, ManualClock, Micros, SystemClock, to_utc};
pub use live::{ActionRequest, BoxFuture, CallRecording, DaemonStatus, LiveCall, LiveCalls};
pub use names::{
    BadRecordingId, Direction, PauseBehavior, QuotaPolicy, RecordingAction, RecordingId,
    RecordingMode, RecordingState, Role, SegmentKind, SegmentSource, SiteId, TokenId, UnknownName,
    UserId,
};
pub use prompt::Prompt;
pub use recording::NewRecording;
pub use wire::EventFormat;

//! A simulated FreeSWITCH for callrec's tests, `callrec demo` and the benchmarks.
//!
//! The simulator is an Event Socket peer whose wire behaviour is taken from captures of a
//! real switch (`tests/fixtures/freeswitch/`): the inbound socket (`auth`, `event`,
//! `filter`, `api`, `bgapi`, heartbeats, disconnect notices), scripted calls whose channel
//! events have the captured names, order and headers, `uuid_record` writing real WAV files,
//! the outbound socket a dialplan's `socket` application opens for a feature code, and faults
//! on demand. It owns none of callrec's logic; it is the switch callrec talks to.
//!
//! # Using it from a test
//!
//! ```no_run
//! use std::time::Duration;
//! use callrec_sim::{CallSpec, Side, SimConfig, Simulator};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let spool = tempfile::tempdir()?;
//! // A manual clock: nothing happens until the test advances it.
//! let sim = Simulator::start(SimConfig {
//!     spool_dir: spool.path().into(),
//!     ..SimConfig::default()
//! })
//! .await?;
//! let esl = sim.esl_addr(); // point the daemon (or an EslClient) here, password "ClueCon"
//!
//! // 1001 calls 1000; the phone rings 2 s, they talk 30 s, 1001 hangs up.
//! let call = sim.place_call(
//!     CallSpec::internal("1001", "1000")
//!         .ring(Duration::from_secs(2))
//!         .hold(Side::Caller, Duration::from_secs(10), Duration::from_secs(5))
//!         .talk(Duration::from_secs(30), Side::Caller),
//! );
//! sim.advance(Duration::from_secs(2)); // CHANNEL_ANSWER fires
//! // ... the daemon sends `uuid_record <call.caller_uuid> start ...` ...
//! sim.advance(Duration::from_secs(30)); // hold, unhold, hangup, RECORD_STOP
//! sim.wait_for(Duration::from_secs(5), "recording stopped", |s| {
//!     s.recordings().iter().any(|r| r.uuid == call.caller_uuid)
//! })
//! .await?;
//! # Ok(()) }
//! ```
//!
//! With [`ClockMode::RealTime`] the same calls play out on the wall clock (the demo, the
//! `callrec-sim` binary).
//!
//! # What it does not model
//!
//! Media is not real: recordings hold a tone where the call talks and silence where it is
//! masked; no RTP flows. Only the dialplans of the captures exist (`9999` tone, `9998` park,
//! the feature codes, the bridge between directory users). Events between the two legs of a
//! call follow one interleaving the switch is known to produce; the real switch varies it.

#![deny(missing_docs)]

mod api;
pub(crate) mod calls;
pub(crate) mod capture;
pub(crate) mod channel;
pub mod clock;
pub mod config;
pub mod event;
pub mod faults;
mod inbound;
pub mod load;
mod load_sample;
pub(crate) mod outbound;
mod play;
mod recorder;
pub mod recording;
pub mod scenario;
pub(crate) mod scripts;
mod sim;
pub(crate) mod switch;
pub(crate) mod template;
pub mod wav;
pub mod wire;

pub use calls::{CallHandle, CallKind, CallSpec, HoldSpec, Party, Side};
pub use clock::ClockMode;
pub use config::SimConfig;
pub use event::{Event, EventFormat};
pub use faults::{MalformedFrame, ReplyFault, ReplyRule};
pub use outbound::{FeatureCallHandle, FeatureCallInfo};
pub use recording::{CompletionCause, RecordingInfo};
pub use sim::{ChannelInfo, SimError, SimState, Simulator};

//! A simulated FreeSWITCH for callrec's tests, `callrec demo` and the benchmarks.
//!
//! The simulator is an Event Socket peer whose wire behaviour is taken from captures of a
//! real switch (`tests/fixtures/freeswitch/`). It owns the switch side of everything callrec
//! talks to: the inbound socket (`auth`, `event plain|json|xml`, `filter`, `nixevent`,
//! `noevents`, `api`, `bgapi`, `sendmsg <uuid>`, `exit`, heartbeats, disconnect notices),
//! scripted calls whose channel events have the captured names, order and headers,
//! `uuid_record` writing real WAV files, the outbound socket a dialplan's `socket`
//! application opens for a feature code, faults on demand, and load. It owns none of
//! callrec's logic: recording decisions, the store and the API live elsewhere.
//!
//! # How the events stay faithful
//!
//! Each kind of channel in the captures (a loopback leg, a SIP caller, a SIP callee, a
//! feature-code leg) is turned into a list of steps: the event's header layout with every
//! identity replaced by a token, plus the changes the switch made to the channel's
//! variables since its previous event (see the private `template` module). A simulated call replays
//! named runs of those steps (`create`, `answer`, `hold`, `hangup`, ...), so header names and
//! their order follow the real switch while every value is the simulated call's own. What a
//! capture cannot know (caller profiles, recording headers and variables, the CDR at
//! hangup) is generated the way the switch generates it. `tests/scenarios.rs` replays every
//! captured scenario on the simulator and compares the two event streams channel by channel.
//!
//! # Using it from a test
//!
//! ```no_run
//! use std::time::Duration;
//! use callrec_sim::{CallSpec, Side, SimConfig, Simulator};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let spool = tempfile::tempdir()?;
//! // A manual clock (the default): nothing happens until the test advances it.
//! let sim = Simulator::start(SimConfig {
//!     spool_dir: spool.path().into(),
//!     feature_code_socket: Some("127.0.0.1:8084".into()), // where *48 connects
//!     ..SimConfig::default()
//! })
//! .await?;
//! let esl = sim.esl_addr(); // point the daemon (or an EslClient) here, password "ClueCon"
//!
//! // Directory user 1001 calls 1000: rings 2 s, talks 30 s with a hold, 1001 hangs up.
//! let call = sim.place_call(
//!     CallSpec::internal("1001", "1000")
//!         .ring(Duration::from_secs(2))
//!         .hold(Side::Caller, Duration::from_secs(10), Duration::from_secs(5))
//!         .talk(Duration::from_secs(30), Side::Caller),
//! );
//! sim.advance(Duration::from_secs(2))?; // CHANNEL_ANSWER, CHANNEL_BRIDGE fire
//! // ... the daemon sends `uuid_record <call.caller_uuid> start ...` ...
//! let feature = sim.dial_feature_code("1001", "*48"); // the socket session to 8084
//! sim.advance(Duration::from_secs(30))?; // holds, hangup, RECORD_STOP, all on time
//! sim.wait_for(Duration::from_secs(5), "the recording to stop", |s| {
//!     s.recordings().iter().any(|r| r.uuid == call.caller_uuid)
//! })
//! .await?;
//! let what_the_listener_did = sim.feature_call(&feature); // answered, prompts, hung up
//! # Ok(()) }
//! ```
//!
//! [`CallSpec`] covers bridged SIP calls (`internal`, `outbound`, `inbound`: which side is a
//! directory user decides `variable_user_name` / `variable_dialed_user`) and loopback pairs
//! like the `record` capture (`.loopback("9999")`). [`Simulator::api`] runs any supported API
//! command directly; [`Simulator::subscribe`] taps every event fired.
//!
//! Faults: [`Simulator::drop_connections`], [`Simulator::restart`] (channels kept or gone),
//! [`Simulator::crash`] (kill -9: no notice, recordings left with the header written at their
//! start and their audio in whole 64 KiB blocks, the port refusing connections) and [`Simulator::boot`], [`Simulator::shutdown_switch`]
//! (`fsctl shutdown`: every recording stopped, then the notice, then the port closed),
//! [`Simulator::add_reply_fault`] (delay or withhold replies), [`Simulator::send_malformed_frame`],
//! [`Simulator::refuse_auth`].
//!
//! Time: [`ClockMode::Manual`] for tests (a 30-second call takes microseconds and every
//! timestamp is deterministic), [`ClockMode::RealTime`] (optionally sped up) for the demo and
//! the `callrec-sim` binary, which plays a [`scenario`] file or a steady load.
//!
//! Load: [`Simulator::start_load`] places calls at a set rate; [`Simulator::event_storm`]
//! writes pre-rendered full-size channel events as fast as each socket takes them
//! (`cargo bench -p callrec-sim` reports the rates).
//!
//! # Behaviour worth knowing
//!
//! - A recording loses its first 480 ms ([`SimConfig::record_pre_buffer`]), as every capture
//!   shows: a 1.2 s recording holds 0.72 s of audio, so `RECORD_MIN_SEC` judges less audio
//!   than call time. A loopback B leg (the one running the extension) loses nothing, as on
//!   the real switch.
//! - Nothing is written while a recording is paused or the call is on hold (no media flows);
//!   masked audio is written as zeros, a call with no sound (a parked partner) as the
//!   constant -2 the real switch writes. The file is complete on disk before RECORD_STOP.
//! - `uuid_record … stop` on a live channel ends with `Record-Completion-Cause:
//!   success-maxtime`, as `record_callback` says; a hangup with `success-silence`.
//! - `tests/fixtures/freeswitch/README.md` ("The simulator against the real switch") lists
//!   what a comparison with the real switch found and what is still different on purpose.
//! - A recording stops when its own leg enters CS_HANGUP, on either leg and whoever hangs
//!   up: that leg's CHANNEL_HANGUP, then its CHANNEL_STATE `CS_HANGUP`, RECORD_STOP,
//!   MEDIA_BUG_STOP, CHANNEL_CALLSTATE `HANGUP`, CHANNEL_STATE `CS_REPORTING`,
//!   CHANNEL_HANGUP_COMPLETE, as in every capture. How the other leg's teardown interleaves
//!   with it varies on the real switch; the simulator plays one captured interleaving.
//! - `api originate` blocks until the A leg answers, as the switch's does.
//!
//! # What it does not model
//!
//! Media is not real: recordings hold a tone where the call talks and silence where it is
//! masked; no RTP flows, no codecs are negotiated. Only the dialplans of the captures exist
//! (`9999` tone, `9998` park, the feature codes, the bridge between SIP phones). Events
//! between the two legs of a call follow one interleaving the switch is known to produce;
//! the real switch varies it from run to run. Combinations the captures do not show (a
//! callee on hold, a loopback leg entering the socket application) reuse the nearest
//! captured events and may differ from a real switch in details.

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
pub use clock::{ClockMode, SimClock};
pub use config::SimConfig;
pub use event::Event;
pub use faults::{MalformedFrame, ReplyFault, ReplyRule};
pub use outbound::{FeatureCallHandle, FeatureCallInfo};
pub use recording::{CompletionCause, RecordingInfo};
pub use sim::{ChannelInfo, SimError, SimState, Simulator};

//! The callrec daemon.
//!
//! Owns the Event Socket session with FreeSWITCH, the live call table, every recording
//! decision (which leg to record, when to pause, resume, start and stop), the handset feature
//! codes and reconciliation after a reconnect. It does not own the index or the files: it
//! hands rows, segments and finished spool files to `callrec-store`; and it does not serve
//! HTTP: the API reads calls and asks for actions through a [`DaemonHandle`].
//!
//! The flow, module by module:
//!
//! - [`event`]: the headers of one switch event that matter ([`event::ChannelEvent`]);
//! - [`directory`]: the store's directory in memory, indexed for ownership lookups (SPEC §3.2);
//! - [`calls`]: the live call table (legs, calls, holds, recordings);
//! - [`recorder`]: decisions as plain functions, `(state, input) -> effects`;
//! - `core`: the recorder behind a lock and the channels its effects go out on;
//! - [`esl`]: the Event Socket session (events, commands, reconnects);
//! - [`feature`]: the outbound listener for *48, *49, *44;
//! - [`reconcile`]: rebuilding the view of live calls from the switch;
//! - `store_writer`: the daemon's one way into the store (rows, segments, ingest hand-off,
//!   directory reloads);
//! - `daemon`: [`run`], [`Daemon`] and [`DaemonHandle`], the supervised whole;
//! - [`metrics`]: Prometheus metrics;
//! - [`api`]: the daemon as the REST API sees it (`callrec_model::LiveCalls`).
//!
//! Composition is the binary's: `callrec serve` and `callrec demo` (crate `callrec`) bind the
//! listeners, run the start-up checks, and wire this daemon to the REST API and, for the demo,
//! to the simulator; this crate links neither.

#![deny(missing_docs)]

pub mod api;
pub mod arming;
mod audit_head;
pub mod calls;
mod core;
mod daemon;
pub mod directory;
pub mod esl;
pub mod event;
pub mod feature;
pub mod metrics;
pub mod reconcile;
pub mod recorder;
mod store_writer;

#[cfg(test)]
mod fixtures;

pub use core::{Clock, QueryError, system_clock};
pub use daemon::{Daemon, DaemonError, DaemonHandle, Listeners, Options, Readiness, run};
pub use recorder::ActionDone;

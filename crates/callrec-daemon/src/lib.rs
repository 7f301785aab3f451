//! The callrec daemon.
//!
//! Owns the Event Socket session with FreeSWITCH, the live call table, every recording
//! decision (which leg to record, when to pause, resume, start and stop), the handset feature
//! codes and reconciliation after a reconnect. It does not own the index or the files: it
//! hands rows, segments and finished spool files to `callrec-store`; and it does not serve
//! HTTP: the API reads calls and asks for actions through a `DaemonHandle`.
//!
//! The flow, module by module:
//!
//! - [`event`]: the headers of one switch event that matter ([`event::ChannelEvent`]);
//! - [`directory`]: users and sites in memory, for ownership lookups (SPEC §3.2);
//! - [`calls`]: the live call table (legs, calls, holds, recordings);
//! - [`decide`]: decisions as plain functions, `(state, input) -> effects`.

pub mod calls;
// Wired into `run` in the next step; until then only the tests use it.
#[allow(dead_code)]
mod core;
pub mod decide;
pub mod directory;
#[allow(dead_code)]
pub mod esl;
pub mod event;
#[allow(dead_code)]
pub mod feature;
pub mod metrics;
#[allow(dead_code)]
pub mod reconcile;

#[cfg(test)]
mod fixtures;

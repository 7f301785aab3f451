//! callrec's archive client (`callrec archive`, SPEC §6, issue 11): keeps a folder in step
//! with a callrec server's recordings, incrementally, resumably and verified.
//!
//! It follows the server's change feed from where the last run stopped, and for each
//! recording stored since downloads the audio into `NAME.part` (resuming with HTTP Range
//! after a cut), checks its SHA-256 against the server's, renames it into place and writes
//! `NAME.json` beside it (the metadata, segments and notes). Each run writes a manifest and
//! reports itself to the server. What happens on the server afterwards (a deletion, a hold,
//! a retention sweep) never deletes or changes a file here.
//!
//! It owns the client side only: HTTP to the API, files in the destination folder. The
//! server's routes are `callrec-api`'s; the command line is `callrec`'s.
//!
//! # Map
//!
//! | module | what |
//! | --- | --- |
//! | [`plan`] | the decisions, as plain functions: what a change asks, what to do with a recording, how to write an answer |
//! | [`template`] | file names: the template syntax, checking and sanitising |
//! | [`state`] | `DEST/.callrec-archive/`: the state file, written atomically |
//! | [`server`] | the API routes the client uses, with retries |
//! | [`download`] | one recording: `.part`, Range resume, SHA-256, rename |
//! | [`run`] | one run, its manifest and report; the schedule loop |
//! | [`schedule`] | `--every` / `--at`, and the [`Timer`] a test can drive |
//! | `progress` | the progress bar |
//! | [`error`] | [`ArchiveError`] and its kinds |
//!
//! # Layout of an archive
//!
//! ```text
//! DEST/
//!   2024/05/01/20240501110000-441632960001-1001-1001-<id>.wav       the audio
//!   2024/05/01/20240501110000-441632960001-1001-1001-<id>.wav.json  its sidecar
//!   .callrec-archive/state.json                                     where the feed is
//!   .callrec-archive/runs/run-20240501T020000.000Z.json             one manifest per run
//! ```

#![deny(missing_docs)]

pub mod download;
pub mod error;
pub mod plan;
mod progress;
pub mod run;
pub mod schedule;
pub mod server;
pub mod state;
pub mod template;

pub use error::{ArchiveError, ErrorKind};
pub use run::{
    ArchiveConfig, ArchivedFile, FailedRecording, RunSummary, Since, run_once, run_scheduled,
};
pub use schedule::{ManualTimer, Schedule, SystemTimer, Timer};
pub use server::{RetryPolicy, Token};
pub use template::{DEFAULT_TEMPLATE, NameTemplate};

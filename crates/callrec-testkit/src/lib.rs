//! callrec's test kit: the helpers the tests of several crates share, in one dev-only crate.
//!
//! It owns what used to be copied from crate to crate:
//!
//! - [`wait`]: waiting for what another task or process does, polling against a deadline
//!   (never a fixed sleep), and a failure that names what was waited for;
//! - [`tmpfs`]: a small tmpfs mounted for one test (a disk that fills up, a read-only
//!   filesystem), unmounted when dropped, however the test ends;
//! - [`wav`]: WAV files as the switch writes them (noise, silence, a header and no audio);
//! - [`hooks`]: a webhook receiver that records requests and answers from a script;
//! - [`capture`]: the captures of a real FreeSWITCH (`tests/fixtures/freeswitch/`), read frame
//!   by frame;
//! - [`browser`]: a headless Chromium driven over WebDriver, for the portal's browser tests
//!   (skipped without Chromium outside CI, failing under `CI=true`).
//!
//! What it does not own: anything built from callrec's own types. The kit depends on no
//! callrec crate, so a crate's unit tests can use it without seeing a second copy of their
//! own types. Builders of those types live in the test-support module of the crate that owns
//! them: the daemon's recorder builder in `callrec-daemon/src/fixtures.rs`, the store and API
//! fixtures in each crate's `tests/support`.
//!
//! The capture reader is deliberately independent of the simulator's own
//! (`callrec_sim::capture`): tests that compare the simulator with the captures must not read
//! the captures with the code under test.

#![deny(missing_docs)]

pub mod browser;
pub mod capture;
pub mod hooks;
pub mod tmpfs;
pub mod wait;
pub mod wav;

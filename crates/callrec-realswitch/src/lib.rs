//! callrec against a real FreeSWITCH (issue 9): what a test needs to start a switch with the
//! project's dialplan, run `callrec serve` against it, place calls and check what was stored.
//!
//! This crate owns test fixtures only; the product is the `callrec` binary it runs. The suite
//! itself is `tests/real_switch.rs`, built only with the `real-switch` feature (see
//! `scripts/real-switch.sh`). Every fixture cleans up after itself on drop, panics included:
//! the switch and the daemon are child processes of the test and are killed, and their
//! temporary directories removed (kept, and named on stderr, when the test failed).
//!
//! [`scenario`] and [`compare`] serve the simulator's check against the switch: the same
//! scripted Event Socket commands run on either, and the two runs compared.

#![deny(missing_docs)]

pub mod bench;
pub mod callrec;
pub mod compare;
pub mod esl;
pub mod http;
pub mod phone;
pub mod proxy;
pub mod scenario;
pub mod switch;
pub mod wav;

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub use callrec::{Callrec, segment_kinds, segment_sources};
pub use switch::Switch;
pub use wav::Wav;

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A port free on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    free_addr().port()
}

/// An address free on 127.0.0.1 right now.
pub fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

/// Polls `check` every 100 ms until it returns `Some`, or fails the test naming `what`.
#[track_caller]
pub fn eventually<T>(within: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

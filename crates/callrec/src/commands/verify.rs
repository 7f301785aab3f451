//! `callrec verify`: re-hash every stored file and walk the audit chain (SPEC §4.5).

use anyhow::Context as _;
use callrec_store::VerifyOptions;

use crate::commands::{Session, out};
use crate::exit::Outcome;

/// Verifies and prints the report; any problem makes the run exit 1.
pub fn run(session: &Session, json: bool) -> anyhow::Result<Outcome> {
    let mut store = session.open_store()?;
    let options = VerifyOptions {
        actor: session.actor.clone(),
        ..VerifyOptions::default()
    };
    let report = store.verify(&options).context("verify failed")?;
    if json {
        out::json(&report)?;
    } else {
        out::line(&report)?;
    }
    Ok(if report.is_clean() {
        Outcome::Success
    } else {
        Outcome::ProblemsFound
    })
}

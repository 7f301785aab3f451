//! `callrec erase --number N --reason TEXT [--dry-run]`: erase every recording with a number
//! as either party (issue 13; a data subject's erasure request), except those a hold or the
//! legal hold keeps, which are listed with the reason.

use anyhow::Context as _;
use callrec_store::Access;

use crate::commands::{Session, out};
use crate::exit::Outcome;

/// Erases (or, dry, lists) and prints the report.
pub fn run(
    session: &Session,
    site: &str,
    number: &str,
    reason: &str,
    dry_run: bool,
    json: bool,
) -> anyhow::Result<Outcome> {
    let mut store = session.open_store()?;
    let report = store
        .erase_number(
            site,
            number,
            reason,
            &Access::system(&session.actor),
            dry_run,
        )
        .with_context(|| format!("cannot erase the recordings of {number}"))?;
    if json {
        out::json(&report)?;
    } else {
        out::print(&report.to_string())?;
    }
    Ok(Outcome::Success)
}

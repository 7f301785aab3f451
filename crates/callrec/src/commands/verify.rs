//! `callrec verify`: re-hash every stored file and walk the audit chain (SPEC §4.5); and
//! `callrec audit head`, the chain head to keep away from the index so that `verify` can
//! find entries cut from the end of the log.

use std::path::Path;

use anyhow::Context as _;
use callrec_store::{ChainHead, VerifyOptions};

use crate::commands::{Session, out};
use crate::exit::Outcome;

/// Verifies and prints the report; any problem makes the run exit 1.
pub fn run(
    session: &Session,
    json: bool,
    heads: Vec<ChainHead>,
    head_file: Option<&Path>,
) -> anyhow::Result<Outcome> {
    let mut saved_heads = heads;
    if let Some(file) = head_file {
        saved_heads.extend(read_heads(file)?);
    }
    let mut store = session.open_store()?;
    let options = VerifyOptions {
        actor: session.actor.clone(),
        saved_heads,
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

/// The heads a file holds, one `SEQ HASH` per line (what `callrec audit head >> FILE`
/// appends); blank lines and `#` comments are skipped.
fn read_heads(file: &Path) -> anyhow::Result<Vec<ChainHead>> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read chain heads from {}", file.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|(i, l)| {
            l.parse::<ChainHead>()
                .map_err(|e| anyhow::anyhow!("{}:{}: {e}", file.display(), i + 1))
        })
        .collect()
}

/// Prints the audit log's newest entry as `SEQ HASH`.
pub fn head(session: &Session) -> anyhow::Result<Outcome> {
    let store = session.open_store()?;
    match store.audit_head().context("cannot read the audit log")? {
        Some(head) => out::line(head)?,
        None => anyhow::bail!("the audit log is empty"),
    }
    Ok(Outcome::Success)
}

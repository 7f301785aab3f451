//! `callrec sweep [--dry-run]`: apply retention now (SPEC §4.3).

use anyhow::Context as _;
use callrec_store::{SweepOptions, SweepReport};

use crate::commands::{Session, out, table};
use crate::exit::Outcome;

/// Sweeps (or, dry, lists what a sweep would delete) and reports it.
pub fn run(session: &Session, dry_run: bool, json: bool) -> anyhow::Result<Outcome> {
    let mut store = session.open_store()?;
    let mut options = SweepOptions {
        dry_run,
        actor: session.actor.clone(),
        ..SweepOptions::default()
    };
    // Retention is a site setting; a config that names it must be in force before sweeping.
    // A dry run changes nothing, not even that: it previews the sweep under the settings the
    // config would apply, and says so.
    if dry_run {
        if session.site_config_pending(&store)? {
            let site = store
                .view()
                .site("default")
                .context("cannot read the default site")?;
            let pending = crate::site::site_update(&session.config).apply_to(&site.settings);
            options.site_overrides.insert(site.name, pending);
            eprintln!(
                "note: the config changes settings of site default that a real sweep applies \
                 first (see `callrec config check`); this dry run previews the sweep under \
                 them and changes nothing"
            );
        }
    } else {
        session.apply_site_config(&mut store)?;
    }
    let report = store.sweep(&options).context("sweep failed")?;
    if json {
        out::json(&report)?;
    } else {
        out::print(&describe(&report))?;
    }
    if report.files_not_removed > 0 {
        eprintln!(
            "warning: {} could not be removed yet; the next start or sweep retries",
            table::count(
                report.files_not_removed,
                "deleted recording's file",
                "deleted recordings' files"
            )
        );
    }
    Ok(Outcome::Success)
}

fn describe(report: &SweepReport) -> String {
    let recordings = table::count(report.deleted, "recording", "recordings");
    let size = table::human_bytes(report.deleted_bytes);
    let mut text = if report.dry_run {
        format!("dry run: {recordings} would be deleted ({size}); nothing was changed\n")
    } else {
        format!("deleted {recordings} ({size})\n")
    };
    if report.kept_on_hold > 0 {
        text.push_str(&format!(
            "{} kept: on hold\n",
            table::count(
                report.kept_on_hold,
                "expired recording",
                "expired recordings"
            )
        ));
    }
    if report.dry_run && !report.listed.is_empty() {
        let rows: Vec<Vec<String>> = report
            .listed
            .iter()
            .map(|s| {
                vec![
                    s.id.to_string(),
                    table::time(&s.expires_at),
                    table::human_bytes(s.size_bytes),
                    s.path.display().to_string(),
                ]
            })
            .collect();
        text.push_str(&table::render(
            &["RECORDING", "EXPIRED", "SIZE", "FILE"],
            &rows,
        ));
        let unlisted = report.deleted.saturating_sub(report.listed.len() as u64);
        if unlisted > 0 {
            text.push_str(&format!("… and {unlisted} more\n"));
        }
    }
    text
}

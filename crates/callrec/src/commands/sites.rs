//! `callrec site add | list`: the sites (tenants) of an installation. Without a way to
//! create one, the `--site` flags of the other commands could not be used (issue 12).

use anyhow::Context as _;
use callrec_store::SiteSettings;
use serde_json::json;

use crate::cli::SiteCommand;
use crate::commands::{Session, out, table};
use crate::exit::Outcome;

/// Runs one `site` subcommand.
pub fn run(session: &Session, command: SiteCommand) -> anyhow::Result<Outcome> {
    match command {
        SiteCommand::Add { name } => {
            let mut store = session.open_store()?;
            let site = store
                .create_site(&name, &SiteSettings::default(), &session.actor)
                .with_context(|| format!("cannot add site {name}"))?;
            out::line(format!(
                "added site {}: add its admin with `callrec user add <extension> --site {} --admin`",
                site.name, site.name
            ))?;
        }
        SiteCommand::List { json } => {
            let store = session.open_store()?;
            let sites = store.view().sites().context("cannot list sites")?;
            if json {
                let rows: Vec<_> = sites
                    .iter()
                    .map(|s| {
                        json!({
                            "name": s.name,
                            "enabled": s.settings.enabled,
                            "default_mode": s.settings.default_mode.as_str(),
                            "retention_days": s.settings.retention_days,
                            "legal_hold": s.settings.legal_hold,
                            "timezone": s.settings.timezone.name(),
                        })
                    })
                    .collect();
                out::json(&rows)?;
            } else {
                let rows: Vec<Vec<String>> = sites
                    .iter()
                    .map(|s| {
                        vec![
                            s.name.clone(),
                            s.settings.default_mode.to_string(),
                            s.settings.retention_days.to_string(),
                            s.settings.legal_hold.to_string(),
                            s.settings.timezone.name().to_owned(),
                        ]
                    })
                    .collect();
                out::print(&table::render(
                    &[
                        "SITE",
                        "DEFAULT MODE",
                        "RETENTION DAYS",
                        "LEGAL HOLD",
                        "TIME ZONE",
                    ],
                    &rows,
                ))?;
            }
        }
    }
    Ok(Outcome::Success)
}

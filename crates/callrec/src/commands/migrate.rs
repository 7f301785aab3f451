//! `callrec migrate`: create the index, or upgrade it to this build's schema.

use crate::commands::{Session, out};
use crate::exit::Outcome;

/// Opens (creating or upgrading) the index and says which of the three happened. Running it
/// again changes nothing.
pub fn run(session: &Session) -> anyhow::Result<Outcome> {
    let existed = session.config.storage.index_path().exists();
    let mut store = session.create_store()?;
    session.apply_site_config(&mut store)?;
    let migration = store.migration();
    let index = store.paths().index.display();
    if !existed {
        out::line(format!(
            "created index {index} (schema version {})",
            migration.to
        ))?;
    } else if migration.from < migration.to {
        out::line(format!(
            "upgraded index {index} from schema version {} to {}",
            migration.from, migration.to
        ))?;
    } else {
        out::line(format!(
            "index {index} is up to date (schema version {})",
            migration.to
        ))?;
    }
    Ok(Outcome::Success)
}

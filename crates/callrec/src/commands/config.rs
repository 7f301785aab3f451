//! `callrec config check` and `callrec config example`.

use std::path::Path;

use callrec_config::{Config, EXAMPLE_TOML};

use crate::commands::out;
use crate::exit::Outcome;

/// Prints the effective settings (secrets redacted, each non-default value with where it
/// came from) on stdout, and a one-line verdict on stderr. Reaching here means the
/// configuration loaded, so it is valid.
pub fn check(config: &Config, file: Option<&Path>) -> anyhow::Result<Outcome> {
    out::print(&config.effective_toml())?;
    match file {
        Some(path) => eprintln!("configuration OK: {}", path.display()),
        None => eprintln!("configuration OK: no config file (defaults and environment)"),
    }
    Ok(Outcome::Success)
}

/// Prints the example config file, ready to be saved and edited.
pub fn example() -> anyhow::Result<Outcome> {
    out::print(EXAMPLE_TOML)?;
    Ok(Outcome::Success)
}

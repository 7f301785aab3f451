//! Runs one command: loads the configuration, sets up logging, and dispatches.
//!
//! Each submodule connects one group of commands to the library that does the work and
//! formats the result for people (or as JSON where asked). The daemon's `serve` and `demo`
//! belong here too, dispatched like the others, once `callrec-daemon` provides them.
//!
//! Every command but `migrate` needs an existing index: listing users of a mistyped data dir
//! must say so, not create an empty index there. `migrate`, `user add` and `sweep` first apply
//! the config's explicit `[site]`/`[quota]` keys to the `default` site (as the daemon does at
//! start), because their result depends on those settings (default mode, retention).

mod config;
mod daemon;
mod migrate;
mod out;
mod sweep;
mod table;
mod tokens;
mod users;
mod verify;

use anyhow::{Context as _, bail};
use callrec_config::{Config, ConfigError, Sources};
use callrec_store::Store;

use crate::cli::{Cli, Command, ConfigCommand, GlobalArgs};
use crate::exit::Outcome;
use crate::logging;

/// Runs the command the user asked for.
pub fn run(cli: Cli) -> anyhow::Result<Outcome> {
    let Cli { global, command } = cli;
    match command {
        // Static text: must work even when the configuration is broken.
        Command::Config(ConfigCommand::Example) => config::example(),
        Command::Config(ConfigCommand::Check) => {
            config::check(&load_config(&global)?, global.config.as_deref())
        }
        Command::Serve => daemon::serve(&Session::start(&global)?),
        Command::Demo { exit, dir } => daemon::demo(&Session::start_demo(&global)?, exit, dir),
        Command::Migrate => migrate::run(&Session::start(&global)?),
        Command::User(command) => users::run(&Session::start(&global)?, command),
        Command::Token(command) => tokens::run(&Session::start(&global)?, command),
        Command::Sweep { dry_run, json } => sweep::run(&Session::start(&global)?, dry_run, json),
        Command::Verify { json } => verify::run(&Session::start(&global)?, json),
    }
}

/// The configuration from the file, the environment and the command line, in that order of
/// increasing precedence.
fn load_config(global: &GlobalArgs) -> Result<Config, ConfigError> {
    let mut sources = Sources::new();
    if let Some(path) = &global.config {
        sources = sources.file(path);
    }
    sources = sources.process_env();
    if let Some(dir) = &global.data_dir {
        sources = sources.set("storage.data_dir", dir.as_str(), "--data-dir");
    }
    for (key, value) in &global.settings {
        sources = sources.set(key.as_str(), value.as_str(), "--set");
    }
    Config::load(&sources)
}

/// What every store command starts from: the checked configuration, logging set up, and the
/// name written to the audit log for what this run changes.
pub struct Session {
    config: Config,
    actor: String,
}

impl Session {
    fn start(global: &GlobalArgs) -> anyhow::Result<Session> {
        let config = load_config(global)?;
        logging::init(&config.log)?;
        let actor = actor_name(|name| std::env::var(name).ok());
        Ok(Session { config, actor })
    }

    /// For `callrec demo`: its story goes to stdout, so unless a log level was set, only
    /// warnings and errors are logged beside it.
    fn start_demo(global: &GlobalArgs) -> anyhow::Result<Session> {
        let mut config = load_config(global)?;
        if !config.explicit_keys("log").contains(&"level")
            && let Ok(quiet) = "warn".parse()
        {
            config.log.level = quiet;
        }
        logging::init(&config.log)?;
        let actor = actor_name(|name| std::env::var(name).ok());
        Ok(Session { config, actor })
    }

    /// Opens the store, creating the data dir and the index if needed (`migrate` only).
    fn create_store(&self) -> anyhow::Result<Store> {
        let dir = &self.config.storage.data_dir;
        Store::open(dir).with_context(|| format!("cannot open the store in {}", dir.display()))
    }

    /// Opens the existing store; a missing index is an error that says where it looked.
    fn open_store(&self) -> anyhow::Result<Store> {
        let index = self.config.storage.index_path();
        if !index.exists() {
            bail!(
                "no index at {}: run `callrec migrate` to create it, or point --config / \
                 --data-dir / CALLREC_STORAGE_DATA_DIR at the daemon's data dir",
                index.display()
            );
        }
        self.create_store()
    }

    /// Whether applying the config's explicit site settings would change the `default` site.
    fn site_config_pending(&self, store: &Store) -> anyhow::Result<bool> {
        let site = store
            .view()
            .site("default")
            .context("cannot read the default site")?;
        Ok(crate::site::site_update(&self.config).apply_to(&site.settings) != site.settings)
    }

    /// Applies the config's explicit site settings to the `default` site (a no-op when the
    /// site already agrees).
    fn apply_site_config(&self, store: &mut Store) -> anyhow::Result<()> {
        let update = crate::site::site_update(&self.config);
        if update.is_empty() {
            return Ok(());
        }
        let before = store
            .view()
            .site("default")
            .context("cannot read the default site")?;
        let after = store
            .update_site("default", &update, &self.actor)
            .context("cannot apply the config's [site] settings to the default site")?;
        if after.settings != before.settings {
            tracing::info!(
                keys = ?self.config.explicit_keys("site"),
                quota = ?self.config.explicit_keys("quota"),
                "applied the config's site settings to site default"
            );
        }
        Ok(())
    }
}

/// The audit-log name of the person running the CLI: `cli:<unix user>`, preferring the user
/// behind `sudo` to `root`. `env` looks a variable up (the process environment in production).
fn actor_name(env: impl Fn(&str) -> Option<String>) -> String {
    let user = ["SUDO_USER", "USER", "LOGNAME"]
        .into_iter()
        .filter_map(env)
        .find(|name| !name.is_empty() && name.chars().all(|c| !c.is_control()));
    match user {
        Some(name) => format!("cli:{name}"),
        None => "cli".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn the_audit_actor_is_the_person_behind_sudo() {
        assert_eq!(
            actor_name(env(&[("USER", "root"), ("SUDO_USER", "alice")])),
            "cli:alice"
        );
        assert_eq!(actor_name(env(&[("USER", "bob")])), "cli:bob");
        assert_eq!(actor_name(env(&[("LOGNAME", "carol")])), "cli:carol");
        assert_eq!(actor_name(env(&[("USER", "")])), "cli");
        assert_eq!(actor_name(env(&[])), "cli");
    }
}

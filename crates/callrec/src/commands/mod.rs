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

mod archive;
mod config;
mod daemon;
mod erase;
mod export;
mod migrate;
mod out;
mod sites;
mod sweep;
mod table;
mod tokens;
mod users;
mod verify;

use anyhow::{Context as _, bail};
use callrec_config::{Config, ConfigError, Sources};
use callrec_store::Store;

use crate::cli::{AuditCommand, Cli, Command, ConfigCommand, GlobalArgs};
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
        Command::Site(command) => sites::run(&Session::start(&global)?, command),
        Command::Token(command) => tokens::run(&Session::start(&global)?, command),
        Command::Sweep { dry_run, json } => sweep::run(&Session::start(&global)?, dry_run, json),
        Command::Verify {
            json,
            heads,
            head_file,
        } => verify::run(&Session::start(&global)?, json, heads, head_file.as_deref()),
        Command::Audit(AuditCommand::Head) => verify::head(&Session::start(&global)?),
        Command::Export {
            number,
            dest,
            reason,
            site,
        } => export::run(&Session::start(&global)?, &site, &number, &reason, &dest),
        Command::Erase {
            number,
            reason,
            site,
            dry_run,
            json,
        } => erase::run(
            &Session::start(&global)?,
            &site,
            &number,
            &reason,
            dry_run,
            json,
        ),
        Command::Archive(args) => {
            let config = load_config(&global)?;
            logging::init(&config.log)?;
            archive::run(args)
        }
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command, "callrec", &mut script);
            out::print(&String::from_utf8_lossy(&script))?;
            Ok(Outcome::Success)
        }
        Command::Man => {
            let mut page = Vec::new();
            clap_mangen::Man::new(<Cli as clap::CommandFactory>::command())
                .render(&mut page)
                .context("cannot render the manual page")?;
            out::print(&String::from_utf8_lossy(&page))?;
            Ok(Outcome::Success)
        }
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
        let actor = this_actor();
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
        let actor = this_actor();
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

/// The audit-log name of the person running the CLI (issue 12): `cli:<name of the real
/// uid>`, never an environment variable a user can set (`SUDO_USER=ceo callrec …` was logged
/// as `cli:ceo`). Only when the real uid is root and `sudo` ran the command
/// (`SUDO_USER` and `SUDO_UID` both set, as sudo sets them) is the caller named beside it:
/// `cli:root(sudo:alice)`; it is still root acting. A uid with no account name is
/// `cli:uid:<n>`.
fn actor_name(
    uid: u32,
    name_of: impl Fn(u32) -> Option<String>,
    env: impl Fn(&str) -> Option<String>,
) -> String {
    let printable = |s: &String| !s.is_empty() && s.chars().all(|c| !c.is_control());
    let me = name_of(uid)
        .filter(printable)
        .unwrap_or_else(|| format!("uid:{uid}"));
    let sudo_caller = (uid == 0)
        .then(|| env("SUDO_USER").zip(env("SUDO_UID")))
        .flatten()
        .filter(|(name, id)| printable(name) && id.parse::<u32>().is_ok());
    match sudo_caller {
        Some((caller, _)) => format!("cli:{me}(sudo:{caller})"),
        None => format!("cli:{me}"),
    }
}

/// [`actor_name`] of this process.
#[cfg(unix)]
fn this_actor() -> String {
    let uid = nix::unistd::getuid().as_raw();
    actor_name(
        uid,
        |uid| {
            nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
                .ok()
                .flatten()
                .map(|u| u.name)
        },
        |name| std::env::var(name).ok(),
    )
}

/// [`actor_name`] of this process: no uid here; the account name Windows gives.
#[cfg(not(unix))]
fn this_actor() -> String {
    actor_name(u32::MAX, |_| std::env::var("USERNAME").ok(), |_| None)
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
    fn the_audit_actor_is_the_real_uid_and_the_sudo_caller_only_beside_root() {
        let names = |uid: u32| match uid {
            0 => Some("root".to_owned()),
            1000 => Some("bob".to_owned()),
            _ => None,
        };
        // What the trial did: an environment variable named someone else.
        assert_eq!(
            actor_name(1000, names, env(&[("SUDO_USER", "ceo"), ("SUDO_UID", "1")])),
            "cli:bob"
        );
        assert_eq!(actor_name(1000, names, env(&[("USER", "ceo")])), "cli:bob");
        assert_eq!(actor_name(1000, names, env(&[])), "cli:bob");
        // Root through sudo: root, and who ran sudo.
        assert_eq!(
            actor_name(
                0,
                names,
                env(&[("SUDO_USER", "alice"), ("SUDO_UID", "1001")])
            ),
            "cli:root(sudo:alice)"
        );
        // SUDO_USER alone is not how sudo runs a command.
        assert_eq!(
            actor_name(0, names, env(&[("SUDO_USER", "alice")])),
            "cli:root"
        );
        assert_eq!(actor_name(4242, names, env(&[])), "cli:uid:4242");
    }
}

//! The command line of SPEC §6, as clap types. Parsing only: what each command does is in
//! `commands`.

use std::path::PathBuf;

use callrec_model::{RecordingMode, Role};
use clap::{Args, Parser, Subcommand};

const AFTER_HELP: &str = "\
Configuration: every setting has a default; a TOML file (--config, see `callrec config example`)
overrides the defaults, CALLREC_<SECTION>_<KEY> environment variables (e.g. CALLREC_ESL_PASSWORD,
CALLREC_STORAGE_DATA_DIR) override the file, and --set / --data-dir override everything.
Precedence: command line > environment > file > defaults.

Exit codes: 0 success, 1 failure, 2 usage error, 78 configuration error.";

/// Call recording for FreeSWITCH: records calls per each user's mode, keeps every file in a
/// retention-managed store and serves them over a REST API.
#[derive(Debug, Parser)]
#[command(name = "callrec", version, about, after_help = AFTER_HELP)]
pub struct Cli {
    /// Options every command takes.
    #[command(flatten)]
    pub global: GlobalArgs,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Where the configuration comes from; accepted before or after the command.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// The TOML config file; without one the built-in defaults apply.
    #[arg(
        short,
        long,
        global = true,
        value_name = "FILE",
        env = "CALLREC_CONFIG"
    )]
    pub config: Option<PathBuf>,

    /// Override one setting, e.g. --set esl.port=8022 (repeatable; wins over file and
    /// environment).
    #[arg(long = "set", global = true, value_name = "SECTION.KEY=VALUE", value_parser = parse_setting)]
    pub settings: Vec<(String, String)>,

    /// Shorthand for --set storage.data_dir=DIR.
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<String>,
}

/// The commands. `serve` (the daemon) and `demo` are added with the daemon
/// (`callrec-daemon`); they go here, dispatched in `commands::run`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: record calls from FreeSWITCH and serve the REST API, until SIGTERM
    /// or Ctrl-C.
    Serve,

    /// Run the daemon against a built-in simulated FreeSWITCH that places a few calls, and
    /// print what happens, where the recordings are and how to query them.
    Demo {
        /// Stop once the scripted calls are stored (for scripts).
        #[arg(long)]
        exit: bool,
        /// Where the demo keeps its data (wiped at start).
        #[arg(long, default_value = "./callrec-demo")]
        dir: std::path::PathBuf,
    },

    /// Create the index, or upgrade it to this version's schema.
    Migrate,

    /// Manage users and their recording modes.
    #[command(subcommand)]
    User(UserCommand),

    /// Manage sites (tenants): each has its own users, settings and admins.
    #[command(subcommand)]
    Site(SiteCommand),

    /// Manage API tokens (stored hashed; a token's secret is shown once, at creation).
    #[command(subcommand)]
    Token(TokenCommand),

    /// Apply retention now: delete expired recordings that are not on hold.
    Sweep {
        /// Show what would be deleted, and delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },

    /// Re-hash every stored file and check the audit log's hash chain; exit 1 on any problem.
    Verify {
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// A chain head saved earlier with `callrec audit head` ("SEQ HASH"; repeatable):
        /// the log must still hold it, or entries were cut from its end.
        #[arg(long = "head", value_name = "SEQ HASH")]
        heads: Vec<callrec_store::ChainHead>,
        /// A file of saved chain heads, one per line (`callrec audit head >> FILE`).
        #[arg(long, value_name = "FILE")]
        head_file: Option<PathBuf>,
    },

    /// The audit log.
    #[command(subcommand)]
    Audit(AuditCommand),

    /// Gather every recording with a phone number as either party, in any form, into one ZIP
    /// with a manifest (metadata, segments, notes, SHA-256), for a subject access request.
    /// Audited with who, why and what.
    Export {
        /// The number, in any form.
        #[arg(long)]
        number: String,
        /// Where the ZIP is written.
        #[arg(long, value_name = "DIR")]
        dest: PathBuf,
        /// Why: the request it answers (written to the audit log; required).
        #[arg(long)]
        reason: String,
        /// The site.
        #[arg(long, default_value = "default")]
        site: String,
    },

    /// Erase every recording with a phone number as either party, in any form (a data
    /// subject's erasure request); recordings on hold or under the legal hold are kept and
    /// listed with the reason. Audited with who, why and what.
    Erase {
        /// The number, in any form (01632 960123, 441632960123, +44 1632 960123).
        #[arg(long)]
        number: String,
        /// Why: the request it answers (written to the audit log; required).
        #[arg(long)]
        reason: String,
        /// The site.
        #[arg(long, default_value = "default")]
        site: String,
        /// List what would be erased and kept; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },

    /// Keep a folder in step with a callrec server's recordings: follow the change feed,
    /// download each new recording with resume (into NAME.part, then renamed), check its
    /// SHA-256, write NAME.json beside it (metadata, segments, notes) and a manifest per
    /// run; never delete a local file. Runs once, or on a schedule (--every, --at). The token
    /// comes from CALLREC_TOKEN or --token-file, never from the command line.
    Archive(ArchiveArgs),

    /// Inspect the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),

    /// Print a shell completion script, e.g. `callrec completions bash >
    /// /etc/bash_completion.d/callrec`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },

    /// Print the manual page (roff), e.g. `callrec man > /usr/local/share/man/man1/callrec.1`.
    Man,
}

/// `callrec archive …`
#[derive(Debug, Args)]
#[command(after_help = ARCHIVE_HELP)]
pub struct ArchiveArgs {
    /// The callrec server, e.g. `https://callrec.example.com` or `http://10.0.0.5:8080`.
    #[arg(long, value_name = "URL")]
    pub server: String,

    /// The archive folder (created if missing). One folder archives one server for one
    /// token's user.
    #[arg(long, value_name = "DIR")]
    pub dest: PathBuf,

    /// A file holding the API token [default: the CALLREC_TOKEN environment variable].
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,

    /// Run again this long after each run started, e.g. 30m, 6h, 1d (at least 1m).
    #[arg(long, value_name = "DUR", value_parser = callrec_archive::schedule::parse_every, conflicts_with = "at")]
    pub every: Option<std::time::Duration>,

    /// Run every day at this local time, e.g. 02:30.
    #[arg(long, value_name = "HH:MM", value_parser = callrec_archive::schedule::parse_at)]
    pub at: Option<chrono::NaiveTime>,

    /// Only recordings started on or after this date (YYYY-MM-DD, in the site's time zone)
    /// or RFC 3339 time.
    #[arg(long, value_name = "DATE")]
    pub since: Option<callrec_archive::Since>,

    /// How files are named (see below).
    #[arg(long, value_name = "TEMPLATE", default_value = callrec_archive::DEFAULT_TEMPLATE)]
    pub name: callrec_archive::NameTemplate,

    /// List what would be downloaded; write nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// At most this many bytes per second, e.g. 500k, 2m.
    #[arg(long, value_name = "RATE", value_parser = callrec_archive::download::parse_rate)]
    pub limit_rate: Option<u64>,

    /// The name this client's runs are reported under [default: the host name].
    #[arg(long, value_name = "NAME")]
    pub client_name: Option<String>,

    /// Recordings downloaded at once.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=32))]
    pub parallel: u16,

    /// No progress bar (it is shown only on a terminal anyway).
    #[arg(long)]
    pub no_progress: bool,
}

const ARCHIVE_HELP: &str = "\
Name template: text, with {field} or {field:FORMAT} replaced and `/` making folders; {{ and }}
are braces. Fields: started and date (the start time in the site's time zone; FORMAT is a
strftime format, default %Y%m%d%H%M%S for started and %Y-%m-%d for date), from and to (digits
only), user, site, direction, id (required), short_id, ext. Values never make folders, and
characters other systems refuse in names become _.

Files: DIR/<name> (the audio), DIR/<name>.json (its sidecar), DIR/.callrec-archive/state.json
(where the archive is in the change feed) and DIR/.callrec-archive/runs/ (a manifest per run).
A rerun starts where the last stopped; a deleted recording on the server stays in DIR.

Exit codes: 0 success, 1 a recording could not be archived or the run stopped (a full disk,
the server unreachable), 2 usage error, 78 configuration error (no token, a refused token, a
folder that archives another server).";

/// `callrec site …`
#[derive(Debug, Subcommand)]
pub enum SiteCommand {
    /// Create a site with the built-in default settings (change them with `PUT
    /// /api/v1/site` as its admin); then `callrec user add EXT --site NAME --admin`.
    Add {
        /// The site's name: lower-case letters, digits, `-` and `_`.
        name: String,
    },
    /// List sites and their main settings.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// `callrec audit …`
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Print the log's newest entry as "SEQ HASH". Keep it away from the index (append it to
    /// a file on another machine, or to syslog, e.g. hourly from cron) and give it to
    /// `callrec verify --head` or `--head-file`: a log whose end was cut is then found.
    Head,
}

/// `callrec user …`
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user.
    Add {
        /// The user's extension, e.g. 1001.
        extension: String,
        /// Recording mode: never, always, always_pausable or on_demand [default: the site's
        /// default_mode].
        #[arg(long, value_parser = parse_mode)]
        mode: Option<RecordingMode>,
        /// An extra number (DID) of the user, in any form (repeatable).
        #[arg(long = "number", value_name = "NUMBER")]
        numbers: Vec<String>,
        /// The user's site.
        #[arg(long, default_value = "default")]
        site: String,
        /// A name to show for the user.
        #[arg(long)]
        name: Option<String>,
        /// Make the user an admin of the site (sees every recording of it through the API).
        #[arg(long)]
        admin: bool,
    },

    /// Change a user's recording mode.
    SetMode {
        /// The user's extension.
        extension: String,
        /// never, always, always_pausable or on_demand.
        #[arg(value_parser = parse_mode)]
        mode: RecordingMode,
        /// The user's site.
        #[arg(long, default_value = "default")]
        site: String,
    },

    /// Make a user an admin of their site, or a plain user again (a site's last admin stays
    /// admin).
    SetRole {
        /// The user's extension.
        extension: String,
        /// admin or user.
        #[arg(value_parser = parse_role)]
        role: Role,
        /// The user's site.
        #[arg(long, default_value = "default")]
        site: String,
    },

    /// Replace a user's extra numbers (DIDs); none given removes them all.
    SetNumbers {
        /// The user's extension.
        extension: String,
        /// The numbers, in any form (0…, 44…, +44…).
        numbers: Vec<String>,
        /// The user's site.
        #[arg(long, default_value = "default")]
        site: String,
    },

    /// Remove a user who has no recordings (their numbers and tokens go too). A user with
    /// recordings is kept: set their mode to never and revoke their tokens instead.
    Remove {
        /// The user's extension.
        extension: String,
        /// The user's site.
        #[arg(long, default_value = "default")]
        site: String,
    },

    /// Set a user's portal password (SPEC §5.1), revoking their portal sessions. The
    /// password is read from the terminal (asked twice), or as one line from standard input
    /// when that is not a terminal (`printf '%s\n' "$PW" | callrec user passwd 1001`); never
    /// from an argument, which other users can see in the process list. At least 12
    /// characters.
    Passwd {
        /// The user's extension.
        extension: String,
        /// The user's site.
        #[arg(long, default_value = "default")]
        site: String,
    },

    /// List users.
    List {
        /// Only this site's users.
        #[arg(long)]
        site: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// `callrec token …`
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token for a user and print it (this is the only time it is shown).
    Create {
        /// The user's extension.
        extension: String,
        /// The user's site.
        #[arg(long, default_value = "default")]
        site: String,
        /// A note saying what the token is for.
        #[arg(long, default_value = "")]
        label: String,
        /// The token stops working this many days from now (default: never).
        #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(1..=3650))]
        expires_days: Option<u32>,
    },

    /// List tokens (never their secrets).
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },

    /// Revoke a token; requests using it fail from then on.
    Revoke {
        /// The token's id, as `token list` shows it.
        id: i64,
    },
}

/// `callrec config …`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration and print the effective settings (secrets redacted).
    Check,
    /// Print the example config file: every key, its default and what it does.
    Example,
}

fn parse_mode(text: &str) -> Result<RecordingMode, String> {
    text.parse()
        .map_err(|e: callrec_model::UnknownName| e.to_string())
}

fn parse_role(text: &str) -> Result<Role, String> {
    text.parse()
        .map_err(|e: callrec_model::UnknownName| e.to_string())
}

fn parse_setting(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_owned(), value.to_owned()))
        }
        _ => Err(format!(
            "`{text}` is not SECTION.KEY=VALUE (e.g. esl.port=8022)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn settings_split_at_the_first_equals_sign() {
        assert_eq!(
            parse_setting("esl.password=a=b"),
            Ok(("esl.password".to_owned(), "a=b".to_owned()))
        );
        assert!(parse_setting("esl.port").is_err());
        assert!(parse_setting("=1").is_err());
    }

    #[test]
    fn global_options_are_accepted_after_the_command() {
        let cli = Cli::try_parse_from([
            "callrec",
            "user",
            "list",
            "--json",
            "--config",
            "x.toml",
            "--set",
            "log.level=debug",
        ])
        .unwrap();
        assert_eq!(cli.global.config, Some(PathBuf::from("x.toml")));
        assert_eq!(
            cli.global.settings,
            [("log.level".to_owned(), "debug".to_owned())]
        );
    }

    #[test]
    fn an_unknown_mode_is_a_usage_error_naming_the_allowed_ones() {
        let err = Cli::try_parse_from(["callrec", "user", "add", "1001", "--mode", "sometimes"])
            .unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(
            err.to_string()
                .contains("expected one of: never, always, always_pausable, on_demand"),
            "{err}"
        );
    }
}

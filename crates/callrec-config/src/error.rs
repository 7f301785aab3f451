//! What went wrong with a configuration, and where each setting came from.
//!
//! Every problem names the key (`section.key`), the place the value came from (file line and
//! column, environment variable, command-line flag) and the reason, in one line, so an
//! operator can fix all of them in one pass.

use std::fmt;
use std::path::PathBuf;

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Nobody set it; the built-in default applies.
    Default,
    /// The config file, at this position of the value.
    File {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column (in characters).
        column: usize,
    },
    /// An environment variable `CALLREC_<SECTION>_<KEY>`.
    Env {
        /// The variable's name.
        var: String,
    },
    /// A command-line flag (`--set section.key=…`, `--data-dir`).
    Cli {
        /// The flag and key, never the value (it may be a password).
        flag: String,
    },
}

impl Origin {
    /// Whether someone set the value (file, environment or command line).
    pub fn is_explicit(&self) -> bool {
        !matches!(self, Origin::Default)
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::File { path, line, column } => {
                write!(f, "{}:{line}:{column}", path.display())
            }
            Origin::Env { var } => write!(f, "environment variable {var}"),
            Origin::Cli { flag } => write!(f, "command line {flag}"),
        }
    }
}

/// One thing wrong with one setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The key path, `section.key` (or just `section` for a problem with a whole section).
    pub key: String,
    /// Where the offending value came from.
    pub origin: Origin,
    /// Why it is wrong, and what would be right.
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.origin, self.key, self.reason)
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The config file is not valid TOML.
    #[error("{}:{line}:{column}: TOML syntax error: {message}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// What the parser expected.
        message: String,
    },
    /// One or more settings are wrong; one line per problem.
    #[error("{}", problems.iter().map(Problem::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid {
        /// Every problem found, in the order of the sources (file, environment, command line).
        problems: Vec<Problem>,
    },
}

impl ConfigError {
    /// The problems with individual settings (empty for an unreadable or unparsable file).
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Invalid { problems } => problems,
            ConfigError::Unreadable { .. } | ConfigError::Syntax { .. } => &[],
        }
    }
}

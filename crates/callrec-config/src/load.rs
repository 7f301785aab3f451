//! Building a [`Config`] from its sources: defaults, then the file, then the environment, then
//! the command line, each later one overriding the earlier (CLI > env > file > defaults).
//!
//! Every source is read completely before giving up, so one run reports every problem.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::IntoDeserializer;
use toml::Value;
use toml::de::{DeTable, DeValue};

use crate::Config;
use crate::error::{ConfigError, Origin, Problem};
use crate::sections::{SetError, StorageConfig};

/// The prefix of every environment variable callrec reads.
pub const ENV_PREFIX: &str = "CALLREC_";

/// The inputs of a configuration, lowest precedence first.
#[derive(Default, Clone)]
pub struct Sources {
    file: Option<FileSource>,
    env: Vec<(OsString, OsString)>,
    overrides: Vec<Override>,
}

#[derive(Clone)]
struct FileSource {
    path: PathBuf,
    /// The text, when the caller already has it (tests, the embedded example).
    text: Option<String>,
}

/// One setting given on the command line.
#[derive(Clone)]
struct Override {
    key: String,
    value: String,
    flag: String,
}

impl Sources {
    /// No file, no environment, no overrides: the defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads this TOML file.
    pub fn file(mut self, path: impl Into<PathBuf>) -> Self {
        self.file = Some(FileSource {
            path: path.into(),
            text: None,
        });
        self
    }

    /// Uses this text as the config file; `name` is what messages call it.
    pub fn file_text(mut self, name: impl Into<PathBuf>, text: impl Into<String>) -> Self {
        self.file = Some(FileSource {
            path: name.into(),
            text: Some(text.into()),
        });
        self
    }

    /// Takes `CALLREC_*` variables from the process environment.
    pub fn process_env(self) -> Self {
        self.env(std::env::vars_os())
    }

    /// Takes `CALLREC_*` variables from these pairs (others are ignored).
    pub fn env<K, V>(mut self, vars: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<OsString>,
        V: Into<OsString>,
    {
        self.env
            .extend(vars.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// Sets `key` (`section.key`) to `value` as given on the command line by `flag`; the value
    /// is read like an environment variable's.
    pub fn set(
        mut self,
        key: impl Into<String>,
        value: impl Into<String>,
        flag: impl Into<String>,
    ) -> Self {
        self.overrides.push(Override {
            key: key.into(),
            value: value.into(),
            flag: flag.into(),
        });
        self
    }
}

/// Collects problems while the sources are applied one after the other.
struct Loader {
    config: Config,
    problems: Vec<Problem>,
}

impl Loader {
    fn problem(&mut self, key: impl Into<String>, origin: Origin, reason: impl Into<String>) {
        self.problems.push(Problem {
            key: key.into(),
            origin,
            reason: reason.into(),
        });
    }

    /// Sets one key and records where its value came from.
    fn set(&mut self, section: &str, key: &str, value: &Value, origin: Origin) {
        let Some(target) = self.config.section_mut(section) else {
            self.unknown_section(section, origin);
            return;
        };
        match target.set(key, value) {
            Ok(()) => self.record(section, key, origin),
            Err(SetError::UnknownKey) => self.unknown_key(section, key, origin),
            Err(SetError::Invalid(reason)) => {
                self.problem(format!("{section}.{key}"), origin, reason)
            }
        }
    }

    /// Sets one key from text (an environment variable or a command-line value). The text is
    /// taken as a string first, so passwords and paths need no quoting; only when the key wants
    /// something else (a number, a boolean, an array) is it read as a TOML value.
    fn set_from_text(&mut self, section: &str, key: &str, text: &str, origin: Origin) {
        let Some(target) = self.config.section_mut(section) else {
            self.unknown_section(section, origin);
            return;
        };
        let as_string = match target.set(key, &Value::String(text.to_owned())) {
            Ok(()) => return self.record(section, key, origin),
            Err(SetError::UnknownKey) => return self.unknown_key(section, key, origin),
            Err(SetError::Invalid(reason)) => reason,
        };
        let reason = match text.parse::<Value>() {
            Ok(literal) if !literal.is_str() => match target.set(key, &literal) {
                Ok(()) => return self.record(section, key, origin),
                Err(SetError::Invalid(reason)) => reason,
                Err(SetError::UnknownKey) => return self.unknown_key(section, key, origin),
            },
            _ => as_string,
        };
        self.problem(format!("{section}.{key}"), origin, reason);
    }

    fn record(&mut self, section: &str, key: &str, origin: Origin) {
        if let Some(key) = self.config.static_key(section, key) {
            self.config.origins.insert(key, origin);
        }
    }

    fn unknown_section(&mut self, section: &str, origin: Origin) {
        let reason = format!(
            "unknown section [{section}] (expected one of: {})",
            Config::SECTIONS.join(", ")
        );
        self.problem(section, origin, reason);
    }

    fn unknown_key(&mut self, section: &str, key: &str, origin: Origin) {
        let known = self
            .config
            .section(section)
            .map(|s| s.keys().join(", "))
            .unwrap_or_default();
        self.problem(
            format!("{section}.{key}"),
            origin,
            format!("unknown key (keys of [{section}]: {known})"),
        );
    }

    fn apply_file(&mut self, file: &FileSource) -> Result<(), ConfigError> {
        let text = match &file.text {
            Some(text) => text.clone(),
            None => {
                std::fs::read_to_string(&file.path).map_err(|source| ConfigError::Unreadable {
                    path: file.path.clone(),
                    source,
                })?
            }
        };
        let document = DeTable::parse(&text).map_err(|e| {
            let (line, column) = position(&text, e.span().map_or(0, |s| s.start));
            ConfigError::Syntax {
                path: file.path.clone(),
                line,
                column,
                message: e.message().trim().to_owned(),
            }
        })?;
        let at = |offset: usize| {
            let (line, column) = position(&text, offset);
            Origin::File {
                path: file.path.clone(),
                line,
                column,
            }
        };

        let first_new = self.problems.len();
        for (section_name, section_value) in document.get_ref() {
            let section: &str = section_name.get_ref();
            let DeValue::Table(table) = section_value.get_ref() else {
                let reason = if self.config.section(section).is_some() {
                    format!("must be a table, written [{section}]")
                } else {
                    format!(
                        "is not inside a section (expected one of: {})",
                        Config::SECTIONS.join(", ")
                    )
                };
                self.problem(section, at(section_name.span().start), reason);
                continue;
            };
            if self.config.section(section).is_none() {
                self.unknown_section(section, at(section_name.span().start));
                continue;
            }
            for (key_name, value) in table {
                let key: &str = key_name.get_ref();
                let origin = at(value.span().start);
                match Value::deserialize(value.clone().into_deserializer()) {
                    Ok(value) => self.set(section, key, &value, origin),
                    Err(e) => self.problem(
                        format!("{section}.{key}"),
                        origin,
                        e.message().trim().to_owned(),
                    ),
                }
            }
        }
        // Report in the order of the file, not of the parser's map.
        self.problems[first_new..].sort_by_key(|p| match p.origin {
            Origin::File { line, column, .. } => (line, column),
            _ => (0, 0),
        });
        Ok(())
    }

    fn apply_env(&mut self, env: &[(OsString, OsString)]) {
        let mut ours: Vec<(&str, &OsString)> = env
            .iter()
            .filter_map(|(name, value)| Some((name.to_str()?, value)))
            .filter(|(name, _)| name.starts_with(ENV_PREFIX))
            .collect();
        // Deterministic order, so the same environment always gives the same messages.
        ours.sort_by(|a, b| a.0.cmp(b.0));

        for (var, value) in ours {
            let Some((section, key)) = env_key(var) else {
                // Not a setting (e.g. CALLREC_CONFIG, read by the command line itself).
                continue;
            };
            let origin = Origin::Env {
                var: var.to_owned(),
            };
            match value.to_str() {
                Some(text) => self.set_from_text(section, &key, text, origin),
                None => self.problem(
                    format!("{section}.{key}"),
                    origin,
                    "the value is not valid UTF-8",
                ),
            }
        }
    }

    fn apply_overrides(&mut self, overrides: &[Override]) {
        for o in overrides {
            let origin = Origin::Cli {
                flag: format!("{} {}", o.flag, o.key),
            };
            match o.key.split_once('.') {
                Some((section, key)) => self.set_from_text(section, key, &o.value, origin),
                None => self.problem(o.key.clone(), origin, "expected section.key, e.g. esl.port"),
            }
        }
    }

    /// Defaults that depend on other keys, once every source is in.
    fn derive(&mut self) {
        if !self.config.origin("storage", "spool_dir").is_explicit() {
            self.config.storage.spool_dir =
                StorageConfig::default_spool_dir(&self.config.storage.data_dir);
        }
    }

    /// Rules between keys, which no single key can check.
    fn cross_check(&mut self) {
        let codes = [
            ("pause", self.config.feature_codes.pause.clone()),
            ("resume", self.config.feature_codes.resume.clone()),
            ("start", self.config.feature_codes.start.clone()),
        ];
        for (i, (key, code)) in codes.iter().enumerate() {
            if let Some((earlier, _)) = codes[..i].iter().find(|(_, c)| c == code) {
                let origin = self.config.origin("feature_codes", key).clone();
                self.problem(
                    format!("feature_codes.{key}"),
                    origin,
                    format!("`{code}` is also the {earlier} code; each code must differ"),
                );
            }
        }

        let api = self.config.api.listen;
        if api.port() != 0 && api == self.config.feature_codes.listen {
            let origin = self.config.origin("api", "listen").clone();
            self.problem(
                "api.listen",
                origin,
                format!("{api} is also feature_codes.listen; they must differ"),
            );
        }

        let (cert, key) = (&self.config.api.tls_cert, &self.config.api.tls_key);
        if cert.is_empty() != key.is_empty() {
            let (set, unset) = if cert.is_empty() {
                ("tls_key", "tls_cert")
            } else {
                ("tls_cert", "tls_key")
            };
            let origin = self.config.origin("api", set).clone();
            self.problem(
                format!("api.{unset}"),
                origin,
                format!(
                    "must be set when api.{set} is (HTTPS needs both the certificate and its \
                     private key; leave both empty for plain HTTP)"
                ),
            );
        }

        if !self.config.webhooks.urls.is_empty() && self.config.webhooks.secret.is_empty() {
            let origin = self.config.origin("webhooks", "urls").clone();
            self.problem(
                "webhooks.secret",
                origin,
                "must be set when webhooks.urls is not empty (every event is signed with it)",
            );
        }
    }
}

/// The section and key an environment variable names: `CALLREC_FEATURE_CODES_LISTEN` →
/// (`feature_codes`, `listen`). `None` when it names no section.
fn env_key(var: &str) -> Option<(&'static str, String)> {
    let rest = var.strip_prefix(ENV_PREFIX)?;
    Config::SECTIONS.iter().find_map(|section| {
        let key = rest.strip_prefix(&format!("{}_", section.to_ascii_uppercase()))?;
        Some((*section, key.to_ascii_lowercase()))
    })
}

/// 1-based line and column (in characters) of a byte offset.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

pub(crate) fn load(sources: &Sources) -> Result<Config, ConfigError> {
    let mut loader = Loader {
        config: Config::default(),
        problems: Vec::new(),
    };
    if let Some(file) = &sources.file {
        loader.apply_file(file)?;
    }
    loader.apply_env(&sources.env);
    loader.apply_overrides(&sources.overrides);
    loader.derive();
    loader.cross_check();
    if loader.problems.is_empty() {
        Ok(loader.config)
    } else {
        Err(ConfigError::Invalid {
            problems: loader.problems,
        })
    }
}

/// The config file name messages use when the file came from somewhere without a path.
pub(crate) fn example_name() -> &'static Path {
    Path::new("examples/callrec.toml")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names_map_to_section_and_key() {
        assert_eq!(
            env_key("CALLREC_FEATURE_CODES_LISTEN"),
            Some(("feature_codes", "listen".to_owned()))
        );
        assert_eq!(
            env_key("CALLREC_STORAGE_DATA_DIR"),
            Some(("storage", "data_dir".to_owned()))
        );
        assert_eq!(env_key("CALLREC_CONFIG"), None);
        assert_eq!(env_key("OTHER_ESL_PORT"), None);
    }

    #[test]
    fn positions_are_one_based_lines_and_columns() {
        let text = "a = 1\n[esl]\nport = 0\n";
        assert_eq!(position(text, 0), (1, 1));
        assert_eq!(position(text, text.find("0\n").unwrap_or(0)), (3, 8));
    }
}

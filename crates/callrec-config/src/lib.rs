//! callrec's configuration.
//!
//! Owns the TOML file format of SPEC §7: every key defaulted, `CALLREC_<SECTION>_<KEY>`
//! environment overrides, command-line overrides, and rejection of an invalid setting with
//! its key, where it came from and why. It reads nothing but the file and the environment it
//! is given; it does not create directories, open sockets or touch the index. Applying the
//! `[site]` keys to the `default` site is the binary's job (through the store), using
//! [`Config::explicit_keys`] and [`Config::origin`].
//!
//! Precedence, highest first: command line (`--set section.key=value`) > environment
//! (`CALLREC_<SECTION>_<KEY>`) > file > defaults. An environment variable that starts with a
//! section's prefix but names none of its keys (`CALLREC_ESL_PASWORD`) is a problem like an
//! unknown key in the file; other `CALLREC_*` variables (e.g. `CALLREC_CONFIG`) are not ours
//! and are left alone. Environment and command-line values are taken as strings first, so
//! passwords need no quoting; numbers, booleans and arrays are read as TOML values.
//!
//! ```
//! use callrec_config::{Config, Sources};
//!
//! let config = Config::load(
//!     &Sources::new()
//!         .file_text("callrec.toml", "[esl]\nport = 8022\n")
//!         .env([("CALLREC_SITE_RETENTION_DAYS", "365")]),
//! )?;
//! assert_eq!(config.esl.port, 8022);
//! assert_eq!(config.site.retention_days, 365);
//! assert_eq!(config.explicit_keys("site"), ["retention_days"]);
//! # Ok::<(), callrec_config::ConfigError>(())
//! ```
//!
//! Modules: `value` (the types a key can hold, including [`Secret`]), `sections` (every
//! section and key with its default and check), `load` (applying the sources in order),
//! `error` (problems and origins).

#![deny(missing_docs)]

mod error;
mod load;
mod sections;
pub mod value;

use std::collections::BTreeMap;
use std::fmt::Write as _;

pub use error::{ConfigError, Origin, Problem};
pub use load::{ENV_PREFIX, Sources};
pub use sections::{
    ApiConfig, EslConfig, FeatureCodesConfig, LogConfig, MatchConfig, PromptsConfig, QuotaConfig,
    SiteConfig, StorageConfig, WebhooksConfig,
};
pub use value::{AudioFormat, ByteSize, LogFilter, LogFormat, Secret};

use sections::Section;

/// The example config file shipped with callrec: every key, with its default and what it does.
pub const EXAMPLE_TOML: &str = include_str!("../../../examples/callrec.toml");

/// A complete, checked configuration.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// `[esl]`
    pub esl: EslConfig,
    /// `[feature_codes]`
    pub feature_codes: FeatureCodesConfig,
    /// `[api]`
    pub api: ApiConfig,
    /// `[storage]`
    pub storage: StorageConfig,
    /// `[site]`
    pub site: SiteConfig,
    /// `[quota]`
    pub quota: QuotaConfig,
    /// `[match]` (`match` is a Rust keyword)
    pub matching: MatchConfig,
    /// `[prompts]`
    pub prompts: PromptsConfig,
    /// `[webhooks]`
    pub webhooks: WebhooksConfig,
    /// `[log]`
    pub log: LogConfig,
    /// Where each key that is not a default came from.
    origins: BTreeMap<(&'static str, &'static str), Origin>,
}

/// Two configurations are equal when every setting is; where the settings came from does not
/// matter.
impl PartialEq for Config {
    fn eq(&self, other: &Self) -> bool {
        self.esl == other.esl
            && self.feature_codes == other.feature_codes
            && self.api == other.api
            && self.storage == other.storage
            && self.site == other.site
            && self.quota == other.quota
            && self.matching == other.matching
            && self.prompts == other.prompts
            && self.webhooks == other.webhooks
            && self.log == other.log
    }
}

impl Config {
    /// Every section, in the order of the example file.
    pub const SECTIONS: &'static [&'static str] = &[
        EslConfig::NAME,
        FeatureCodesConfig::NAME,
        ApiConfig::NAME,
        StorageConfig::NAME,
        SiteConfig::NAME,
        QuotaConfig::NAME,
        MatchConfig::NAME,
        PromptsConfig::NAME,
        WebhooksConfig::NAME,
        LogConfig::NAME,
    ];

    /// Builds the configuration from its sources (see [`Sources`]); every problem in every
    /// source is reported at once.
    pub fn load(sources: &Sources) -> Result<Config, ConfigError> {
        load::load(sources)
    }

    /// The embedded example file, parsed. It holds the defaults, so this equals
    /// `Config::default()` (a unit test keeps it so).
    pub fn example() -> Result<Config, ConfigError> {
        Config::load(&Sources::new().file_text(load::example_name(), EXAMPLE_TOML))
    }

    fn sections(&self) -> [&dyn Section; 10] {
        [
            &self.esl,
            &self.feature_codes,
            &self.api,
            &self.storage,
            &self.site,
            &self.quota,
            &self.matching,
            &self.prompts,
            &self.webhooks,
            &self.log,
        ]
    }

    fn section(&self, name: &str) -> Option<&dyn Section> {
        self.sections().into_iter().find(|s| s.name() == name)
    }

    fn section_mut(&mut self, name: &str) -> Option<&mut dyn Section> {
        let section: &mut dyn Section = match name {
            EslConfig::NAME => &mut self.esl,
            FeatureCodesConfig::NAME => &mut self.feature_codes,
            ApiConfig::NAME => &mut self.api,
            StorageConfig::NAME => &mut self.storage,
            SiteConfig::NAME => &mut self.site,
            QuotaConfig::NAME => &mut self.quota,
            MatchConfig::NAME => &mut self.matching,
            PromptsConfig::NAME => &mut self.prompts,
            WebhooksConfig::NAME => &mut self.webhooks,
            LogConfig::NAME => &mut self.log,
            _ => return None,
        };
        Some(section)
    }

    /// The `'static` spelling of a known key, for the origins map.
    fn static_key(&self, section: &str, key: &str) -> Option<(&'static str, &'static str)> {
        let section = self.section(section)?;
        let key = section.keys().iter().find(|k| **k == key)?;
        Some((section.name(), key))
    }

    /// Where a key's value came from ([`Origin::Default`] for unknown keys too).
    pub fn origin(&self, section: &str, key: &str) -> &Origin {
        self.origins
            .iter()
            .find(|((s, k), _)| *s == section && *k == key)
            .map_or(&Origin::Default, |(_, origin)| origin)
    }

    /// The keys of a section that someone set (file, environment or command line), in the
    /// section's order. For `site` (and `quota`) these are the settings the config imposes on
    /// the `default` site at start; the others stay as the API last set them.
    pub fn explicit_keys(&self, section: &str) -> Vec<&'static str> {
        self.section(section)
            .map(|s| {
                s.keys()
                    .iter()
                    .copied()
                    .filter(|key| self.origin(section, key).is_explicit())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The effective settings as TOML, secrets redacted, each non-default value followed by a
    /// comment saying where it came from. Valid TOML: it can be saved and used as a file.
    pub fn effective_toml(&self) -> String {
        let mut out = String::from(
            "# callrec effective configuration (secrets redacted).\n\
             # Precedence: command line > environment (CALLREC_<SECTION>_<KEY>) > file > defaults.\n",
        );
        for section in self.sections() {
            let _ = write!(out, "\n[{}]\n", section.name());
            // The default site's settings live in the index: the config imposes only the keys
            // it sets, at start; the others are whatever the API last set.
            let in_index = matches!(section.name(), "site" | "quota");
            if in_index {
                let _ = writeln!(
                    out,
                    "# Applied to the default site at start only where set here; a key not set \
                     keeps the index's value\n# (PUT /api/v1/site), which may differ from the \
                     default shown."
                );
            }
            for (key, value) in section.entries() {
                let origin = self.origin(section.name(), key);
                let _ = match origin {
                    Origin::Default if (section.name(), key) == ("storage", "spool_dir") => {
                        writeln!(out, "{key} = {value}  # default: <data_dir>/spool")
                    }
                    Origin::Default if in_index => {
                        writeln!(
                            out,
                            "{key} = {value}  # not set: the index's value is in force"
                        )
                    }
                    Origin::Default => writeln!(out, "{key} = {value}"),
                    _ => writeln!(out, "{key} = {value}  # {origin}"),
                };
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;

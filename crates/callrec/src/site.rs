//! The configuration's `[site]` and `[quota]` keys as a change to the `default` site.
//!
//! The config crate reads the keys; the store owns sites. This is where one meets the other,
//! for every command that applies the configuration (`serve`, `migrate`, `user add`, `sweep`).

use callrec_config::Config;
use callrec_store::SiteUpdate;

/// The change the configuration imposes on the `default` site: every `[site]` and `[quota]`
/// key someone set (file, environment, command line), and nothing else, so settings made
/// through the API survive a restart unless the config names them. Apply it with
/// `Store::update_site("default", …)` at start (it writes nothing when the site already
/// agrees).
pub fn site_update(config: &Config) -> SiteUpdate {
    let site = &config.site;
    let set = |section: &str, key: &str| config.origin(section, key).is_explicit();
    SiteUpdate {
        enabled: set("site", "enabled").then_some(site.enabled),
        default_mode: set("site", "default_mode").then_some(site.default_mode),
        retention_days: set("site", "retention_days").then_some(site.retention_days),
        legal_hold: set("site", "legal_hold").then_some(site.legal_hold),
        pause_behavior: set("site", "pause_behavior").then_some(site.pause_behavior),
        min_seconds: set("site", "min_seconds").then_some(site.min_seconds),
        max_pause_seconds: set("site", "max_pause_seconds").then_some(site.max_pause_seconds),
        timezone: set("site", "timezone").then_some(site.timezone),
        country_code: set("site", "country_code").then_some(site.country_code),
        national_prefix: set("site", "national_prefix").then(|| site.national_prefix.clone()),
        quota_bytes: set("quota", "per_user_bytes").then_some(config.quota.per_user_bytes.bytes()),
        quota_policy: set("quota", "policy").then_some(config.quota.policy),
    }
}

#[cfg(test)]
mod tests {
    use callrec_config::{Config, ConfigError, Sources};
    use callrec_model::{QuotaPolicy, RecordingMode};
    use callrec_store::SiteUpdate;

    use super::site_update;

    fn from_file(text: &str) -> Result<Config, ConfigError> {
        Config::load(&Sources::new().file_text("callrec.toml", text))
    }

    #[test]
    fn the_site_update_carries_only_the_site_and_quota_keys_someone_set() {
        assert!(site_update(&Config::default()).is_empty());

        let config = Config::load(
            &Sources::new()
                .file_text(
                    "callrec.toml",
                    "[site]\nretention_days = 90\ntimezone = \"Europe/Paris\"\n[quota]\npolicy = \"evict_oldest\"\n",
                )
                .env([("CALLREC_SITE_DEFAULT_MODE", "never")]),
        )
        .unwrap();
        let update = site_update(&config);
        assert_eq!(
            update,
            SiteUpdate {
                retention_days: Some(90),
                timezone: Some(chrono_tz::Tz::Europe__Paris),
                default_mode: Some(RecordingMode::Never),
                quota_policy: Some(QuotaPolicy::EvictOldest),
                ..Default::default()
            }
        );
        // Every key the config crate accepts is one the store accepts.
        update.validate().unwrap();
    }

    /// The config's ranges must not accept what the store would refuse at start.
    #[test]
    fn the_extreme_values_the_config_accepts_are_accepted_by_the_store() {
        let config = from_file(
            "[site]\nretention_days = 36525\nmin_seconds = 3600\ncountry_code = 998\nnational_prefix = \"\"\n\
             [quota]\nper_user_bytes = 1\n",
        )
        .unwrap();
        site_update(&config).validate().unwrap();
        let config =
            from_file("[site]\nretention_days = 1\nmin_seconds = 0\ncountry_code = 1\n").unwrap();
        site_update(&config).validate().unwrap();
    }
}

//! How an operator's file, environment and flags become a configuration, and how each
//! mistake is reported.

use std::path::{Path, PathBuf};

use callrec_model::{EventFormat, PauseBehavior, Prompt, QuotaPolicy, RecordingMode};

use super::*;

fn from_file(text: &str) -> Result<Config, ConfigError> {
    Config::load(&Sources::new().file_text("callrec.toml", text))
}

/// The one problem a load reported (fails the test if there is not exactly one).
fn only_problem(result: Result<Config, ConfigError>) -> Problem {
    match result {
        Err(ConfigError::Invalid { problems }) if problems.len() == 1 => problems[0].clone(),
        other => panic!("expected exactly one problem, got {other:?}"),
    }
}

fn file_at(line: usize, column: usize) -> Origin {
    Origin::File {
        path: PathBuf::from("callrec.toml"),
        line,
        column,
    }
}

#[test]
fn with_nothing_set_the_defaults_of_the_spec_apply() {
    let config = Config::load(&Sources::new()).unwrap();
    assert_eq!(config, Config::default());

    assert_eq!(config.esl.host, "127.0.0.1");
    assert_eq!(config.esl.port, 8021);
    assert_eq!(config.esl.password.expose(), "ClueCon");
    assert_eq!(config.esl.reconnect_max_secs, 10);
    assert_eq!(config.esl.event_format, EventFormat::Json);
    assert_eq!(config.feature_codes.listen.to_string(), "127.0.0.1:8084");
    assert_eq!(
        (
            config.feature_codes.pause.as_str(),
            config.feature_codes.resume.as_str(),
            config.feature_codes.start.as_str()
        ),
        ("*48", "*49", "*44")
    );
    assert_eq!(config.api.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(config.storage.data_dir, Path::new("./callrec-data"));
    assert_eq!(config.storage.spool_dir, Path::new("./callrec-data/spool"));
    assert_eq!(
        config.storage.index_path(),
        Path::new("./callrec-data/index.db")
    );
    assert_eq!(config.storage.format, AudioFormat::Wav);
    assert_eq!(config.storage.spool_scan_secs, 60);
    assert_eq!(config.storage.sweep_interval_secs, 3600);
    assert!(config.site.enabled);
    assert_eq!(config.site.default_mode, RecordingMode::AlwaysPausable);
    assert_eq!(config.site.retention_days, 180);
    assert!(!config.site.legal_hold);
    assert_eq!(config.site.pause_behavior, PauseBehavior::Silence);
    assert_eq!(config.site.min_seconds, 3);
    assert_eq!(config.site.timezone, chrono_tz::Tz::UTC);
    assert_eq!(config.site.country_code, 44);
    assert_eq!(config.site.national_prefix, "0");
    assert_eq!(config.quota.per_user_bytes, ByteSize(1 << 30));
    assert_eq!(config.quota.policy, QuotaPolicy::Alert);
    assert_eq!(
        config.matching.headers,
        [
            "variable_callrec_user",
            "variable_user_name",
            "variable_dialed_user",
            "Caller-Caller-ID-Number",
            "Caller-Destination-Number"
        ]
    );
    assert_eq!(
        config.prompts.path(Prompt::NotAllowed),
        Path::new("prompts/not_allowed.wav")
    );
    assert!(config.webhooks.urls.is_empty());
    assert_eq!(config.log.level.as_str(), "info");
    assert_eq!(config.log.format, LogFormat::Human);
    assert!(
        Config::SECTIONS
            .iter()
            .all(|s| config.explicit_keys(s).is_empty())
    );
}

#[test]
fn the_example_file_holds_exactly_the_defaults() {
    assert_eq!(Config::example().unwrap(), Config::default());
}

/// The example's commented-out keys (`# key = value`) are the defaults too, so uncommenting
/// one never changes behaviour by surprise.
#[test]
fn the_example_files_commented_out_keys_are_the_defaults_too() {
    let uncommented: String = EXAMPLE_TOML
        .lines()
        .map(|line| match commented_key(line) {
            Some(_) => line.trim_start_matches("# "),
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let config = Config::load(&Sources::new().file_text("uncommented.toml", uncommented)).unwrap();
    assert_eq!(config, Config::default());
    assert_eq!(
        config.explicit_keys("site").len(),
        SiteConfig::KEYS.len(),
        "every [site] key is in the example"
    );
    assert!(config.origin("storage", "spool_dir").is_explicit());
}

/// `key = …` or `# key = …` → the key.
fn commented_key(line: &str) -> Option<&str> {
    let key = line.strip_prefix("# ")?.split_once(" = ")?.0;
    key.chars()
        .all(|c| c.is_ascii_lowercase() || c == '_')
        .then_some(key)
}

fn active_key(line: &str) -> Option<&str> {
    let key = line.split_once(" = ")?.0;
    (!key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase() || c == '_')).then_some(key)
}

#[test]
fn the_example_file_documents_every_key_with_a_comment() {
    let lines: Vec<&str> = EXAMPLE_TOML.lines().collect();
    let config = Config::default();
    for section in config.sections() {
        let header = format!("[{}]", section.name());
        let start = lines
            .iter()
            .position(|l| *l == header)
            .unwrap_or_else(|| panic!("{header} missing from the example"));
        let end = lines[start + 1..]
            .iter()
            .position(|l| l.starts_with('['))
            .map_or(lines.len(), |i| start + 1 + i);
        for key in section.keys() {
            let at = lines[start..end]
                .iter()
                .position(|l| active_key(l) == Some(key) || commented_key(l) == Some(key))
                .unwrap_or_else(|| panic!("{}.{key} missing from the example", section.name()));
            let above = lines[start + at - 1];
            assert!(
                above.starts_with('#') && commented_key(above).is_none(),
                "{}.{key} has no comment above it in the example",
                section.name()
            );
        }
    }
}

#[test]
fn a_file_sets_the_keys_it_names_and_leaves_the_rest() {
    let config = from_file(
        r#"
[esl]
host = "pbx.example.com"
port = 8022
event_format = "plain"

[site]
default_mode = "on_demand"
retention_days = 2555
timezone = "Europe/London"

[quota]
per_user_bytes = "2 GiB"
policy = "evict_oldest"
"#,
    )
    .unwrap();
    assert_eq!(config.esl.host, "pbx.example.com");
    assert_eq!(config.esl.port, 8022);
    assert_eq!(config.esl.event_format, EventFormat::Plain);
    assert_eq!(config.esl.password.expose(), "ClueCon");
    assert_eq!(config.site.default_mode, RecordingMode::OnDemand);
    assert_eq!(config.site.retention_days, 2555);
    assert_eq!(config.site.timezone, chrono_tz::Tz::Europe__London);
    assert_eq!(config.quota.per_user_bytes, ByteSize(2 << 30));
    assert_eq!(config.quota.policy, QuotaPolicy::EvictOldest);
    assert_eq!(
        config.explicit_keys("site"),
        ["default_mode", "retention_days", "timezone"]
    );
    assert_eq!(config.explicit_keys("quota"), ["per_user_bytes", "policy"]);
    assert_eq!(config.origin("esl", "port"), &file_at(4, 8));
    assert_eq!(config.origin("esl", "password"), &Origin::Default);
}

#[test]
fn environment_variables_override_the_file_with_typed_values() {
    let config = Config::load(
        &Sources::new()
            .file_text(
                "callrec.toml",
                "[esl]\npassword = \"from-file\"\nport = 8022\n[site]\nretention_days = 30\n",
            )
            .env([
                ("CALLREC_ESL_PASSWORD", "s3cr3t with spaces"),
                ("CALLREC_ESL_PORT", "8023"),
                ("CALLREC_SITE_RETENTION_DAYS", "365"),
                ("CALLREC_SITE_LEGAL_HOLD", "true"),
                ("CALLREC_STORAGE_DATA_DIR", "/var/lib/callrec"),
                ("CALLREC_FEATURE_CODES_PAUSE", "*58"),
                (
                    "CALLREC_WEBHOOKS_URLS",
                    r#"["https://hooks.example.com/callrec"]"#,
                ),
                ("CALLREC_WEBHOOKS_SECRET", "12345"),
                ("CALLREC_QUOTA_PER_USER_BYTES", "500 MB"),
                ("CALLREC_CONFIG", "/not/a/setting.toml"),
                ("PATH", "/usr/bin"),
            ]),
    )
    .unwrap();
    assert_eq!(config.esl.password.expose(), "s3cr3t with spaces");
    assert_eq!(config.esl.port, 8023);
    assert_eq!(config.site.retention_days, 365);
    assert!(config.site.legal_hold);
    assert_eq!(config.storage.data_dir, Path::new("/var/lib/callrec"));
    assert_eq!(config.feature_codes.pause, "*58");
    assert_eq!(config.webhooks.urls, ["https://hooks.example.com/callrec"]);
    // A numeric-looking secret stays a string.
    assert_eq!(config.webhooks.secret.expose(), "12345");
    assert_eq!(config.quota.per_user_bytes, ByteSize(500_000_000));
    assert_eq!(
        config.origin("esl", "port"),
        &Origin::Env {
            var: "CALLREC_ESL_PORT".into()
        }
    );
    assert_eq!(
        config.explicit_keys("site"),
        ["retention_days", "legal_hold"]
    );
}

#[test]
fn the_command_line_overrides_the_environment_which_overrides_the_file() {
    let sources = Sources::new()
        .file_text(
            "callrec.toml",
            "[api]\nlisten = \"127.0.0.1:9001\"\n[log]\nlevel = \"warn\"\n",
        )
        .env([
            ("CALLREC_API_LISTEN", "127.0.0.1:9002"),
            ("CALLREC_LOG_LEVEL", "debug"),
        ])
        .set("api.listen", "0.0.0.0:9003", "--set");
    let config = Config::load(&sources).unwrap();
    assert_eq!(config.api.listen.to_string(), "0.0.0.0:9003");
    assert_eq!(config.log.level.as_str(), "debug");
    assert_eq!(
        config.origin("api", "listen"),
        &Origin::Cli {
            flag: "--set api.listen".into()
        }
    );
}

#[test]
fn the_spool_follows_the_data_dir_unless_set() {
    let moved =
        Config::load(&Sources::new().env([("CALLREC_STORAGE_DATA_DIR", "/srv/rec")])).unwrap();
    assert_eq!(moved.storage.spool_dir, Path::new("/srv/rec/spool"));
    assert!(moved.explicit_keys("storage") == ["data_dir"]);

    let both =
        from_file("[storage]\ndata_dir = \"/srv/rec\"\nspool_dir = \"/var/spool/fs\"\n").unwrap();
    assert_eq!(both.storage.spool_dir, Path::new("/var/spool/fs"));
}

#[test]
fn an_unknown_key_is_named_with_its_section_and_line() {
    let problem = only_problem(from_file("[esl]\nhost = \"pbx\"\npasword = \"x\"\n"));
    assert_eq!(problem.key, "esl.pasword");
    assert_eq!(problem.origin, file_at(3, 11));
    assert_eq!(
        problem.to_string(),
        "callrec.toml:3:11: esl.pasword: unknown key (keys of [esl]: host, port, user, password, \
         reconnect_max_secs, connect_timeout_ms, command_timeout_ms, liveness_timeout_secs, \
         event_format, event_queue_size)"
    );
}

#[test]
fn an_unknown_section_or_a_key_outside_any_section_is_rejected() {
    let problem = only_problem(from_file("[recording]\nmode = \"always\"\n"));
    assert_eq!(problem.key, "recording");
    assert!(
        problem
            .reason
            .starts_with("unknown section [recording] (expected one of: esl, feature_codes,"),
        "{problem}"
    );

    let problem = only_problem(from_file("port = 8021\n"));
    assert_eq!(problem.key, "port");
    assert!(problem.reason.contains("not inside a section"), "{problem}");
}

#[test]
fn a_wrong_type_says_what_was_expected() {
    let problem = only_problem(from_file("[esl]\nport = \"8021\"\n"));
    assert_eq!(problem.key, "esl.port");
    assert_eq!(
        problem.reason,
        "expected an integer, found the string \"8021\""
    );

    let problem = only_problem(from_file("[site]\nenabled = \"yes\"\n"));
    assert_eq!(problem.key, "site.enabled");
    assert_eq!(
        problem.reason,
        "expected true or false, found the string \"yes\""
    );
}

#[test]
fn an_unknown_mode_lists_the_allowed_ones() {
    let problem = only_problem(from_file("[site]\ndefault_mode = \"sometimes\"\n"));
    assert_eq!(problem.key, "site.default_mode");
    assert_eq!(
        problem.reason,
        "unknown recording mode `sometimes` (expected one of: never, always, always_pausable, on_demand)"
    );
}

#[test]
fn bad_values_are_rejected_with_the_reason() {
    let cases = [
        (
            "[site]\ntimezone = \"Mars/Olympus\"\n",
            "site.timezone",
            "unknown time zone `Mars/Olympus`",
        ),
        (
            "[esl]\nport = 0\n",
            "esl.port",
            "must be between 1 and 65535, found 0",
        ),
        ("[esl]\nport = 70000\n", "esl.port", "70000 is out of range"),
        (
            "[api]\nlisten = \"localhost\"\n",
            "api.listen",
            "`localhost` is not a listen address",
        ),
        (
            "[feature_codes]\nlisten = \"127.0.0.1:99999\"\n",
            "feature_codes.listen",
            "is not a listen address",
        ),
        (
            "[site]\nretention_days = 0\n",
            "site.retention_days",
            "must be between 1 and 36525 days, found 0",
        ),
        (
            "[site]\nretention_days = -5\n",
            "site.retention_days",
            "-5 is out of range",
        ),
        (
            "[site]\npause_behavior = \"mute\"\n",
            "site.pause_behavior",
            "unknown pause behavior `mute`",
        ),
        (
            "[site]\nnational_prefix = \"+0\"\n",
            "site.national_prefix",
            "expected at most 4 digits",
        ),
        (
            "[site]\ncountry_code = 999\n",
            "site.country_code",
            "`999`: not a country calling code",
        ),
        (
            "[quota]\npolicy = \"delete\"\n",
            "quota.policy",
            "unknown quota policy `delete`",
        ),
        (
            "[quota]\nper_user_bytes = 0\n",
            "quota.per_user_bytes",
            "at least 1 byte",
        ),
        (
            "[quota]\nper_user_bytes = \"lots\"\n",
            "quota.per_user_bytes",
            "is not a size",
        ),
        (
            "[feature_codes]\npause = \"pause\"\n",
            "feature_codes.pause",
            "not a dialable code",
        ),
        (
            "[match]\nheaders = []\n",
            "match.headers",
            "at least one header",
        ),
        (
            "[log]\nlevel = \"loud\"\n",
            "log.level",
            "`loud` is not a log level",
        ),
        (
            "[log]\nformat = \"xml\"\n",
            "log.format",
            "unknown log format `xml`",
        ),
        (
            "[storage]\nformat = \"flac\"\n",
            "storage.format",
            "unknown audio format `flac`",
        ),
        (
            "[storage]\ndata_dir = \"\"\n",
            "storage.data_dir",
            "must not be empty",
        ),
        (
            "[esl]\npassword = \"\"\n",
            "esl.password",
            "must not be empty",
        ),
        (
            "[esl]\nhost = \"pbx example\"\n",
            "esl.host",
            "not a host name",
        ),
        (
            "[webhooks]\nurls = [\"ftp://x\"]\nsecret = \"k\"\n",
            "webhooks.urls",
            "not an http:// or https:// URL",
        ),
    ];
    for (text, key, reason) in cases {
        let problem = only_problem(from_file(text));
        assert_eq!(problem.key, key, "for {text:?}");
        assert!(
            problem.reason.contains(reason),
            "for {text:?}: {:?} does not contain {reason:?}",
            problem.reason
        );
    }
}

#[test]
fn rules_between_keys_are_checked() {
    let problem = only_problem(from_file("[feature_codes]\nresume = \"*48\"\n"));
    assert_eq!(problem.key, "feature_codes.resume");
    assert_eq!(
        problem.reason,
        "`*48` is also the pause code; each code must differ"
    );

    let problem = only_problem(from_file("[api]\nlisten = \"127.0.0.1:8084\"\n"));
    assert_eq!(problem.key, "api.listen");

    let problem = only_problem(from_file("[webhooks]\nurls = [\"https://h.example\"]\n"));
    assert_eq!(problem.key, "webhooks.secret");
}

#[test]
fn every_problem_in_every_source_is_reported_one_per_line() {
    let err = Config::load(
        &Sources::new()
            .file_text("callrec.toml", "[esl]\nport = 0\nhots = \"x\"\n")
            .env([("CALLREC_SITE_RETENTION_DAYS", "zero")])
            .set("log.level", "loud", "--set"),
    )
    .unwrap_err();
    let keys: Vec<&str> = err.problems().iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        ["esl.port", "esl.hots", "site.retention_days", "log.level"]
    );
    let text = err.to_string();
    assert_eq!(text.lines().count(), 4, "{text}");
    assert!(
        text.contains("callrec.toml:2:8: esl.port: must be between 1 and 65535, found 0"),
        "{text}"
    );
}

#[test]
fn a_bad_environment_override_names_the_variable() {
    let problem = only_problem(Config::load(
        &Sources::new().env([("CALLREC_SITE_RETENTION_DAYS", "-1")]),
    ));
    assert_eq!(problem.key, "site.retention_days");
    assert_eq!(
        problem.to_string(),
        "environment variable CALLREC_SITE_RETENTION_DAYS: site.retention_days: -1 is out of range (expected 0 to 4294967295)"
    );

    let problem = only_problem(Config::load(
        &Sources::new().env([("CALLREC_ESL_PORT", "abc")]),
    ));
    assert_eq!(
        problem.to_string(),
        "environment variable CALLREC_ESL_PORT: esl.port: expected an integer, found the string \"abc\""
    );

    // A misspelt variable for a known section is an error, not silently ignored.
    let problem = only_problem(Config::load(
        &Sources::new().env([("CALLREC_ESL_PASWORD", "x")]),
    ));
    assert_eq!(problem.key, "esl.pasword");
    assert!(
        problem
            .to_string()
            .starts_with("environment variable CALLREC_ESL_PASWORD: ")
    );
}

#[cfg(unix)]
#[test]
fn a_non_utf8_environment_value_is_rejected() {
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;

    let problem = only_problem(Config::load(&Sources::new().env([(
        OsString::from("CALLREC_ESL_HOST"),
        OsString::from_vec(vec![0xff, 0xfe]),
    )])));
    assert_eq!(problem.key, "esl.host");
    assert!(problem.reason.contains("UTF-8"));
}

#[test]
fn a_bad_command_line_override_names_the_flag() {
    let problem = only_problem(Config::load(&Sources::new().set("port", "1", "--set")));
    assert_eq!(
        problem.to_string(),
        "command line --set port: port: expected section.key, e.g. esl.port"
    );

    let problem = only_problem(Config::load(&Sources::new().set("esl.port", "0", "--set")));
    assert_eq!(
        problem.origin,
        Origin::Cli {
            flag: "--set esl.port".into()
        }
    );
}

#[test]
fn a_toml_syntax_error_gives_line_and_column() {
    let err = from_file("[esl]\nport = 8021\nhost = \"unterminated\n").unwrap_err();
    match &err {
        ConfigError::Syntax {
            path, line, column, ..
        } => {
            assert_eq!(path, Path::new("callrec.toml"));
            // The parser points somewhere in the broken string (where it gave up).
            assert_eq!(*line, 3);
            assert!((8..=21).contains(column), "column {column}");
        }
        other => panic!("expected a syntax error, got {other:?}"),
    }
    assert!(err.to_string().starts_with("callrec.toml:3:"), "{err}");
    assert!(err.to_string().contains(": TOML syntax error: "), "{err}");

    let err = from_file("[esl]\nport = 1\nport = 2\n").unwrap_err();
    assert!(matches!(err, ConfigError::Syntax { line: 3, .. }), "{err}");
}

#[test]
fn an_unreadable_file_names_the_path() {
    let err = Config::load(&Sources::new().file("/nonexistent/callrec.toml")).unwrap_err();
    assert!(matches!(err, ConfigError::Unreadable { .. }));
    assert!(
        err.to_string()
            .starts_with("cannot read config file /nonexistent/callrec.toml: "),
        "{err}"
    );
}

#[test]
fn secrets_are_redacted_in_debug_and_in_the_effective_settings() {
    let config = Config::load(&Sources::new().env([
        ("CALLREC_ESL_PASSWORD", "hunter2-esl"),
        ("CALLREC_WEBHOOKS_URLS", r#"["https://h.example"]"#),
        ("CALLREC_WEBHOOKS_SECRET", "hunter2-hook"),
    ]))
    .unwrap();
    let debug = format!("{config:?}");
    let effective = config.effective_toml();
    for shown in [&debug, &effective] {
        assert!(!shown.contains("hunter2"), "secret leaked:\n{shown}");
        assert!(shown.contains("<redacted>"));
    }
    assert!(!format!("{:?}", Config::default()).contains("ClueCon"));
    assert!(
        effective
            .contains("password = \"<redacted>\"  # environment variable CALLREC_ESL_PASSWORD")
    );
}

#[test]
fn a_wrongly_typed_secret_is_not_echoed() {
    let problem = only_problem(from_file("[esl]\npassword = 918273645\n"));
    assert_eq!(problem.key, "esl.password");
    assert!(!problem.to_string().contains("918273645"), "{problem}");
}

#[test]
fn the_effective_settings_are_valid_toml_that_reads_back_the_same() {
    let config = Config::load(
        &Sources::new()
            .file_text("callrec.toml", "[site]\ntimezone = \"America/New_York\"\n[match]\nheaders = [\"variable_callrec_user\"]\n")
            .env([("CALLREC_STORAGE_DATA_DIR", "/srv/rec"), ("CALLREC_ESL_PASSWORD", "pw")]),
    )
    .unwrap();
    let effective = config.effective_toml();
    assert!(
        effective.contains("timezone = \"America/New_York\"  # callrec.toml:2:12"),
        "{effective}"
    );
    assert!(
        effective.contains("spool_dir = \"/srv/rec/spool\"  # default: <data_dir>/spool"),
        "{effective}"
    );
    // A site key left out is not the default in force: the index's value is.
    assert!(
        effective.contains("retention_days = 180  # not set: the index's value is in force"),
        "{effective}"
    );
    assert!(
        effective.contains("policy = \"alert\"  # not set: the index's value is in force"),
        "{effective}"
    );
    assert!(
        !effective.contains("America/New_York\"  # not set"),
        "{effective}"
    );

    let mut reread = Config::load(&Sources::new().file_text("effective.toml", effective)).unwrap();
    assert_eq!(reread.esl.password.expose(), Secret::REDACTED);
    reread.esl.password = config.esl.password.clone();
    assert_eq!(reread, config);
}

#[test]
fn every_prompt_has_its_own_key_in_the_prompts_section() {
    for prompt in Prompt::ALL {
        assert!(PromptsConfig::KEYS.contains(&prompt.key()), "{prompt:?}");
    }
    let config =
        from_file("[prompts]\ndir = \"/usr/share/callrec\"\nno_call = \"/srv/custom.wav\"\n")
            .unwrap();
    assert_eq!(
        config.prompts.path(Prompt::Paused),
        Path::new("/usr/share/callrec/paused.wav")
    );
    assert_eq!(
        config.prompts.path(Prompt::NoCall),
        Path::new("/srv/custom.wav")
    );
}

#[test]
fn tls_needs_both_the_certificate_and_the_key() {
    let config = from_file(
        "[api]\ntls_cert = \"/etc/callrec/cert.pem\"\ntls_key = \"/etc/callrec/key.pem\"\n",
    )
    .unwrap();
    assert!(config.api.tls_enabled());
    assert!(!Config::default().api.tls_enabled());

    let problem = only_problem(from_file("[api]\ntls_cert = \"/etc/callrec/cert.pem\"\n"));
    assert_eq!(problem.key, "api.tls_key");
    assert_eq!(problem.origin, file_at(2, 12));
    assert!(
        problem.reason.contains("api.tls_cert"),
        "{}",
        problem.reason
    );

    let problem = only_problem(Config::load(
        &Sources::new().env([("CALLREC_API_TLS_KEY", "/etc/callrec/key.pem")]),
    ));
    assert_eq!(problem.key, "api.tls_cert");
}

#[test]
fn trusted_proxies_are_addresses_or_networks() {
    let config = from_file(
        "[api]\ntrusted_proxies = [\"127.0.0.1\", \"10.1.2.3/8\", \"::1\", \"fd00::/8\"]\n",
    )
    .unwrap();
    let shown: Vec<String> = config
        .api
        .trusted_proxies
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(shown, ["127.0.0.1/32", "10.0.0.0/8", "::1/128", "fd00::/8"]);

    let problem = only_problem(from_file("[api]\ntrusted_proxies = [\"10.0.0.0/33\"]\n"));
    assert_eq!(problem.key, "api.trusted_proxies");
    assert!(
        problem.reason.starts_with("item 1: `10.0.0.0/33` is not"),
        "{}",
        problem.reason
    );

    let config =
        Config::load(&Sources::new().env([("CALLREC_API_TRUSTED_PROXIES", "[\"192.0.2.1\"]")]))
            .unwrap();
    assert_eq!(config.api.trusted_proxies.len(), 1);
}

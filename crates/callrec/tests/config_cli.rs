//! An operator checks and fixes a configuration with `callrec config check`.

mod support;

use support::{Callrec, Install};

#[test]
fn config_check_prints_the_effective_settings_with_secrets_redacted() {
    let install = Install::new();
    let file = install.config_file(
        "[esl]\nhost = \"pbx.example.com\"\npassword = \"hunter2-file\"\n\n[site]\nretention_days = 365\n",
    );
    // The file named by CALLREC_CONFIG, as a service unit would set it.
    let run = Callrec::new(["config", "check"])
        .env("CALLREC_CONFIG", &file)
        .env(
            "CALLREC_WEBHOOKS_URLS",
            r#"["https://hooks.example.com/x"]"#,
        )
        .env("CALLREC_WEBHOOKS_SECRET", "hunter2-env")
        .run()
        .success();
    assert!(
        !run.stdout.contains("hunter2"),
        "a secret leaked:\n{}",
        run.stdout
    );
    assert!(
        !run.stderr.contains("hunter2"),
        "a secret leaked:\n{}",
        run.stderr
    );
    assert!(
        run.stdout.contains("password = \"<redacted>\""),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("secret = \"<redacted>\"  # environment variable CALLREC_WEBHOOKS_SECRET"),
        "{}",
        run.stdout
    );
    let where_set = format!("host = \"pbx.example.com\"  # {}:2:8", file.display());
    assert!(run.stdout.contains(&where_set), "{}", run.stdout);
    assert!(
        run.stdout.contains("retention_days = 365"),
        "{}",
        run.stdout
    );
    assert!(run.stderr.contains("configuration OK"), "{}", run.stderr);
}

#[test]
fn without_a_config_file_the_defaults_of_the_spec_apply() {
    let run = Callrec::new(["config", "check"]).run().success();
    for line in [
        "host = \"127.0.0.1\"",
        "port = 8021",
        "listen = \"127.0.0.1:8084\"",
        "listen = \"127.0.0.1:8080\"",
        "data_dir = \"./callrec-data\"",
        "spool_dir = \"./callrec-data/spool\"",
        "retention_days = 180",
        "default_mode = \"always_pausable\"",
    ] {
        assert!(
            run.stdout.contains(line),
            "missing {line:?} in\n{}",
            run.stdout
        );
    }
    assert!(!run.stdout.contains("ClueCon"));
}

#[test]
fn the_command_line_beats_the_environment_which_beats_the_file() {
    let install = Install::new();
    let file = install.config_file("[esl]\nport = 8022\nhost = \"file-host\"\n");
    let run = install
        .callrec([
            "--config".as_ref(),
            file.as_os_str(),
            "config".as_ref(),
            "check".as_ref(),
        ])
        .env("CALLREC_ESL_PORT", "8023")
        .env("CALLREC_ESL_HOST", "env-host")
        .run()
        .success();
    assert!(
        run.stdout
            .contains("port = 8023  # environment variable CALLREC_ESL_PORT")
    );
    assert!(run.stdout.contains("host = \"env-host\""));

    let run = install
        .callrec([
            "--config".as_ref(),
            file.as_os_str(),
            "config".as_ref(),
            "check".as_ref(),
            "--set".as_ref(),
            "esl.port=8024".as_ref(),
        ])
        .env("CALLREC_ESL_PORT", "8023")
        .run()
        .success();
    assert!(
        run.stdout
            .contains("port = 8024  # command line --set esl.port"),
        "{}",
        run.stdout
    );
    let data_dir = format!("data_dir = \"{}\"", install.data_dir().display());
    assert!(run.stdout.contains(&data_dir), "{}", run.stdout);
}

#[test]
fn an_unknown_key_exits_78_naming_the_key_and_line() {
    let install = Install::new();
    let file = install.config_file("[esl]\nhost = \"pbx\"\npasword = \"x\"\n");
    let run = Callrec::new([
        "config".as_ref(),
        "check".as_ref(),
        "--config".as_ref(),
        file.as_os_str(),
    ])
    .run()
    .expect_code(78);
    let expected = format!("{}:3:11: esl.pasword: unknown key", file.display());
    assert!(run.stderr.contains(&expected), "{}", run.stderr);
    assert!(
        run.stdout.is_empty(),
        "nothing is printed as effective: {}",
        run.stdout
    );
}

#[test]
fn a_bad_value_exits_78_with_the_reason_for_every_problem() {
    let install = Install::new();
    let file = install.config_file(
        "[site]\ndefault_mode = \"sometimes\"\ntimezone = \"Mars/Olympus\"\n[esl]\nport = 0\n",
    );
    let run = Callrec::new([
        "config".as_ref(),
        "check".as_ref(),
        "--config".as_ref(),
        file.as_os_str(),
    ])
    .run()
    .expect_code(78);
    assert!(
        run.stderr.contains("error: invalid configuration:"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(
            "site.default_mode: unknown recording mode `sometimes` (expected one of: never, always, always_pausable, on_demand)"
        ),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("site.timezone: unknown time zone `Mars/Olympus`"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("esl.port: must be between 1 and 65535, found 0"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_bad_environment_variable_exits_78_naming_it() {
    let run = Callrec::new(["config", "check"])
        .env("CALLREC_SITE_RETENTION_DAYS", "0")
        .run()
        .expect_code(78);
    assert!(
        run.stderr.contains(
            "environment variable CALLREC_SITE_RETENTION_DAYS: site.retention_days: must be between 1 and"
        ),
        "{}",
        run.stderr
    );
}

#[test]
fn a_missing_or_broken_file_exits_78_naming_the_path() {
    let install = Install::new();
    let missing = install.root().join("nope.toml");
    let run = Callrec::new([
        "config".as_ref(),
        "check".as_ref(),
        "--config".as_ref(),
        missing.as_os_str(),
    ])
    .run()
    .expect_code(78);
    let expected = format!("error: cannot read config file {}", missing.display());
    assert!(run.stderr.contains(&expected), "{}", run.stderr);

    let broken = install.config_file("[esl\nport = 8021\n");
    let run = Callrec::new([
        "config".as_ref(),
        "check".as_ref(),
        "--config".as_ref(),
        broken.as_os_str(),
    ])
    .run()
    .expect_code(78);
    let expected = format!("error: {}:1:", broken.display());
    assert!(run.stderr.contains(&expected), "{}", run.stderr);
    assert!(run.stderr.contains("TOML syntax error"), "{}", run.stderr);
}

#[test]
fn the_example_config_is_printed_and_is_valid() {
    let install = Install::new();
    let example = Callrec::new(["config", "example"]).run().success();
    assert!(example.stdout.contains("[esl]"));
    let file = install.config_file(&example.stdout);
    let check = Callrec::new([
        "config".as_ref(),
        "check".as_ref(),
        "--config".as_ref(),
        file.as_os_str(),
    ])
    .run()
    .success();
    // The example holds the defaults: the same effective settings as no file at all, apart
    // from the origin comments.
    let defaults = Callrec::new(["config", "check"]).run().success();
    let strip = |text: &str| -> Vec<String> {
        text.lines()
            .map(|l| l.split("  # ").next().unwrap_or(l).to_owned())
            .collect()
    };
    assert_eq!(strip(&check.stdout), strip(&defaults.stdout));
}

#[test]
fn help_states_the_precedence_and_the_exit_codes() {
    let run = Callrec::new(["--help"]).run().success();
    assert!(
        run.stdout
            .contains("Precedence: command line > environment > file > defaults."),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("78 configuration error"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_usage_error_exits_2() {
    Callrec::new(["no-such-command"]).run().expect_code(2);
    Callrec::new(["config", "check", "--set", "no-equals-sign"])
        .run()
        .expect_code(2);
}

#[test]
fn config_check_warns_about_prompts_that_cannot_be_played() {
    let install = Install::new();
    let run = Callrec::new(["config", "check"])
        .current_dir(install.root())
        .run()
        .success();
    assert!(
        run.stderr
            .contains("warning: prompts.paused: prompts/paused.wav is not a file"),
        "{}",
        run.stderr
    );

    // The prompts shipped in the repository are all there.
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../prompts");
    let run = Callrec::new(["config", "check"])
        .current_dir(install.root())
        .env("CALLREC_PROMPTS_DIR", &shipped)
        .run()
        .success();
    assert!(!run.stderr.contains("warning"), "{}", run.stderr);
}

#[test]
fn logs_go_to_stderr_in_the_configured_format() {
    let install = Install::new();
    let run = install
        .callrec(["migrate"])
        .env("CALLREC_LOG_FORMAT", "json")
        .env("CALLREC_SITE_RETENTION_DAYS", "30")
        .run()
        .success();
    let line = run
        .stderr
        .lines()
        .find(|l| l.contains("applied the config's site settings"))
        .unwrap_or_else(|| panic!("no log line in\n{}", run.stderr));
    let entry: serde_json::Value = serde_json::from_str(line).expect("a JSON log line");
    assert_eq!(entry["level"], "INFO");
    assert!(!run.stdout.contains("applied"), "logs stay off stdout");

    let quiet = install
        .callrec(["migrate"])
        .env("CALLREC_LOG_LEVEL", "warn")
        .env("CALLREC_SITE_RETENTION_DAYS", "31")
        .run()
        .success();
    assert!(!quiet.stderr.contains("applied"), "{}", quiet.stderr);

    // Human lines written to a pipe (a file, the journal) carry no colour escapes.
    let human = install
        .callrec(["migrate"])
        .env("CALLREC_SITE_RETENTION_DAYS", "32")
        .run()
        .success();
    assert!(human.stderr.contains("applied"), "{}", human.stderr);
    assert!(!human.stderr.contains('\u{1b}'), "{:?}", human.stderr);
}

#[test]
fn config_check_says_whether_the_api_serves_https_and_checks_the_certificate() {
    let run = Callrec::new(["config", "check"]).run().success();
    assert!(
        run.stderr
            .contains("api: TLS off: plain HTTP on 127.0.0.1:8080"),
        "{}",
        run.stderr
    );

    let install = Install::new();
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert_path, key_path) = (
        install.root().join("cert.pem"),
        install.root().join("key.pem"),
    );
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, signing_key.serialize_pem()).unwrap();
    let run = Callrec::new(["config", "check"])
        .env("CALLREC_API_TLS_CERT", &cert_path)
        .env("CALLREC_API_TLS_KEY", &key_path)
        .run()
        .success();
    let expected = format!(
        "api: TLS on: HTTPS on 127.0.0.1:8080 with {} (1 certificate in the chain)",
        cert_path.display()
    );
    assert!(run.stderr.contains(&expected), "{}", run.stderr);

    // A key file that is not there: the check fails as `serve` would, naming it.
    let missing = install.root().join("missing-key.pem");
    let run = Callrec::new(["config", "check"])
        .env("CALLREC_API_TLS_CERT", &cert_path)
        .env("CALLREC_API_TLS_KEY", &missing)
        .run()
        .expect_code(78);
    let expected = format!(
        "error: cannot read the private key {} (api.tls_key)",
        missing.display()
    );
    assert!(run.stderr.contains(&expected), "{}", run.stderr);

    // Only one of the two: a configuration problem naming the missing key.
    let run = Callrec::new(["config", "check"])
        .env("CALLREC_API_TLS_CERT", &cert_path)
        .run()
        .expect_code(78);
    assert!(
        run.stderr
            .contains("api.tls_key: must be set when api.tls_cert is"),
        "{}",
        run.stderr
    );
}

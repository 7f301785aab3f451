//! An operator sets callrec up and looks after it from the command line: the index, users
//! and their modes, API tokens, retention and integrity.

mod support;

use callrec_model::{RecordingMode, RecordingState, Role};
use callrec_store::Access;
use chrono::{Duration, Utc};
use support::{Callrec, Install, open_store, stored_recording};

fn migrated() -> Install {
    let install = Install::new();
    install.callrec(["migrate"]).run().success();
    install
}

fn users_json(install: &Install) -> serde_json::Value {
    let run = install.callrec(["user", "list", "--json"]).run().success();
    serde_json::from_str(&run.stdout).expect("user list --json prints JSON")
}

#[test]
fn migrate_creates_the_index_and_running_it_again_changes_nothing() {
    let install = Install::new();
    let first = install.callrec(["migrate"]).run().success();
    let index = install.data_dir().join("index.db");
    assert!(index.is_file());
    assert_eq!(
        first.stdout,
        format!(
            "created index {} (schema version {})\n",
            index.display(),
            callrec_store::SCHEMA_VERSION
        )
    );

    let audit_before = open_store(&install)
        .view()
        .audit(None, None, 500)
        .unwrap()
        .entries;
    let second = install.callrec(["migrate"]).run().success();
    assert_eq!(
        second.stdout,
        format!(
            "index {} is up to date (schema version {})\n",
            index.display(),
            callrec_store::SCHEMA_VERSION
        )
    );
    let store = open_store(&install);
    assert_eq!(store.migration().from, callrec_store::SCHEMA_VERSION);
    assert_eq!(
        store.view().audit(None, None, 500).unwrap().entries,
        audit_before
    );
    assert_eq!(
        store.view().sites().unwrap().len(),
        1,
        "still one default site"
    );
}

#[test]
fn commands_other_than_migrate_refuse_a_data_dir_without_an_index() {
    let install = Install::new();
    let run = install.callrec(["user", "list"]).run().expect_code(1);
    assert!(
        run.stderr.contains(&format!(
            "error: no index at {}",
            install.data_dir().join("index.db").display()
        )),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("callrec migrate"), "{}", run.stderr);
    assert!(
        !install.data_dir().exists(),
        "nothing is created in a mistyped data dir"
    );
}

#[test]
fn users_are_added_listed_and_their_mode_changed() {
    let install = migrated();
    let added = install
        .callrec([
            "user",
            "add",
            "1001",
            "--mode",
            "always",
            "--number",
            "02071234567",
            "--name",
            "Ann Smith",
        ])
        .run()
        .success();
    assert_eq!(
        added.stdout,
        "added user 1001@default: mode always, role user, numbers +442071234567\n"
    );
    install
        .callrec(["user", "add", "1002", "--admin"])
        .run()
        .success();

    let table = install.callrec(["user", "list"]).run().success();
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", table.stdout);
    assert!(lines[0].starts_with("SITE"), "{}", table.stdout);
    assert!(
        lines[1].contains("1001")
            && lines[1].contains("always")
            && lines[1].contains("Ann Smith")
            && lines[1].contains("+442071234567"),
        "{}",
        table.stdout
    );
    assert!(
        lines[2].contains("1002")
            && lines[2].contains("always_pausable")
            && lines[2].contains("admin"),
        "{}",
        table.stdout
    );

    let json = users_json(&install);
    assert_eq!(json[0]["extension"], "1001");
    assert_eq!(json[0]["mode"], "always");
    assert_eq!(json[0]["numbers"][0]["raw"], "02071234567");
    assert_eq!(json[1]["extension"], "1002");
    assert_eq!(json[1]["role"], "admin");

    let changed = install
        .callrec(["user", "set-mode", "1001", "on_demand"])
        .env("SUDO_USER", "ceo")
        .env("USER", "ceo")
        .run()
        .success();
    assert_eq!(changed.stdout, "1001@default: mode always -> on_demand\n");
    assert_eq!(users_json(&install)[0]["mode"], "on_demand");

    // Every change is in the audit log under the name of the person who ran the command:
    // the account of the real uid, whatever USER or SUDO_USER say.
    let me = std::process::Command::new("id")
        .arg("-un")
        .output()
        .unwrap();
    let me = format!("cli:{}", String::from_utf8(me.stdout).unwrap().trim());
    let audit = open_store(&install)
        .view()
        .audit(None, None, 500)
        .unwrap()
        .entries;
    let by_cli: Vec<(&str, &str)> = audit
        .iter()
        .filter(|e| e.actor == me)
        .map(|e| (e.action.as_str(), e.target.as_str()))
        .collect();
    assert!(
        by_cli.contains(&("user.add", "user:default/1001")),
        "{by_cli:?}"
    );
    assert!(
        by_cli.contains(&("user.set_mode", "user:default/1001")),
        "{by_cli:?}"
    );
}

#[test]
fn roles_and_numbers_are_set_from_the_cli_and_the_last_admin_is_kept() {
    let install = migrated();
    install.callrec(["user", "add", "1001"]).run().success();
    install
        .callrec(["user", "add", "9000", "--admin"])
        .run()
        .success();

    let refused = install
        .callrec(["user", "set-role", "9000", "user"])
        .run()
        .expect_code(1);
    assert!(refused.stderr.contains("last admin"), "{}", refused.stderr);
    let promoted = install
        .callrec(["user", "set-role", "1001", "admin"])
        .run()
        .success();
    assert_eq!(promoted.stdout, "1001@default: role user -> admin\n");
    install
        .callrec(["user", "set-role", "9000", "user"])
        .run()
        .success();

    let numbered = install
        .callrec([
            "user",
            "set-numbers",
            "1001",
            "02071234567",
            "+44 20 7123 4568",
        ])
        .run()
        .success();
    assert_eq!(
        numbered.stdout,
        "1001@default: numbers +442071234567 +442071234568\n"
    );
    let cleared = install
        .callrec(["user", "set-numbers", "1001"])
        .run()
        .success();
    assert_eq!(cleared.stdout, "1001@default: no numbers\n");
    let json = users_json(&install);
    assert_eq!(json[0]["role"], "admin");
    assert_eq!(json[1]["role"], "user");
    assert_eq!(json[0]["numbers"], serde_json::json!([]));
    let audit = open_store(&install)
        .view()
        .audit(None, None, 500)
        .unwrap()
        .entries;
    assert_eq!(
        audit.iter().filter(|e| e.action == "user.update").count(),
        4,
        "two role changes and two number changes audited"
    );
}

#[test]
fn completions_and_the_manual_page_come_from_the_command_definitions() {
    let install = Install::new();
    let bash = install.callrec(["completions", "bash"]).run().success();
    assert!(bash.stdout.contains("set-numbers"), "{}", bash.stdout);
    assert!(bash.stdout.contains("--limit-rate"), "{}", bash.stdout);
    let checked = std::process::Command::new("bash")
        .arg("-n")
        .stdin(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write as _;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(bash.stdout.as_bytes())?;
            child.wait()
        })
        .unwrap();
    assert!(checked.success(), "bash -n refuses the completion script");
    for shell in ["zsh", "fish"] {
        let script = install.callrec(["completions", shell]).run().success();
        assert!(script.stdout.contains("callrec"), "{shell}");
    }
    let man = install.callrec(["man"]).run().success();
    assert!(man.stdout.contains(".TH callrec 1"), "{}", man.stdout);
    assert!(man.stdout.contains("completions"), "{}", man.stdout);
    assert!(man.stdout.contains("archive"), "{}", man.stdout);
}

#[test]
fn a_duplicate_extension_is_refused_with_a_clear_message() {
    let install = migrated();
    install.callrec(["user", "add", "1001"]).run().success();
    let run = install
        .callrec(["user", "add", "1001", "--mode", "never"])
        .run()
        .expect_code(1);
    assert!(
        run.stderr
            .contains("extension 1001 already exists in site default"),
        "{}",
        run.stderr
    );
    let users = users_json(&install);
    assert_eq!(users.as_array().map(Vec::len), Some(1));
    assert_eq!(
        users[0]["mode"], "always_pausable",
        "the first user is untouched"
    );
}

#[test]
fn an_unknown_mode_is_refused_and_nothing_is_written() {
    let install = migrated();
    install.callrec(["user", "add", "1001"]).run().success();
    let audit_before = open_store(&install)
        .view()
        .audit(None, None, 500)
        .unwrap()
        .entries;

    let run = install
        .callrec(["user", "add", "1003", "--mode", "sometimes"])
        .run()
        .expect_code(2);
    assert!(
        run.stderr.contains("unknown recording mode `sometimes` (expected one of: never, always, always_pausable, on_demand)"),
        "{}",
        run.stderr
    );
    install
        .callrec(["user", "set-mode", "1001", "sometimes"])
        .run()
        .expect_code(2);

    let store = open_store(&install);
    let users = store.view().users(None).unwrap();
    assert_eq!(users.len(), 1, "1003 was not added");
    assert_eq!(
        users[0].mode,
        RecordingMode::AlwaysPausable,
        "1001 kept its mode"
    );
    assert_eq!(
        store.view().audit(None, None, 500).unwrap().entries,
        audit_before
    );
}

#[test]
fn an_unknown_user_is_an_error() {
    let install = migrated();
    let run = install
        .callrec(["user", "set-mode", "1009", "never"])
        .run()
        .expect_code(1);
    assert!(
        run.stderr.contains("unknown user 1009 in site default"),
        "{}",
        run.stderr
    );
    let run = install
        .callrec(["token", "create", "1009"])
        .run()
        .expect_code(1);
    assert!(
        run.stderr.contains("unknown user 1009 in site default"),
        "{}",
        run.stderr
    );
}

#[test]
fn new_users_get_the_default_mode_the_config_sets_for_the_site() {
    let install = migrated();
    let run = install
        .callrec(["user", "add", "1005"])
        .env("CALLREC_SITE_DEFAULT_MODE", "on_demand")
        .run()
        .success();
    assert!(run.stdout.contains("mode on_demand"), "{}", run.stdout);
    let site = open_store(&install).view().site("default").unwrap();
    assert_eq!(site.settings.default_mode, RecordingMode::OnDemand);
    // Keys the config does not name are left as they were.
    assert_eq!(site.settings.retention_days, 180);
}

#[test]
fn a_data_dir_under_a_file_is_reported_with_its_path() {
    let install = Install::new();
    let file = install.root().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let data_dir = file.join("data");
    let run = Callrec::new([
        "--data-dir".as_ref(),
        data_dir.as_os_str(),
        "migrate".as_ref(),
    ])
    .run()
    .expect_code(1);
    assert!(
        run.stderr
            .contains(&format!("data dir {} is not writable", data_dir.display())),
        "{}",
        run.stderr
    );
}

/// A read-only filesystem, as after a disk error remount: the error names the path. Needs
/// root (to mount a tmpfs); elsewhere the test says so and checks nothing.
#[test]
fn a_read_only_data_dir_is_reported_with_its_path() {
    let install = Install::new();
    let mount_point = install.root().join("ro");
    std::fs::create_dir(&mount_point).unwrap();
    let Some(_mounted) = support::read_only_tmpfs(&mount_point) else {
        return;
    };
    let data_dir = mount_point.join("data");
    let run = Callrec::new([
        "--data-dir".as_ref(),
        data_dir.as_os_str(),
        "migrate".as_ref(),
    ])
    .run()
    .expect_code(1);
    assert!(
        run.stderr
            .contains(&format!("data dir {} is not writable", data_dir.display())),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.to_lowercase().contains("read-only"),
        "{}",
        run.stderr
    );
}

#[test]
fn tokens_are_shown_once_listed_without_secrets_and_revoked() {
    let install = migrated();
    install
        .callrec(["user", "add", "1001", "--admin"])
        .run()
        .success();

    let created = install
        .callrec(["token", "create", "1001", "--label", "ops laptop"])
        .run()
        .success();
    let secret = created.stdout.trim();
    assert_eq!(
        created.stdout.lines().count(),
        1,
        "only the secret on stdout"
    );
    assert!(secret.starts_with("callrec_"), "{secret}");
    assert!(
        created.stderr.contains("only time it is shown"),
        "{}",
        created.stderr
    );
    let caller = open_store(&install)
        .view()
        .authenticate(secret)
        .unwrap()
        .expect("the token works");
    assert_eq!(
        (caller.extension.as_str(), caller.role),
        ("1001", Role::Admin)
    );

    let list = install.callrec(["token", "list"]).run().success();
    assert!(!list.stdout.contains(secret));
    let row = list.stdout.lines().nth(1).expect("one token row");
    assert!(row.starts_with(&format!("{}  ", caller.token_id)), "{row}");
    assert!(
        row.contains("1001") && row.contains("ops laptop") && row.contains("  -  "),
        "{row}"
    );
    let json = install.callrec(["token", "list", "--json"]).run().success();
    assert!(!json.stdout.contains(secret));
    let tokens: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(tokens[0]["label"], "ops laptop");
    assert!(tokens[0]["revoked_at"].is_null());

    let id = caller.token_id.to_string();
    let revoked = install.callrec(["token", "revoke", &id]).run().success();
    assert_eq!(revoked.stdout, format!("revoked token {id}\n"));
    assert_eq!(
        open_store(&install).view().authenticate(secret).unwrap(),
        None
    );
    let json = install.callrec(["token", "list", "--json"]).run().success();
    let tokens: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert!(tokens[0]["revoked_at"].is_string());

    let again = install.callrec(["token", "revoke", &id]).run().success();
    assert_eq!(again.stdout, format!("token {id} was already revoked\n"));
    let unknown = install
        .callrec(["token", "revoke", "999"])
        .run()
        .expect_code(1);
    assert!(
        unknown.stderr.contains("unknown token 999"),
        "{}",
        unknown.stderr
    );
}

#[test]
fn a_dry_run_sweep_changes_nothing_and_a_real_one_deletes_what_expired() {
    let install = migrated();
    install.callrec(["user", "add", "1001"]).run().success();
    let long_ago = Utc::now() - Duration::days(400);
    let (expired, expired_file) = stored_recording(&install, "1001", long_ago, 1);
    let (held, held_file) = stored_recording(&install, "1001", long_ago, 2);
    let (recent, recent_file) =
        stored_recording(&install, "1001", Utc::now() - Duration::days(1), 3);
    open_store(&install)
        .set_hold(&held, &Access::system("test"), true)
        .unwrap();
    let audit_before = open_store(&install)
        .view()
        .audit(None, None, 500)
        .unwrap()
        .entries;

    let dry = install.callrec(["sweep", "--dry-run"]).run().success();
    assert!(
        dry.stdout
            .starts_with("dry run: 1 recording would be deleted"),
        "{}",
        dry.stdout
    );
    assert!(
        dry.stdout.contains("1 expired recording kept: on hold"),
        "{}",
        dry.stdout
    );
    assert!(
        dry.stdout.contains(expired.as_str()),
        "the dry run lists it:\n{}",
        dry.stdout
    );
    assert!(expired_file.is_file(), "a dry run deletes no file");
    let store = open_store(&install);
    let state = |id| {
        store
            .view()
            .recording(id, &Access::system("test"))
            .unwrap()
            .state
    };
    assert_eq!(state(&expired), RecordingState::Stored);
    assert_eq!(
        store.view().audit(None, None, 500).unwrap().entries,
        audit_before
    );
    drop(store);

    let real = install.callrec(["sweep"]).run().success();
    assert!(
        real.stdout.starts_with("deleted 1 recording ("),
        "{}",
        real.stdout
    );
    assert!(!expired_file.exists());
    assert!(held_file.is_file() && recent_file.is_file());
    let store = open_store(&install);
    let state = |id| {
        store
            .view()
            .recording(id, &Access::system("test"))
            .unwrap()
            .state
    };
    assert_eq!(state(&expired), RecordingState::Deleted);
    assert_eq!(state(&held), RecordingState::Stored);
    assert_eq!(state(&recent), RecordingState::Stored);
}

#[test]
fn a_sweep_applies_the_retention_the_config_sets_first() {
    let install = migrated();
    install.callrec(["user", "add", "1001"]).run().success();
    let (id, file) = stored_recording(&install, "1001", Utc::now() - Duration::days(10), 1);

    // Under the default 180 days nothing has expired; the config's 7 days must win. The dry
    // run previews the sweep under them without putting them in force.
    let dry = install
        .callrec(["sweep", "--dry-run"])
        .env("CALLREC_SITE_RETENTION_DAYS", "7")
        .run()
        .success();
    assert!(
        dry.stdout
            .starts_with("dry run: 1 recording would be deleted"),
        "{}",
        dry.stdout
    );
    assert!(
        dry.stdout.contains(id.as_str()),
        "the dry run lists it:\n{}",
        dry.stdout
    );
    assert!(
        dry.stderr
            .contains("note: the config changes settings of site default")
            && dry.stderr.contains("previews the sweep under them"),
        "{}",
        dry.stderr
    );
    assert!(file.is_file());
    let untouched = open_store(&install);
    assert_eq!(
        untouched
            .view()
            .site("default")
            .unwrap()
            .settings
            .retention_days,
        180,
        "a dry run puts no setting in force"
    );
    assert_eq!(
        untouched
            .view()
            .recording(&id, &Access::system("test"))
            .unwrap()
            .state,
        RecordingState::Stored
    );
    drop(untouched);
    let plain = install.callrec(["sweep", "--dry-run"]).run().success();
    assert!(
        plain.stdout.starts_with("dry run: 0 recordings") && !plain.stderr.contains("note:"),
        "without the setting nothing has expired:\n{}{}",
        plain.stdout,
        plain.stderr
    );

    let json = install
        .callrec(["sweep", "--json"])
        .env("CALLREC_SITE_RETENTION_DAYS", "7")
        .run()
        .success();
    let report: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(report["deleted"], 1);
    assert_eq!(report["dry_run"], false);
    assert!(!file.exists());
    let store = open_store(&install);
    assert_eq!(
        store
            .view()
            .site("default")
            .unwrap()
            .settings
            .retention_days,
        7
    );
    let rec = store
        .view()
        .recording(&id, &Access::system("test"))
        .unwrap();
    assert_eq!(rec.state, RecordingState::Deleted);
}

#[test]
fn verify_passes_on_an_intact_store_and_fails_on_a_tampered_or_missing_file() {
    let install = migrated();
    install.callrec(["user", "add", "1001"]).run().success();
    let (_, altered) = stored_recording(&install, "1001", Utc::now() - Duration::hours(2), 1);
    let (missing_id, missing) =
        stored_recording(&install, "1001", Utc::now() - Duration::hours(1), 2);

    let clean = install.callrec(["verify"]).run().success();
    assert!(
        clean.stdout.contains("files: 2 checked, 2 intact"),
        "{}",
        clean.stdout
    );
    assert!(clean.stdout.trim_end().ends_with("OK"), "{}", clean.stdout);

    let mut bytes = std::fs::read(&altered).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&altered, bytes).unwrap();
    std::fs::remove_file(&missing).unwrap();

    let run = install.callrec(["verify"]).run().expect_code(1);
    assert!(
        run.stdout.contains("1 missing, 1 altered"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains(&format!("ALTERED  {}", altered.display())),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains(&format!("MISSING  {} ({missing_id})", missing.display())),
        "{}",
        run.stdout
    );

    let json = install.callrec(["verify", "--json"]).run().expect_code(1);
    let report: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(report["missing"][0]["id"], missing_id.as_str());
    assert_eq!(report["altered"].as_array().map(Vec::len), Some(1));
}

/// Someone with write access to the index goes around the append-only triggers and rewrites
/// history: verify notices the broken hash chain.
#[test]
fn verify_fails_on_a_rewritten_audit_log() {
    let install = migrated();
    install.callrec(["user", "add", "1001"]).run().success();
    install
        .callrec(["user", "set-mode", "1001", "never"])
        .run()
        .success();
    install.callrec(["verify"]).run().success();

    let db = rusqlite::Connection::open(install.data_dir().join("index.db")).unwrap();
    db.execute_batch(
        "DROP TRIGGER audit_log_no_update;
         UPDATE audit_log SET actor = 'someone-else' WHERE action = 'user.set_mode';",
    )
    .unwrap();
    drop(db);

    let run = install.callrec(["verify"]).run().expect_code(1);
    assert!(run.stdout.contains("BROKEN  entry"), "{}", run.stdout);
    assert!(
        !run.stdout.contains("audit log: 0 breaks"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_chain_head_kept_in_a_file_finds_a_log_whose_end_was_cut() {
    let install = migrated();
    install.callrec(["user", "add", "1001"]).run().success();
    install
        .callrec(["user", "set-mode", "1001", "never"])
        .run()
        .success();
    let head = install.callrec(["audit", "head"]).run().success();
    let heads = install.root().join("heads.txt");
    std::fs::write(&heads, format!("# saved hourly\n{}", head.stdout)).unwrap();
    let heads_arg = heads.to_str().unwrap();
    install
        .callrec(["verify", "--head-file", heads_arg])
        .run()
        .success();

    // The newest entries deleted, trigger dropped: the shorter chain is intact.
    let (seq, _) = head.stdout.trim().split_once(' ').unwrap();
    let db = rusqlite::Connection::open(install.data_dir().join("index.db")).unwrap();
    db.execute_batch(&format!(
        "DROP TRIGGER audit_log_no_delete; DELETE FROM audit_log WHERE seq >= {seq};"
    ))
    .unwrap();
    drop(db);
    let run = install
        .callrec(["verify", "--head", head.stdout.trim()])
        .run()
        .expect_code(1);
    assert!(run.stdout.contains("cut from its end"), "{}", run.stdout);

    let bad = install
        .callrec(["verify", "--head", "not a head"])
        .run()
        .expect_code(2);
    assert!(bad.stderr.contains("chain head"), "{}", bad.stderr);
}

#[test]
fn erase_by_number_keeps_what_a_hold_keeps_and_verify_stays_clean() {
    let install = migrated();
    install.callrec(["user", "add", "1001"]).run().success();
    let (gone, gone_path) = stored_recording(&install, "1001", Utc::now(), 1);
    let (kept, kept_path) = stored_recording(&install, "1001", Utc::now(), 2);
    open_store(&install)
        .set_hold(&kept, &Access::system("test"), true)
        .unwrap();

    let missing = install
        .callrec(["erase", "--number", "02071234567"])
        .run()
        .expect_code(2);
    assert!(missing.stderr.contains("--reason"), "{}", missing.stderr);

    let dry = install
        .callrec([
            "erase",
            "--number",
            "+44 20 7123 4567",
            "--reason",
            "SAR-1",
            "--dry-run",
        ])
        .run()
        .success();
    assert!(
        dry.stdout.contains(&format!("WOULD ERASE {gone}")),
        "{}",
        dry.stdout
    );
    assert!(
        dry.stdout.contains(&format!("KEPT {kept}: on hold")),
        "{}",
        dry.stdout
    );
    assert!(gone_path.is_file());

    let done = install
        .callrec([
            "erase",
            "--number",
            "442071234567",
            "--reason",
            "SAR-1",
            "--json",
        ])
        .run()
        .success();
    let report: serde_json::Value = serde_json::from_str(&done.stdout).unwrap();
    assert_eq!(report["erased"], serde_json::json!([gone.to_string()]));
    assert_eq!(report["refused"][0]["id"], kept.to_string());
    assert!(!gone_path.exists());
    assert!(kept_path.is_file());
    install.callrec(["verify"]).run().success();
}

#[test]
fn a_subject_access_export_is_a_zip_python_reads_with_the_store_hashes() {
    let install = migrated();
    install.callrec(["user", "add", "1001"]).run().success();
    let (a, a_path) = stored_recording(&install, "1001", Utc::now(), 1);
    let (b, _) = stored_recording(&install, "1001", Utc::now(), 2);
    let admin = Access::system("test");
    let mut store = open_store(&install);
    store.set_hold(&b, &admin, true).unwrap();
    store
        .add_note(&a, &admin, "customer asked for a call back")
        .unwrap();
    drop(store);
    let dest = install.root().join("exports");

    let run = install
        .callrec([
            "export",
            "--number",
            "+44 20 7123 4567",
            "--reason",
            "SAR-2",
            "--dest",
            dest.to_str().unwrap(),
        ])
        .run()
        .success();
    let zip_path = run.stdout.split(" (").next().unwrap().trim().to_owned();
    assert!(zip_path.ends_with(".zip"), "{}", run.stdout);
    assert!(run.stdout.contains("(2 recording(s))"), "{}", run.stdout);
    let leftovers: Vec<_> = std::fs::read_dir(&dest)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".part"))
        .collect();
    assert!(leftovers.is_empty());

    // An independent reader: Python's zipfile, hashing each member.
    let script = r#"
import hashlib, json, sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
assert z.testzip() is None
m = json.loads(z.read("manifest.json"))
out = {"number": m["number"], "reason": m["reason"], "recordings": []}
for r in m["recordings"]:
    data = z.read(r["file"])
    out["recordings"].append({"id": r["id"], "sha256": hashlib.sha256(data).hexdigest(),
        "listed": r["sha256"], "size": len(data), "listed_size": r["size_bytes"],
        "notes": [n["text"] for n in r["notes"]], "hold": r["hold"]})
print(json.dumps(out))
"#;
    let py = std::process::Command::new("python3")
        .args(["-c", script, &zip_path])
        .output()
        .expect("python3 runs");
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    let seen: serde_json::Value = serde_json::from_slice(&py.stdout).unwrap();
    assert_eq!(seen["number"], "+442071234567");
    assert_eq!(seen["reason"], "SAR-2");
    let store = open_store(&install);
    let recs = seen["recordings"].as_array().unwrap();
    assert_eq!(recs.len(), 2);
    for r in recs {
        let id: callrec_model::RecordingId = r["id"].as_str().unwrap().parse().unwrap();
        let rec = store.view().recording(&id, &admin).unwrap();
        assert_eq!(r["sha256"], r["listed"]);
        assert_eq!(r["sha256"].as_str(), rec.sha256.as_deref());
        assert_eq!(r["size"], r["listed_size"]);
        assert_eq!(r["size"].as_u64(), rec.size_bytes);
    }
    let a_entry = recs.iter().find(|r| r["id"] == a.to_string()).unwrap();
    assert_eq!(a_entry["notes"][0], "customer asked for a call back");
    assert!(
        recs.iter()
            .any(|r| r["id"] == b.to_string() && r["hold"] == true)
    );
    assert_eq!(
        std::fs::read(&a_path).unwrap().len() as u64,
        a_entry["size"].as_u64().unwrap()
    );
    let audit = store.view().audit(None, None, 500).unwrap().entries;
    let export = audit
        .iter()
        .find(|e| e.action == "subject_access.export")
        .expect("the export is audited");
    assert!(export.detail.contains("SAR-2") && export.detail.contains(&a.to_string()));
    assert!(!export.target.contains("2071234567"), "{}", export.target);
}

#[test]
fn a_site_is_created_from_the_cli_and_its_users_are_added_with_site() {
    let install = migrated();
    let added = install.callrec(["site", "add", "acme"]).run().success();
    assert!(
        added.stdout.starts_with("added site acme"),
        "{}",
        added.stdout
    );
    install
        .callrec(["user", "add", "2001", "--site", "acme", "--admin"])
        .run()
        .success();
    let dup = install
        .callrec(["site", "add", "acme"])
        .run()
        .expect_code(1);
    assert!(dup.stderr.contains("already exists"), "{}", dup.stderr);
    let bad = install
        .callrec(["site", "add", "../x"])
        .run()
        .expect_code(1);
    assert!(bad.stderr.contains("site"), "{}", bad.stderr);
    let list = install.callrec(["site", "list", "--json"]).run().success();
    let sites: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    let names: Vec<&str> = sites
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["default", "acme"]);
    let users = users_json(&install);
    assert!(
        users
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["site"] == "acme" && u["extension"] == "2001" && u["role"] == "admin"),
        "{users}"
    );
}

#[test]
fn a_token_can_be_made_to_expire() {
    let install = migrated();
    install.callrec(["user", "add", "1001"]).run().success();
    let made = install
        .callrec(["token", "create", "1001", "--expires-days", "30"])
        .run()
        .success();
    let secret = made.stdout.trim().to_owned();
    let listed = install.callrec(["token", "list", "--json"]).run().success();
    let tokens: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
    let expires: chrono::DateTime<Utc> = tokens[0]["expires_at"]
        .as_str()
        .expect("an expiry")
        .parse()
        .unwrap();
    let days = (expires - Utc::now()).num_hours() as f64 / 24.0;
    assert!((29.9..=30.1).contains(&days), "{days}");
    let table = install.callrec(["token", "list"]).run().success();
    assert!(table.stdout.contains("EXPIRES"), "{}", table.stdout);
    assert!(table.stdout.contains("LAST USED"), "{}", table.stdout);
    assert!(
        open_store(&install)
            .view()
            .authenticate(&secret)
            .unwrap()
            .is_some()
    );
    install
        .callrec(["token", "create", "1001", "--expires-days", "0"])
        .run()
        .expect_code(2);
}

#[test]
fn a_user_without_recordings_is_removed_and_one_with_recordings_is_kept() {
    let install = migrated();
    install.callrec(["user", "add", "1001"]).run().success();
    install.callrec(["user", "add", "1002"]).run().success();
    install
        .callrec(["user", "add", "9000", "--admin"])
        .run()
        .success();
    let token = install.callrec(["token", "create", "1002"]).run().success();
    stored_recording(&install, "1001", Utc::now(), 1);

    let kept = install
        .callrec(["user", "remove", "1001"])
        .run()
        .expect_code(1);
    assert!(kept.stderr.contains("1 recording(s)"), "{}", kept.stderr);
    let last = install
        .callrec(["user", "remove", "9000"])
        .run()
        .expect_code(1);
    assert!(last.stderr.contains("last admin"), "{}", last.stderr);

    let removed = install.callrec(["user", "remove", "1002"]).run().success();
    assert_eq!(removed.stdout, "removed user 1002@default\n");
    let users = users_json(&install);
    let exts: Vec<&str> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["extension"].as_str().unwrap())
        .collect();
    assert_eq!(exts, ["1001", "9000"]);
    let store = open_store(&install);
    assert!(
        store
            .view()
            .authenticate(token.stdout.trim())
            .unwrap()
            .is_none()
    );
    let audit = store.view().audit(None, None, 500).unwrap().entries;
    assert!(
        audit
            .iter()
            .any(|e| e.action == "user.remove" && e.target == "user:default/1002")
    );
    install.callrec(["verify"]).run().success();
}

#[test]
fn a_portal_password_is_set_from_standard_input_never_an_argument() {
    let install = migrated();
    install.callrec(["user", "add", "1001"]).run().success();
    let run = install
        .callrec(["user", "passwd", "1001"])
        .stdin("a long enough secret\n")
        .run()
        .success();
    assert!(
        run.stdout.contains("password set for 1001@default"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("a long enough secret"));

    let mut store = open_store(&install);
    let policy = callrec_store::PortalPolicy::default();
    let attempt = |password: &str| callrec_store::SignInAttempt {
        account: "1001".into(),
        password: password.into(),
        address: "192.0.2.1".into(),
    };
    assert!(matches!(
        store
            .sign_in(&attempt("a long enough secret"), &policy)
            .unwrap(),
        callrec_store::SignIn::Granted(_)
    ));
    assert!(matches!(
        store
            .sign_in(&attempt("a long enough secret\n"), &policy)
            .unwrap(),
        callrec_store::SignIn::Refused
    ));
    drop(store);

    // Too short: refused, and the password is not echoed back.
    let run = install
        .callrec(["user", "passwd", "1001"])
        .stdin("short one\n")
        .run()
        .expect_code(1);
    assert!(
        run.stderr.contains("at least 12 characters"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("short one"));
    // Nothing on stdin, an unknown user, and a password as an argument are refused.
    install
        .callrec(["user", "passwd", "1001"])
        .run()
        .expect_code(1);
    install
        .callrec(["user", "passwd", "4242"])
        .stdin("a long enough secret\n")
        .run()
        .expect_code(1);
    install
        .callrec(["user", "passwd", "1001", "a long enough secret"])
        .run()
        .expect_code(2);
}

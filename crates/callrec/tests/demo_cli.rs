//! A newcomer runs `callrec demo --exit`: the story on stdout (no log lines beside it unless
//! asked for), the recordings it names are on disk and in the index, and the admin token it
//! prints is a working token. The demo wipes its directory at start, but never one it did not
//! make: `--dir` pointed at real data by mistake deletes nothing.

mod support;

use callrec_model::{RecordingId, Role};
use callrec_store::Store;
use support::{Callrec, Install};

#[test]
fn the_demo_tells_where_the_recordings_are_and_how_to_query_them() {
    let install = Install::new();
    let dir = install.root().join("demo");
    let run = Callrec::new([
        "demo".as_ref(),
        "--exit".as_ref(),
        "--dir".as_ref(),
        dir.as_os_str(),
    ])
    .current_dir(install.root())
    .run()
    .success();
    let out = &run.stdout;

    // Only the story: the daemon's info lines are not printed unless asked for.
    assert!(!run.stderr.contains("INFO"), "{}", run.stderr);
    assert!(
        out.contains("the daemon is connected to the switch"),
        "{out}"
    );

    // Every recording is listed with the file's full path, and the file is there.
    let paths: Vec<&str> = out
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with('/') && l.ends_with(".wav"))
        .collect();
    assert_eq!(paths.len(), 3, "{out}");
    for path in &paths {
        assert!(std::path::Path::new(path).is_file(), "{path} is not a file");
        assert!(path.starts_with(dir.to_str().unwrap()), "{path}");
    }
    let stored = out
        .lines()
        .filter(|l| l.trim_start().starts_with("stored "))
        .count();
    assert_eq!(stored, 3, "{out}");

    // The token works, as the admin of the site.
    let token = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("export CALLREC_TOKEN="))
        .expect("a token line");
    let store = Store::open(dir.join("data")).unwrap();
    let caller = store
        .view()
        .authenticate(token)
        .unwrap()
        .expect("the printed token authenticates");
    assert_eq!(
        (caller.extension.as_str(), caller.role),
        ("1001", Role::Admin)
    );
    // And a plain user's, which authenticates as that user.
    let user_token = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("export CALLREC_USER_TOKEN="))
        .expect("a user token line");
    let user = store
        .view()
        .authenticate(user_token)
        .unwrap()
        .expect("the printed user token authenticates");
    assert_eq!((user.extension.as_str(), user.role), ("1002", Role::User));

    // The portal's address and two sign-ins that work, printed once.
    assert!(out.contains("portal: http://127.0.0.1:"), "{out}");
    let password_of = |who: &str| -> String {
        out.lines()
            .find(|l| l.trim_start().starts_with(who))
            .and_then(|l| l.split_whitespace().last())
            .unwrap_or_else(|| panic!("a sign-in line for {who}: {out}"))
            .to_owned()
    };
    let mut store = store;
    for (who, ext) in [("admin (", "1001"), ("user (", "1002")] {
        let attempt = callrec_store::SignInAttempt {
            account: ext.into(),
            password: password_of(who),
            address: "192.0.2.1".into(),
        };
        let outcome = store
            .sign_in(&attempt, &callrec_store::PortalPolicy::default())
            .unwrap();
        assert!(
            matches!(outcome, callrec_store::SignIn::Granted(_)),
            "{ext}: {outcome:?}"
        );
    }

    // The example recording is the paused one, so its segments show *48 and *49.
    let example: RecordingId = out
        .lines()
        .find(|l| l.contains("# with its segments"))
        .and_then(|l| l.split("/api/v1/recordings/").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("a curl line for one recording")
        .parse()
        .unwrap();
    let rec = store
        .view()
        .recording(&example, &callrec_store::Access::system("test"))
        .unwrap();
    assert!(rec.paused_ms > 0, "{rec:?}");

    // With --exit the API is gone by the end, and the demo says so.
    assert!(out.contains("without --exit"), "{out}");
}

#[test]
fn the_demo_refuses_to_wipe_a_directory_it_did_not_make() {
    let install = Install::new();
    let dir = install.root().join("recordings");
    std::fs::create_dir_all(dir.join("store")).unwrap();
    std::fs::write(dir.join("store").join("call.wav"), "audio").unwrap();
    let run = Callrec::new([
        "demo".as_ref(),
        "--exit".as_ref(),
        "--dir".as_ref(),
        dir.as_os_str(),
    ])
    .current_dir(install.root())
    .run()
    .expect_code(1);
    assert!(
        run.stderr.contains(&dir.display().to_string()) && run.stderr.contains("--dir"),
        "{}",
        run.stderr
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("store").join("call.wav")).unwrap(),
        "audio"
    );
    assert!(
        !dir.join("data").exists(),
        "the demo wrote into the directory"
    );
}

#[test]
fn the_demo_starts_over_in_its_own_directory() {
    let install = Install::new();
    let dir = install.root().join("demo");
    let demo = || {
        Callrec::new([
            "demo".as_ref(),
            "--exit".as_ref(),
            "--dir".as_ref(),
            dir.as_os_str(),
        ])
        .current_dir(install.root())
        .run()
        .success()
    };
    demo();
    demo();
    // The second run wiped the first's recordings: three, not six.
    let files = walk(&dir.join("data").join("store"));
    assert_eq!(files.len(), 3, "{files:?}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(walk(&path));
        } else {
            found.push(path);
        }
    }
    found
}

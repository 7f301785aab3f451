//! An operator runs `callrec serve`: a wrong ESL password stops it with exit 78 and a message
//! naming the setting (so systemd stops retrying); SIGTERM stops it cleanly with exit 0; a
//! second daemon on the same data dir is refused while the first runs.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use support::{Background, Install};

fn read_command(r: &mut BufReader<TcpStream>) -> Option<String> {
    let mut command = String::new();
    while !command.ends_with("\n\n") {
        if r.read_line(&mut command).ok()? == 0 {
            return None;
        }
    }
    Some(command)
}

/// A switch on a free port: `accept_password` decides whether `auth` succeeds; after it,
/// every command gets `+OK`. Counts the sessions that authenticated.
fn fake_switch(accept_password: bool) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let authenticated = Arc::new(AtomicUsize::new(0));
    let count = authenticated.clone();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let count = count.clone();
            thread::spawn(move || {
                let mut w = stream.try_clone().expect("clone");
                let mut r = BufReader::new(stream);
                let _ = w.write_all(b"Content-Type: auth/request\n\n");
                if read_command(&mut r).is_none() {
                    return;
                }
                if !accept_password {
                    let notice = "Disconnected, goodbye.\n";
                    let _ = w.write_all(
                        format!(
                            "Content-Type: command/reply\nReply-Text: -ERR invalid\n\nContent-Type: text/disconnect-notice\nContent-Length: {}\n\n{notice}",
                            notice.len()
                        )
                        .as_bytes(),
                    );
                    return;
                }
                let _ = w.write_all(b"Content-Type: command/reply\nReply-Text: +OK accepted\n\n");
                count.fetch_add(1, Ordering::SeqCst);
                while let Some(command) = read_command(&mut r) {
                    let reply = if command.starts_with("bgapi") {
                        "Content-Type: command/reply\nReply-Text: +OK Job-UUID: 1\nJob-UUID: 1\n\n"
                    } else {
                        "Content-Type: command/reply\nReply-Text: +OK event listener enabled plain\n\n"
                    };
                    if w.write_all(reply.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, authenticated)
}

fn serve_args(install: &Install, port: u16) -> Vec<String> {
    vec![
        "--data-dir".into(),
        install.data_dir().display().to_string(),
        "--set".into(),
        format!("esl.port={port}"),
        "--set".into(),
        "api.listen=127.0.0.1:0".into(),
        "--set".into(),
        "feature_codes.listen=127.0.0.1:0".into(),
        "--set".into(),
        format!(
            "storage.spool_dir={}",
            install.root().join("spool").display()
        ),
        "serve".into(),
    ]
}

#[test]
fn a_wrong_esl_password_exits_78_and_names_esl_password() {
    let install = Install::new();
    let (port, _) = fake_switch(false);
    let run = support::Callrec::new(serve_args(&install, port))
        .env("CALLREC_ESL_PASSWORD", "not-the-password")
        .run()
        .expect_code(78);
    assert!(run.stderr.contains("`esl.password`"), "{}", run.stderr);
    assert!(
        !run.stderr.contains("not-the-password"),
        "the password leaked"
    );
}

#[test]
fn sigterm_stops_the_daemon_cleanly_with_exit_0() {
    let install = Install::new();
    let (port, sessions) = fake_switch(true);
    // Both connections of the ESL session are up.
    let daemon = start_daemon(serve_args(&install, port), &sessions, 2);
    let (code, stderr) = daemon.stop();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("SIGTERM received"), "{stderr}");
    assert!(stderr.contains("stopped"), "{stderr}");
}

/// Starts `callrec serve` in the background and waits until its ESL session (both
/// connections) is up.
fn start_daemon(args: Vec<String>, sessions: &AtomicUsize, connected: usize) -> Background {
    let mut daemon = support::Callrec::new(args).start();
    let deadline = Instant::now() + Duration::from_secs(60);
    while sessions.load(Ordering::SeqCst) < connected {
        assert!(Instant::now() < deadline, "the daemon never connected");
        daemon.assert_running();
        thread::sleep(Duration::from_millis(20));
    }
    daemon
}

/// Two daemons on one data dir would both record every call (two recordings per user per
/// call) and both ingest and sweep the same files: the second is refused, naming the data dir,
/// and the first runs on untouched. Once it has stopped, the data dir is free again.
#[test]
fn a_second_daemon_on_the_same_data_dir_is_refused() {
    let install = Install::new();
    let (port, sessions) = fake_switch(true);
    let first = start_daemon(serve_args(&install, port), &sessions, 2);

    // Other ports (both 0), same data dir.
    let second = support::Callrec::new(serve_args(&install, port))
        .run()
        .expect_code(1);
    assert!(
        second.stderr.contains("already running")
            && second
                .stderr
                .contains(&install.data_dir().display().to_string()),
        "{}",
        second.stderr
    );
    assert_eq!(
        sessions.load(Ordering::SeqCst),
        2,
        "the second daemon connected to the switch"
    );

    let (code, stderr) = first.stop();
    assert_eq!(code, Some(0), "{stderr}");

    // The lock went with the first daemon.
    let again = start_daemon(serve_args(&install, port), &sessions, 4);
    let (code, stderr) = again.stop();
    assert_eq!(code, Some(0), "{stderr}");
}

/// The spool exists but callrec may not write in it (FreeSWITCH's recordings directory,
/// mode 0755, owned by the switch's user; or, as here, a read-only mount): callrec could not
/// move a single finished recording out of it, so it refuses to start (78, the spool's key
/// and path) instead of starting and failing each ingest after the call. Needs root to
/// mount; elsewhere the test says so and checks nothing.
#[test]
fn a_spool_callrec_cannot_write_in_exits_78_naming_it() {
    let install = Install::new();
    let spool = install.root().join("recordings");
    std::fs::create_dir(&spool).unwrap();
    let Some(_mounted) = support::read_only_tmpfs(&spool) else {
        return;
    };
    let (port, sessions) = fake_switch(true);
    let mut args = serve_args(&install, port);
    let serve = args.pop().expect("the command");
    args.extend([
        "--set".into(),
        format!("storage.spool_dir={}", spool.display()),
        serve,
    ]);
    let run = support::Callrec::new(args).run().expect_code(78);
    assert!(
        run.stderr.contains("storage.spool_dir")
            && run.stderr.contains(&spool.display().to_string())
            && run.stderr.contains("not writable"),
        "{}",
        run.stderr
    );
    assert_eq!(
        sessions.load(Ordering::SeqCst),
        0,
        "it connected to the switch"
    );
}

/// A TLS certificate that cannot be read stops `serve` before it connects to the switch or
/// records anything: exit 78, naming the file and its setting.
#[test]
fn an_unreadable_tls_certificate_exits_78_naming_it() {
    let install = Install::new();
    let (port, sessions) = fake_switch(true);
    let cert = install.root().join("no-such-cert.pem");
    let key = install.root().join("no-such-key.pem");
    let run = support::Callrec::new(serve_args(&install, port))
        .env("CALLREC_API_TLS_CERT", &cert)
        .env("CALLREC_API_TLS_KEY", &key)
        .run()
        .expect_code(78);
    let expected = format!(
        "cannot read the certificate {} (api.tls_cert)",
        cert.display()
    );
    assert!(run.stderr.contains(&expected), "{}", run.stderr);
    assert_eq!(
        sessions.load(Ordering::SeqCst),
        0,
        "it connected to the switch"
    );
}

/// SIGTERM while the daemon is still starting (here its index is busy under another writer,
/// as during a long migration or crash recovery) is not lost and does not kill it half-way:
/// once started, the daemon stops cleanly with exit 0.
#[test]
fn sigterm_during_start_up_stops_the_daemon_cleanly() {
    let install = Install::new();
    install.callrec(["migrate"]).run().success();
    let blocker = rusqlite::Connection::open(install.data_dir().join("index.db")).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();

    let (port, _) = fake_switch(true);
    let mut args = serve_args(&install, port);
    let serve = args.pop().expect("the command");
    args.extend(["--set".into(), "log.level=debug".into(), serve]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_callrec"))
        .args(args)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("callrec starts");
    let stderr = child.stderr.take().expect("piped");
    let (lines_tx, lines) = std::sync::mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = String::new();
    loop {
        let line = lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("the daemon never said it watches SIGTERM:\n{seen}"));
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("watching SIGTERM") {
            break;
        }
    }

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    blocker.execute_batch("COMMIT").unwrap();
    drop(blocker);

    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("callrec did not stop on SIGTERM");
        }
        thread::sleep(Duration::from_millis(20));
    };
    seen.extend(lines.try_iter().map(|l| l + "\n"));
    assert_eq!(status.code(), Some(0), "{status}\n{seen}");
    assert!(seen.contains("SIGTERM received"), "{seen}");
}

//! Running the real `callrec` binary from tests: a clean environment, a temporary data
//! directory, a deadline instead of a hang, and the output captured for assertions.

#![allow(dead_code)] // Each test file uses a different part of this module.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How long one command may run before the test gives up on it. Generous: the machine is
/// shared; this only keeps a broken build from hanging CI.
const DEADLINE: Duration = Duration::from_secs(120);

/// What a finished `callrec` run left behind.
#[derive(Debug)]
pub struct Run {
    /// The exit code.
    pub code: i32,
    /// Everything written to stdout.
    pub stdout: String,
    /// Everything written to stderr.
    pub stderr: String,
}

impl Run {
    /// Fails the test, showing the output, unless the run exited with `code`.
    #[track_caller]
    pub fn expect_code(self, code: i32) -> Self {
        assert_eq!(
            self.code, code,
            "expected exit code {code}, got {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }

    /// Fails the test unless the run succeeded.
    #[track_caller]
    pub fn success(self) -> Self {
        self.expect_code(0)
    }
}

/// A `callrec` invocation with an empty environment (no stray `CALLREC_*` from the machine)
/// and a fixed Unix user name for the audit log.
pub struct Callrec {
    command: Command,
    stdin: Option<Vec<u8>>,
}

impl Callrec {
    /// `callrec <args>`.
    pub fn new<I, S>(args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut command = Command::new(env!("CARGO_BIN_EXE_callrec"));
        command
            .args(args)
            .env_clear()
            .env("USER", "tester")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        Callrec {
            command,
            stdin: None,
        }
    }

    /// Feeds `bytes` on standard input (a pipe, not a terminal).
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.command.stdin(Stdio::piped());
        self.stdin = Some(bytes.into());
        self
    }

    /// Sets an environment variable for this run.
    pub fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Self {
        self.command.env(key, value);
        self
    }

    /// Runs it in this working directory (relative paths in the config are taken from it).
    pub fn current_dir(mut self, dir: &Path) -> Self {
        self.command.current_dir(dir);
        self
    }

    /// Starts it and returns at once (its output is discarded): for a test that kills it.
    pub fn spawn(mut self) -> std::process::Child {
        self.command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the callrec binary starts")
    }

    /// Starts it in the background (a daemon: `serve`), keeping its stderr for the test's
    /// failure messages.
    pub fn start(mut self) -> Background {
        let mut child = self
            .command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the callrec binary starts");
        let mut stderr = child.stderr.take().expect("stderr is piped");
        let stderr = thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        Background {
            child,
            stderr: Some(stderr),
        }
    }

    /// Runs it to the end (or fails the test at the deadline).
    pub fn run(mut self) -> Run {
        let mut child = self.command.spawn().expect("the callrec binary starts");
        if let Some(bytes) = self.stdin.take() {
            use std::io::Write as _;
            let mut pipe = child.stdin.take().expect("stdin is piped");
            // A write error means callrec exited without reading: its exit code tells why.
            let _ = pipe.write_all(&bytes);
        }
        let mut stdout = child.stdout.take().expect("stdout is piped");
        let mut stderr = child.stderr.take().expect("stderr is piped");
        // Drain both pipes while waiting, so a chatty run cannot block on a full pipe.
        let out = thread::spawn(move || {
            let mut text = String::new();
            let _ = stdout.read_to_string(&mut text);
            text
        });
        let err = thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("waiting on callrec") {
                break status;
            }
            if started.elapsed() > DEADLINE {
                let _ = child.kill();
                let _ = child.wait();
                panic!("callrec did not finish within {DEADLINE:?}");
            }
            thread::sleep(Duration::from_millis(10));
        };
        Run {
            code: status.code().unwrap_or(-1),
            stdout: out.join().expect("stdout reader"),
            stderr: err.join().expect("stderr reader"),
        }
    }
}

/// A `callrec` running in the background ([`Callrec::start`]); killed if the test ends
/// without stopping it.
pub struct Background {
    child: std::process::Child,
    stderr: Option<thread::JoinHandle<String>>,
}

impl Background {
    /// Fails the test, with what it wrote to stderr, if it has exited.
    #[track_caller]
    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().expect("waiting on callrec") {
            panic!("callrec exited early: {status}\n{}", self.stderr());
        }
    }

    /// Sends SIGTERM and waits for it to exit (failing the test at the deadline); its exit
    /// code and everything it wrote to stderr.
    pub fn stop(mut self) -> (Option<i32>, String) {
        use nix::sys::signal::{Signal, kill};
        use nix::unistd::Pid;
        let pid = i32::try_from(self.child.id()).expect("a pid fits an i32");
        kill(Pid::from_raw(pid), Signal::SIGTERM).expect("SIGTERM is sent");
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("waiting on callrec") {
                break status;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "callrec did not stop on SIGTERM within {DEADLINE:?}"
            );
            thread::sleep(Duration::from_millis(20));
        };
        (status.code(), self.stderr())
    }

    fn stderr(&mut self) -> String {
        self.stderr
            .take()
            .map(|t| t.join().unwrap_or_default())
            .unwrap_or_default()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The status of `GET <path>` on a server at `addr` (plain HTTP/1.1), or `None` when it
/// does not answer.
pub fn http_status(addr: std::net::SocketAddr, path: &str) -> Option<u16> {
    use std::io::Write as _;
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    String::from_utf8_lossy(&reply)
        .split(' ')
        .nth(1)?
        .parse()
        .ok()
}

/// A throw-away installation: a temporary directory holding the data dir (and any config
/// file a test writes).
pub struct Install {
    dir: tempfile::TempDir,
}

impl Install {
    /// A fresh, empty one.
    pub fn new() -> Self {
        Install {
            dir: tempfile::tempdir().expect("a temporary directory"),
        }
    }

    /// The root of the temporary directory.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// `storage.data_dir` of this installation.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `callrec --data-dir <data_dir> <args>`.
    pub fn callrec<I, S>(&self, args: I) -> Callrec
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut all: Vec<std::ffi::OsString> = vec!["--data-dir".into(), self.data_dir().into()];
        all.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        Callrec::new(all)
    }

    /// Writes a config file into the installation and returns its path.
    pub fn config_file(&self, text: &str) -> PathBuf {
        let path = self.dir.path().join("callrec.toml");
        std::fs::write(&path, text).expect("writing the config file");
        path
    }
}

/// What the daemon would have left in the store: a recording of `extension`'s call that
/// started at `started_at`, its file written by "the switch" and ingested. Returns its id
/// and where its file is in the store. The user must exist already.
pub fn stored_recording(
    install: &Install,
    extension: &str,
    started_at: chrono::DateTime<chrono::Utc>,
    seed: u8,
) -> (callrec_model::RecordingId, PathBuf) {
    use callrec_model::NewRecording;
    use callrec_model::{Direction, ManualClock, RecordingId};
    use callrec_store::{IngestJob, IngestOutcome, Store};

    let clock = ManualClock::new(started_at);
    let mut store = Store::open_with_clock(install.data_dir(), std::sync::Arc::new(clock.clone()))
        .expect("the store opens");
    let user = store
        .view()
        .user("default", extension)
        .expect("the user exists");
    let spool = install.root().join("spool");
    std::fs::create_dir_all(&spool).expect("a spool dir");
    let id = RecordingId::new();
    let spool_path = spool.join(format!("{id}.wav"));
    store
        .create_recording(
            &NewRecording {
                id: id.clone(),
                user: user.id,
                call_uuid: format!("call-{id}"),
                direction: Direction::Outbound,
                from: extension.to_owned(),
                to: "02071234567".to_owned(),
                started_at,
                format: "wav".to_owned(),
                spool_path: spool_path.clone(),
            },
            "daemon",
        )
        .expect("the recording row is created");
    // Five seconds of audio; `seed` makes every file's hash different.
    let wav = callrec_testkit::wav::noise(5_000, seed.into());
    std::fs::write(&spool_path, wav).expect("the switch writes the file");
    clock.advance(chrono::Duration::minutes(1));
    match store
        .ingest(&IngestJob::new(id.clone()))
        .expect("ingest runs")
    {
        IngestOutcome::Stored { path, .. } => (id, path),
        other => panic!("expected the recording to be stored, got {other:?}"),
    }
}

/// A read-only tmpfs mounted at `at` for one test (as after a disk error remount), or `None`
/// where mounting is not permitted (not root): the test then says it is skipped and checks
/// nothing.
pub fn read_only_tmpfs(at: &Path) -> Option<callrec_testkit::tmpfs::Tmpfs> {
    callrec_testkit::tmpfs::Tmpfs::mount_read_only(at, "1m")
        .inspect_err(|e| eprintln!("skipped: {e} (not root?)"))
        .ok()
}

/// The index of an installation, opened the way the daemon or the API would read it.
pub fn open_store(install: &Install) -> callrec_store::Store {
    callrec_store::Store::open(install.data_dir()).expect("the store opens")
}

//! `callrec serve` as a user runs it: a config file, `callrec migrate`, `callrec user add`,
//! `callrec token create`, then the daemon in the background, checked through its REST API.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::http::{self, Reply};
use crate::switch::{ESL_PASSWORD, Switch};
use crate::wav::Wav;
use crate::{eventually, free_addr, workspace_root};

/// The `callrec` binary under test: `CALLREC_BIN`, else the workspace's debug build.
pub fn binary() -> PathBuf {
    let bin = std::env::var_os("CALLREC_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/debug/callrec"));
    assert!(
        bin.exists(),
        "no callrec binary at {} (run `cargo build -p callrec` or set CALLREC_BIN)",
        bin.display()
    );
    bin
}

/// A callrec installation (config, index, spool) and its daemon, killed when dropped.
pub struct Callrec {
    dir: tempfile::TempDir,
    /// Where the REST API listens.
    pub api: SocketAddr,
    /// Where the feature-code listener listens (the switch's dialplan sends codes there).
    pub feature_codes: SocketAddr,
    /// An admin token.
    pub token: String,
    child: Option<Child>,
    serves: usize,
}

impl Callrec {
    /// A fresh installation: a config file pointing at `switch` (`esl_port` may differ, to go
    /// through a proxy), the index, user `users` (extension, mode) and admin 1099 with a token.
    /// The daemon is not started yet.
    pub fn install(switch: &Switch, esl_port: u16, users: &[(&str, &str)]) -> Callrec {
        Callrec::install_with(switch, esl_port, users, "")
    }

    /// [`Callrec::install`] with `extra` appended to the config file (whole sections, e.g.
    /// `[site]\nmin_seconds = 0\n`).
    pub fn install_with(
        switch: &Switch,
        esl_port: u16,
        users: &[(&str, &str)],
        extra: &str,
    ) -> Callrec {
        let dir = tempfile::Builder::new()
            .prefix("callrec-rs-")
            .tempdir()
            .expect("a temp dir for callrec");
        let api = free_addr();
        let prompts = workspace_root()
            .join("prompts")
            .canonicalize()
            .expect("prompts/");
        std::fs::create_dir_all(dir.path().join("spool")).expect("spool dir");
        let config = format!(
            "[esl]\nhost = \"127.0.0.1\"\nport = {esl_port}\npassword = \"{ESL_PASSWORD}\"\n\
             reconnect_max_secs = 2\n\
             [feature_codes]\nlisten = \"{fc}\"\n\
             [api]\nlisten = \"{api}\"\n\
             [storage]\ndata_dir = \"{data}\"\nspool_dir = \"{spool}\"\nspool_scan_secs = 5\n\
             [prompts]\ndir = \"{prompts}\"\n\
             [log]\nlevel = \"info,callrec_daemon=debug\"\n",
            fc = switch.feature_codes,
            data = dir.path().join("data").display(),
            spool = dir.path().join("spool").display(),
            prompts = prompts.display(),
        ) + extra;
        std::fs::write(dir.path().join("callrec.toml"), config).expect("config written");
        let mut callrec = Callrec {
            dir,
            api,
            feature_codes: switch.feature_codes,
            token: String::new(),
            child: None,
            serves: 0,
        };
        callrec.cli(&["migrate"]);
        for (ext, mode) in users {
            callrec.cli(&["user", "add", ext, "--mode", mode]);
        }
        callrec.cli(&["user", "add", "1099", "--admin"]);
        callrec.token = callrec.cli(&["token", "create", "1099"]).trim().to_owned();
        callrec
    }

    /// [`Callrec::install`] on the switch's own Event Socket, then `callrec serve`.
    pub fn start(switch: &Switch, users: &[(&str, &str)]) -> Callrec {
        let mut callrec = Callrec::install(switch, switch.esl_port, users);
        callrec.serve();
        callrec
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(binary());
        cmd.args(args)
            .env_clear()
            .env("USER", "tester")
            .env("CALLREC_CONFIG", self.dir.path().join("callrec.toml"))
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `callrec <args>` to completion; its stdout. Fails the test if it fails.
    #[track_caller]
    pub fn cli(&self, args: &[&str]) -> String {
        let out = self.command(args).output().expect("callrec runs");
        assert!(
            out.status.success(),
            "callrec {args:?}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Adds `line` (`key = value`) to the config file's `[esl]` section, before a serve.
    pub fn esl_option(&self, line: &str) {
        let path = self.dir.path().join("callrec.toml");
        let config = std::fs::read_to_string(&path).expect("config read");
        let config = config.replacen("[esl]\n", &format!("[esl]\n{line}\n"), 1);
        std::fs::write(&path, config).expect("config written");
    }

    /// Starts `callrec serve` without waiting for it to connect.
    pub fn spawn(&mut self) {
        self.serves += 1;
        let log = std::fs::File::create(self.log_path(self.serves)).expect("log file");
        let child = self
            .command(&["serve"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("callrec serve starts");
        self.child = Some(child);
    }

    /// Starts `callrec serve` and waits until `/readyz` says it is ready (index open, Event
    /// Socket connected).
    pub fn serve(&mut self) {
        self.spawn();
        self.wait_ready(Duration::from_secs(30));
    }

    /// Waits until `/readyz` answers 200.
    #[track_caller]
    pub fn wait_ready(&mut self, within: Duration) {
        eventually(within, "callrec to be ready", || {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("callrec serve exited: {status}\n{}", self.log());
            }
            let ready = http::request(self.api, "GET", "/readyz", None, None).ok()?;
            (ready.status == 200).then_some(())
        });
    }

    /// SIGKILL, and reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn log_path(&self, n: usize) -> PathBuf {
        self.dir.path().join(format!("serve-{n}.log"))
    }

    /// Everything the daemon(s) logged so far.
    pub fn log(&self) -> String {
        (1..=self.serves)
            .map(|n| std::fs::read_to_string(self.log_path(n)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n--- restarted ---\n")
    }

    /// The spool directory the switch writes into.
    pub fn spool(&self) -> PathBuf {
        self.dir.path().join("spool")
    }

    /// Where this installation lives.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// One API request with the admin token.
    pub fn http(&self, method: &str, path: &str) -> Reply {
        http::request(self.api, method, path, Some(&self.token), None)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// A 2xx JSON reply, parsed.
    #[track_caller]
    pub fn json(&self, method: &str, path: &str) -> Value {
        let reply = self.http(method, path);
        assert!(
            (200..300).contains(&reply.status),
            "{method} {path}: {} {}",
            reply.status,
            reply.text()
        );
        serde_json::from_slice(&reply.body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}: {}", reply.text()))
    }

    /// Every recording the index has (any state), newest first.
    pub fn recordings(&self) -> Vec<Value> {
        self.json("GET", "/api/v1/recordings?limit=500")["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Every recording a search lists, all pages (`next_cursor` followed). `filter` is more
    /// query parameters, e.g. `state=discarded` (by default a search lists `stored` and
    /// `failed`).
    pub fn all_recordings(&self, filter: &str) -> Vec<Value> {
        let mut all = Vec::new();
        let base = format!("/api/v1/recordings?limit=500&{filter}");
        let mut path = base.clone();
        loop {
            let page = self.json("GET", &path);
            all.extend(page["items"].as_array().cloned().unwrap_or_default());
            match page["next_cursor"].as_str() {
                Some(cursor) => path = format!("{base}&cursor={cursor}"),
                None => return all,
            }
        }
    }

    /// The process id of the running `callrec serve`.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// One recording's metadata (with segments).
    pub fn recording(&self, id: &str) -> Value {
        self.json("GET", &format!("/api/v1/recordings/{id}"))
    }

    /// Calls in progress.
    pub fn calls(&self) -> Vec<Value> {
        let calls = self.json("GET", "/api/v1/calls");
        calls["items"]
            .as_array()
            .or(calls.as_array())
            .cloned()
            .unwrap_or_default()
    }

    /// Waits for a call in progress whose recording state is `state`; returns it.
    #[track_caller]
    pub fn call_in(&self, state: &str, within: Duration) -> Value {
        eventually(
            within,
            &format!("a call whose recording is {state}"),
            || self.calls().into_iter().find(|c| c["recording"] == state),
        )
    }

    /// Waits until `n` recordings are in a final state (not `recording`), then checks that
    /// there are exactly `n` and that they are all `stored`. Returns them. Discarded ones
    /// count as finished, so a recording the switch dropped fails here with its reason.
    #[track_caller]
    pub fn stored(&self, n: usize, within: Duration) -> Vec<Value> {
        let all = eventually(within, &format!("{n} finished recording(s)"), || {
            let mut all = self.recordings();
            all.extend(self.all_recordings("state=discarded"));
            (all.iter().filter(|r| r["state"] != "recording").count() >= n).then_some(all)
        });
        assert_eq!(all.len(), n, "exactly {n} recording(s): {all:#?}");
        for r in &all {
            assert_eq!(r["state"], "stored", "{r:#}\n{}", self.log_tail(60));
        }
        all
    }

    /// The recording's audio, downloaded through the API, parsed.
    #[track_caller]
    pub fn wav(&self, id: &str) -> Wav {
        let reply = self.http("GET", &format!("/api/v1/recordings/{id}/audio"));
        assert_eq!(reply.status, 200, "audio of {id}: {}", reply.text());
        Wav::parse(&reply.body).unwrap_or_else(|| panic!("the audio of {id} is not a WAV"))
    }

    /// The last `lines` lines the daemon logged.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<_> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Callrec {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let dir =
                std::mem::replace(&mut self.dir, tempfile::tempdir().expect("placeholder dir"));
            eprintln!("callrec files kept in {}", dir.path().display());
            let _ = dir.keep();
        }
    }
}

/// The kinds of a recording's segments, in order (`start`, `pause`, ...).
pub fn segment_kinds(rec: &Value) -> Vec<String> {
    segment_field(rec, "kind")
}

/// The sources of a recording's segments, in order (`policy`, `handset`, `api`).
pub fn segment_sources(rec: &Value) -> Vec<String> {
    segment_field(rec, "source")
}

fn segment_field(rec: &Value, field: &str) -> Vec<String> {
    rec["segments"]
        .as_array()
        .map(|s| {
            s.iter()
                .map(|s| s[field].as_str().unwrap_or("?").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

//! `callrec serve` against a real FreeSWITCH (issue 9): calls placed on the switch, recordings
//! checked through the API and in the WAV files the switch wrote.
//!
//! Not part of `cargo test --workspace`: the target needs the `real-switch` feature and a
//! built switch. `scripts/real-switch.sh` builds or reuses FreeSWITCH from
//! `../shared/freeswitch` (or uses `CALLREC_FREESWITCH_PREFIX`), installs the project's own
//! `dialplan/callrec.xml` into it and runs this target with `--test-threads=1`: every test
//! starts the switch on its fixed ports (ESL 8021, SIP 5060) and stops it, so they cannot
//! run side by side.
//!
//! Calls are loopback originates (`loopback/9999/default`: the B leg answers and plays a
//! 440 Hz tone, 1 s on and 0.5 s off; the A leg parks), with `callrec_user=1001` on both legs
//! so that the call is 1001's, as an authenticated phone's would be.

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Where the switch is installed (`scripts/real-switch.sh` sets it).
fn prefix() -> PathBuf {
    PathBuf::from(
        std::env::var("CALLREC_FREESWITCH_PREFIX")
            .unwrap_or_else(|_| "/opt/freeswitch-test".into()),
    )
}

/// Polls `check` every 100 ms until it returns `Some`, or fails the test naming `what`.
#[track_caller]
fn eventually<T>(within: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        sleep(Duration::from_millis(100));
    }
}

/// A running FreeSWITCH; stopped (and killed if it will not stop) when dropped.
struct Switch {
    prefix: PathBuf,
}

impl Switch {
    fn start() -> Switch {
        let prefix = prefix();
        let bin = prefix.join("bin/freeswitch");
        assert!(
            bin.exists(),
            "no FreeSWITCH at {}: run scripts/real-switch.sh",
            bin.display()
        );
        let switch = Switch { prefix };
        // A switch left running by an earlier, interrupted run would answer on our ports.
        if switch.api_ok("status").is_some() {
            switch.stop();
        }
        let status = Command::new(&bin)
            .args(["-nc", "-nonat"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("start freeswitch");
        assert!(status.success(), "freeswitch -nc exited {status}");
        eventually(Duration::from_secs(60), "the switch to be up", || {
            switch.api_ok("status").filter(|s| s.contains("is ready"))
        });
        switch
    }

    /// `fs_cli -x <cmd>`; `None` if fs_cli could not talk to the switch.
    fn api_ok(&self, cmd: &str) -> Option<String> {
        let out = Command::new(self.prefix.join("bin/fs_cli"))
            .args(["-x", cmd])
            .stdin(Stdio::null())
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.success() && !text.contains("[ERROR] fs_cli")).then_some(text)
    }

    #[track_caller]
    fn api(&self, cmd: &str) -> String {
        self.api_ok(cmd)
            .unwrap_or_else(|| panic!("fs_cli -x {cmd:?} failed"))
    }

    /// Places a loopback call that is 1001's, answered at once by the tone extension, hung up
    /// by the switch `talk_secs` after answer. Returns the A leg's uuid.
    fn call(&self, uuid: &str, talk_secs: u32) -> String {
        let reply = self.api(&format!(
            "originate {{origination_uuid={uuid},callrec_user=1001,\
             execute_on_answer='sched_hangup +{talk_secs} normal_clearing'}}loopback/9999/default &park"
        ));
        assert!(reply.starts_with("+OK"), "originate: {reply}");
        uuid.to_owned()
    }

    /// Dials a feature code as 1001 (a loopback leg to `*48` etc. in the default context).
    fn dial_feature_code(&self, code: &str) {
        let reply = self.api(&format!(
            "originate {{callrec_user=1001,origination_caller_id_number=1001}}loopback/{code}/default &park"
        ));
        // The listener hangs the feature call up once it played its prompt, which may be
        // before originate returns.
        assert!(
            reply.starts_with("+OK") || reply.contains("NORMAL_CLEARING"),
            "originate {code}: {reply}"
        );
    }

    fn channel_count(&self) -> usize {
        let text = self.api("show channels count");
        text.split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(usize::MAX)
    }

    fn pid(&self) -> Option<i32> {
        let pid_file = self.prefix.join("var/run/freeswitch/freeswitch.pid");
        std::fs::read_to_string(pid_file).ok()?.trim().parse().ok()
    }

    fn stop(&self) {
        let pid = self.pid();
        let _ = Command::new(self.prefix.join("bin/freeswitch"))
            .arg("-stop")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while let Some(pid) = pid {
            if !alive(pid) {
                break;
            }
            if Instant::now() > deadline {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
                break;
            }
            sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        self.stop();
    }
}

fn alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| s.split_whitespace().nth(2) == Some("Z"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `callrec serve` with its own data dir, one user (1001) and an admin token.
struct Callrec {
    dir: tempfile::TempDir,
    api: String,
    token: String,
    child: Option<Child>,
}

impl Callrec {
    /// Sets up the index with user 1001 in `mode`, then starts the daemon.
    fn start(mode: &str) -> Callrec {
        let dir = tempfile::tempdir().expect("tempdir");
        let api = format!("127.0.0.1:{}", free_port());
        let prompts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../prompts");
        let config = format!(
            "[esl]\nhost = \"127.0.0.1\"\nport = 8021\npassword = \"ClueCon\"\n\
             [feature_codes]\nlisten = \"127.0.0.1:8084\"\n\
             [api]\nlisten = \"{api}\"\n\
             [storage]\ndata_dir = \"{data}\"\nspool_dir = \"{spool}\"\nspool_scan_secs = 5\n\
             [prompts]\ndir = \"{prompts}\"\n",
            data = dir.path().join("data").display(),
            spool = dir.path().join("spool").display(),
            prompts = prompts.canonicalize().expect("prompts dir").display(),
        );
        std::fs::create_dir_all(dir.path().join("spool")).expect("spool dir");
        std::fs::write(dir.path().join("callrec.toml"), config).expect("config");
        let mut callrec = Callrec {
            dir,
            api,
            token: String::new(),
            child: None,
        };
        callrec.cli(&["migrate"]);
        callrec.cli(&["user", "add", "1001", "--mode", mode]);
        callrec.cli(&["user", "add", "1099", "--admin"]);
        callrec.token = callrec.cli(&["token", "create", "1099"]).trim().to_owned();
        callrec.serve();
        callrec
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_callrec"));
        cmd.args(args)
            .env_clear()
            .env("USER", "tester")
            .env("CALLREC_CONFIG", self.dir.path().join("callrec.toml"))
            .stdin(Stdio::null());
        cmd
    }

    #[track_caller]
    fn cli(&self, args: &[&str]) -> String {
        let out = self.command(args).output().expect("run callrec");
        assert!(
            out.status.success(),
            "callrec {args:?}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts `callrec serve` and waits until it is ready (index open, ESL connected).
    fn serve(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("serve.log")).expect("log file");
        let child = self
            .command(&["serve"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn callrec serve");
        self.child = Some(child);
        eventually(Duration::from_secs(30), "callrec to be ready", || {
            let (status, _) = self.http("GET", "/readyz");
            (status == 200).then_some(())
        });
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// One HTTP request to the API (curl), with the admin token. Returns status and body.
    fn http(&self, method: &str, path: &str) -> (u16, String) {
        let out = Command::new("curl")
            .args(["-s", "-o", "-", "-w", "\n%{http_code}", "-X", method])
            .arg("-H")
            .arg(format!("Authorization: Bearer {}", self.token))
            .arg(format!("http://{}{path}", self.api))
            .output();
        let Ok(out) = out else {
            return (0, String::new());
        };
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_owned())
    }

    #[track_caller]
    fn json(&self, method: &str, path: &str) -> Value {
        let (status, body) = self.http(method, path);
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {body}"
        );
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{method} {path}: {e}: {body}"))
    }

    /// Recordings with a file (stored or failed: the API's default).
    fn recordings(&self) -> Vec<Value> {
        self.in_state(None)
    }

    /// Recordings in one state (`recording`, `discarded`, …), or the default listing.
    fn in_state(&self, state: Option<&str>) -> Vec<Value> {
        let filter = state.map(|s| format!("&state={s}")).unwrap_or_default();
        self.json("GET", &format!("/api/v1/recordings?limit=500{filter}"))["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The first call in progress (`GET /calls`) whose recording is `state`.
    fn call_whose_recording_is(&self, state: &str) -> Option<Value> {
        let calls = self.json("GET", "/api/v1/calls");
        let calls = calls["items"].as_array().or(calls.as_array())?.clone();
        calls.into_iter().find(|c| c["recording"] == state)
    }

    /// Waits until the switch is recording a call (a row in state `recording`).
    #[track_caller]
    fn recording_started(&self) {
        eventually(Duration::from_secs(10), "a recording to start", || {
            (self.in_state(Some("recording")).len() == 1).then_some(())
        });
    }

    /// Waits until `n` recordings are stored (and no more appear), returning them.
    #[track_caller]
    fn stored(&self, n: usize, within: Duration) -> Vec<Value> {
        let deadline = Instant::now() + within;
        let all = loop {
            let all = self.recordings();
            if all.iter().filter(|r| r["state"] == "stored").count() >= n {
                break all;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {within:?} waiting for {n} stored recording(s): {all:#?}\n\
                 still recording: {:#?}\ndiscarded: {:#?}\n{}",
                self.in_state(Some("recording")),
                self.in_state(Some("discarded")),
                self.log()
            );
            sleep(Duration::from_millis(200));
        };
        assert_eq!(
            all.len(),
            n,
            "exactly {n} recording(s): {all:#?}\n{}",
            self.log()
        );
        all
    }

    /// The stored WAV of a recording, downloaded through the API.
    fn wav(&self, id: &str) -> Wav {
        let path = self.dir.path().join(format!("{id}.wav"));
        let status = Command::new("curl")
            .args(["-s", "-f", "-o"])
            .arg(&path)
            .arg("-H")
            .arg(format!("Authorization: Bearer {}", self.token))
            .arg(format!("http://{}/api/v1/recordings/{id}/audio", self.api))
            .status()
            .expect("curl");
        assert!(status.success(), "download of {id}");
        Wav::read(&path)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default()
    }
}

impl Drop for Callrec {
    fn drop(&mut self) {
        self.kill();
    }
}

/// 16-bit mono PCM samples of a WAV file and its rate.
struct Wav {
    rate: u32,
    samples: Vec<i16>,
}

impl Wav {
    fn read(path: &Path) -> Wav {
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .expect("read wav");
        assert!(
            bytes.len() >= 44 && &bytes[..4] == b"RIFF",
            "not a WAV: {}",
            path.display()
        );
        let rate = u32::from_le_bytes([bytes[24], bytes[25], bytes[26], bytes[27]]);
        // Find the data chunk (FreeSWITCH writes it right after fmt, but do not rely on it).
        let mut at = 12;
        let mut data = &bytes[0..0];
        while at + 8 <= bytes.len() {
            let len =
                u32::from_le_bytes([bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7]])
                    as usize;
            if &bytes[at..at + 4] == b"data" {
                data = &bytes[at + 8..(at + 8 + len).min(bytes.len())];
                break;
            }
            at += 8 + len + (len & 1);
        }
        let samples = data
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        Wav { rate, samples }
    }

    fn seconds(&self) -> f64 {
        self.samples.len() as f64 / f64::from(self.rate)
    }

    /// The longest run of silence (every sample within ±2), as times in seconds.
    fn longest_silence(&self) -> (f64, f64) {
        let (mut best, mut start) = ((0, 0), None);
        for (i, s) in self.samples.iter().chain([&i16::MAX]).enumerate() {
            match (s.unsigned_abs() <= 2, start) {
                (true, None) => start = Some(i),
                (false, Some(from)) => {
                    if i - from > best.1 - best.0 {
                        best = (from, i);
                    }
                    start = None;
                }
                _ => {}
            }
        }
        let secs = |i: usize| i as f64 / f64::from(self.rate);
        (secs(best.0), secs(best.1))
    }

    /// The loudest sample between two times (seconds from the start).
    fn peak(&self, from: f64, to: f64) -> i32 {
        let at = |t: f64| ((t * f64::from(self.rate)) as usize).min(self.samples.len());
        self.samples[at(from)..at(to)]
            .iter()
            .map(|s| i32::from(*s).abs())
            .max()
            .unwrap_or(0)
    }
}

fn segments(rec: &Value) -> Vec<String> {
    rec["segments"]
        .as_array()
        .map(|s| {
            s.iter()
                .map(|s| s["kind"].as_str().unwrap_or("?").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn an_always_mode_call_is_recorded_once_from_answer_to_hangup() {
    let switch = Switch::start();
    let callrec = Callrec::start("always");
    switch.call("c0ffee00-0000-4000-8000-000000000001", 6);
    let recs = callrec.stored(1, Duration::from_secs(30));
    let rec = &recs[0];
    assert_eq!(rec["user"], "1001");
    let wav = callrec.wav(rec["id"].as_str().unwrap());
    assert_eq!(wav.rate, 8000);
    // Six seconds of talk; a loopback leg's recording ends about 0.5 s early (mod_loopback
    // queues frames; ../shared/freeswitch/README.md), and reacting to the answer costs a frame
    // or two. (Calls of 4 s lose enough to fall under min_seconds = 3 now and then and are
    // discarded: issue 9's "no audio lost" part, not yet done.)
    assert!(
        (5.0..=6.6).contains(&wav.seconds()),
        "a 6 s call gave {:.2} s of audio",
        wav.seconds()
    );
    assert!(wav.peak(0.0, 1.0) > 1000, "the tone is in the recording");
    assert_eq!(switch.channel_count(), 0);
}

#[test]
fn a_never_mode_call_is_not_recorded() {
    let switch = Switch::start();
    let callrec = Callrec::start("never");
    switch.call("c0ffee00-0000-4000-8000-000000000002", 2);
    eventually(Duration::from_secs(15), "the call to end", || {
        (switch.channel_count() == 0).then_some(())
    });
    // The spool scan (5 s) would have picked up any file by now.
    sleep(Duration::from_secs(6));
    assert!(
        callrec.recordings().is_empty(),
        "{:#?}",
        callrec.recordings()
    );
    let spool: Vec<_> = std::fs::read_dir(callrec.dir.path().join("spool"))
        .unwrap()
        .collect();
    assert!(spool.is_empty(), "nothing written to the spool: {spool:?}");
}

#[test]
fn a_pause_and_resume_through_the_api_leave_silence_and_segments() {
    let switch = Switch::start();
    let callrec = Callrec::start("always_pausable");
    let uuid = switch.call("c0ffee00-0000-4000-8000-000000000003", 9);
    let call = eventually(Duration::from_secs(10), "the call to be recording", || {
        callrec.call_whose_recording_is("recording")
    });
    let leg = call["call_uuid"].as_str().unwrap().to_owned();
    assert!(
        leg == uuid || !leg.is_empty(),
        "the call listed is the one placed"
    );
    sleep(Duration::from_secs(2));
    let paused = callrec.json("POST", &format!("/api/v1/calls/{leg}/recording/pause"));
    assert_eq!(paused["recording"], "paused");
    sleep(Duration::from_secs(3));
    let resumed = callrec.json("POST", &format!("/api/v1/calls/{leg}/recording/resume"));
    assert_eq!(resumed["recording"], "recording");

    let recs = callrec.stored(1, Duration::from_secs(30));
    let id = recs[0]["id"].as_str().unwrap().to_owned();
    let rec = callrec.json("GET", &format!("/api/v1/recordings/{id}"));
    assert_eq!(
        segments(&rec),
        ["start", "pause", "resume", "stop"],
        "{rec:#}"
    );
    assert!(rec["paused_ms"].as_i64().unwrap_or(0) >= 2500, "{rec:#}");
    let wav = callrec.wav(&id);
    // Masked (pause_behavior = silence): the timeline is kept and the paused stretch is
    // silence, though the tone played on; the audio around it is not. Where the stretch lies
    // in the file is read from the segments (the switch's clock), a frame's margin either side.
    assert!(
        (7.0..=9.6).contains(&wav.seconds()),
        "{:.2} s",
        wav.seconds()
    );
    let at = |kind: &str| {
        let t = |v: &Value| {
            chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap())
                .unwrap()
                .timestamp_millis()
        };
        let seg = rec["segments"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["kind"] == kind)
            .unwrap();
        (t(&seg["at"]) - t(&rec["started_at"])) as f64 / 1000.0
    };
    let (paused, resumed) = (at("pause"), at("resume"));
    assert!(
        resumed - paused >= 2.5,
        "paused {paused:.2} s, resumed {resumed:.2} s"
    );
    // The tone pauses 0.5 s in every 1.5 s by itself; the mask is the one long silence, as
    // long as the pause (the file keeps the timeline), with the tone on both sides of it.
    let (from, to) = wav.longest_silence();
    assert!(
        to - from >= resumed - paused - 0.3,
        "a silence as long as the pause ({paused:.2}-{resumed:.2} s after answer): \
         longest is {from:.2}-{to:.2} s"
    );
    assert!(
        wav.peak(0.0, from) > 1000,
        "before the pause the tone is there"
    );
    assert!(
        wav.peak(to, wav.seconds()) > 1000,
        "after the resume the tone is back"
    );
}

#[test]
fn pause_is_refused_in_always_mode() {
    let switch = Switch::start();
    let callrec = Callrec::start("always");
    switch.call("c0ffee00-0000-4000-8000-000000000004", 6);
    let leg = eventually(Duration::from_secs(10), "the call to be recording", || {
        callrec.call_whose_recording_is("recording")
    })["call_uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = callrec.http("POST", &format!("/api/v1/calls/{leg}/recording/pause"));
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("not_allowed"), "{body}");
    let recs = callrec.stored(1, Duration::from_secs(30));
    let rec = callrec.json(
        "GET",
        &format!("/api/v1/recordings/{}", recs[0]["id"].as_str().unwrap()),
    );
    assert_eq!(segments(&rec), ["start", "stop"]);
}

#[test]
fn star_48_and_star_49_from_the_handset_pause_and_resume_the_users_call() {
    let switch = Switch::start();
    let callrec = Callrec::start("always_pausable");
    switch.call("c0ffee00-0000-4000-8000-000000000005", 12);
    eventually(Duration::from_secs(10), "the call to be recording", || {
        callrec.call_whose_recording_is("recording")
    });
    // The user's only other call is the target (SPEC 3.5, step 2).
    switch.dial_feature_code("*48");
    eventually(
        Duration::from_secs(10),
        "*48 to pause the recording",
        || callrec.call_whose_recording_is("paused"),
    );
    sleep(Duration::from_secs(2));
    switch.dial_feature_code("*49");
    eventually(
        Duration::from_secs(10),
        "*49 to resume the recording",
        || callrec.call_whose_recording_is("recording"),
    );

    let recs = callrec.stored(1, Duration::from_secs(40));
    let rec = callrec.json(
        "GET",
        &format!("/api/v1/recordings/{}", recs[0]["id"].as_str().unwrap()),
    );
    assert_eq!(
        segments(&rec),
        ["start", "pause", "resume", "stop"],
        "{rec:#}"
    );
    let sources: Vec<_> = rec["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["source"].as_str().unwrap_or("?").to_owned())
        .collect();
    assert_eq!(sources, ["policy", "handset", "handset", "policy"]);
}

#[test]
fn callrec_killed_and_restarted_mid_call_stores_the_recording_once() {
    let switch = Switch::start();
    let mut callrec = Callrec::start("always");
    switch.call("c0ffee00-0000-4000-8000-000000000006", 8);
    callrec.recording_started();
    callrec.kill();
    sleep(Duration::from_secs(2));
    callrec.serve();
    let recs = callrec.stored(1, Duration::from_secs(40));
    let wav = callrec.wav(recs[0]["id"].as_str().unwrap());
    // The switch kept recording while callrec was down: the whole call is there.
    assert!(
        (6.5..=8.6).contains(&wav.seconds()),
        "{:.2} s",
        wav.seconds()
    );
}

#[test]
fn the_switch_shut_down_mid_call_leaves_the_recording_stored() {
    let switch = Switch::start();
    let callrec = Callrec::start("always");
    switch.call("c0ffee00-0000-4000-8000-000000000007", 30);
    callrec.recording_started();
    sleep(Duration::from_secs(3));
    // `fsctl shutdown` sends RECORD_STOP for each recording, then the disconnect notice.
    let _ = switch.api_ok("fsctl shutdown");
    let recs = callrec.stored(1, Duration::from_secs(40));
    let wav = callrec.wav(recs[0]["id"].as_str().unwrap());
    assert!(wav.seconds() >= 2.0, "{:.2} s", wav.seconds());
}

#[test]
fn a_few_hundred_concurrent_calls_are_each_stored_exactly_once() {
    const CALLS: usize = 200;
    let switch = Switch::start();
    let callrec = Callrec::start("always");
    for i in 0..CALLS {
        switch.call(&format!("c0ffee00-0000-4000-8000-{i:012}"), 10);
    }
    let recs = callrec.stored(CALLS, Duration::from_secs(180));
    let mut calls: Vec<_> = recs
        .iter()
        .map(|r| r["call_uuid"].as_str().unwrap().to_owned())
        .collect();
    calls.sort();
    calls.dedup();
    assert_eq!(calls.len(), CALLS, "one recording per call");
}

//! A real FreeSWITCH for one test: its own copy of the configuration (the loopback-only test
//! configuration of `../shared/freeswitch/configure.sh`, plus the project's
//! `dialplan/callrec.xml`), its own ports, log, database and run directories, run in the
//! foreground as a child of the test so that dropping it never leaves a switch behind.
//!
//! The binaries come from `CALLREC_FREESWITCH_PREFIX` (default `/opt/freeswitch-test`, where
//! `scripts/real-switch.sh` builds them); the installed configuration there is only copied,
//! never changed, so a user's own switch is left as it was.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::esl::Esl;
use crate::{eventually, free_port, workspace_root};

/// The Event Socket password of the test configuration.
pub const ESL_PASSWORD: &str = "ClueCon";

/// Where FreeSWITCH is installed.
pub fn prefix() -> PathBuf {
    std::env::var_os("CALLREC_FREESWITCH_PREFIX")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/freeswitch-test"))
}

/// The shared directory holding `freeswitch/configure.sh`.
pub fn shared_dir() -> PathBuf {
    std::env::var_os("CALLREC_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("../shared"))
}

/// A switch's home: configuration, ports and runtime directories, kept across restarts.
pub struct Switch {
    home: tempfile::TempDir,
    prefix: PathBuf,
    /// The Event Socket port.
    pub esl_port: u16,
    /// The SIP port of the `internal` profile.
    pub sip_port: u16,
    /// Where the installed dialplan sends `*44`, `*48` and `*49`.
    pub feature_codes: SocketAddr,
    child: Option<Child>,
}

impl Switch {
    /// Configures a switch whose feature codes go to `feature_codes` and starts it, with the
    /// project's dialplan files installed as the README says: `dialplan/callrec.xml` (the
    /// feature codes) and `dialplan/callrec-arm.xml` (in-switch arming).
    pub fn start(feature_codes: SocketAddr) -> Switch {
        Switch::start_with(feature_codes, true)
    }

    /// The same, with `dialplan/callrec-arm.xml` installed or not: without it callrec arms
    /// every leg over the Event Socket (the deployments that have not installed it).
    pub fn start_with(feature_codes: SocketAddr, arming: bool) -> Switch {
        let prefix = prefix();
        let bin = prefix.join("bin/freeswitch");
        assert!(
            bin.exists(),
            "no FreeSWITCH at {} (set CALLREC_FREESWITCH_PREFIX or run scripts/real-switch.sh)",
            bin.display()
        );
        let home = tempfile::Builder::new()
            .prefix("callrec-fs-")
            .tempdir()
            .expect("a temp dir for the switch");
        let mut switch = Switch {
            home,
            prefix,
            esl_port: free_port(),
            sip_port: free_port(),
            feature_codes,
            child: None,
        };
        switch.configure(arming);
        switch.launch();
        switch
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.home.path().join(name)
    }

    /// The configuration directory of this switch.
    pub fn conf_dir(&self) -> PathBuf {
        self.dir("etc/freeswitch")
    }

    fn configure(&self, arming: bool) {
        let source = std::env::var_os("CALLREC_FREESWITCH_CONF")
            .map(PathBuf::from)
            .unwrap_or_else(|| self.prefix.join("etc/freeswitch"));
        std::fs::create_dir_all(self.dir("etc")).expect("etc dir");
        let copied = Command::new("cp")
            .arg("-r")
            .arg(&source)
            .arg(self.conf_dir())
            .status()
            .expect("cp runs");
        assert!(copied.success(), "copying {}", source.display());
        let configure = shared_dir().join("freeswitch/configure.sh");
        let out = Command::new(&configure)
            .arg(self.home.path())
            .arg(self.esl_port.to_string())
            .output()
            .unwrap_or_else(|e| panic!("{}: {e}", configure.display()));
        assert!(
            out.status.success(),
            "{} failed: {}",
            configure.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        // Own SIP ports, so that two suites (or a switch already running) do not collide.
        let vars = self.conf_dir().join("vars.xml");
        let text = std::fs::read_to_string(&vars).expect("vars.xml");
        let text = text
            .replace(
                "internal_sip_port=5060",
                &format!("internal_sip_port={}", self.sip_port),
            )
            .replace(
                "internal_tls_port=5061",
                &format!("internal_tls_port={}", free_port()),
            );
        std::fs::write(&vars, text).expect("vars.xml written");
        // The project's own drop-in, installed as the README says, with the one address it
        // names set to the listener of this test (its comment says to keep the two equal).
        let shipped = std::fs::read_to_string(workspace_root().join("dialplan/callrec.xml"))
            .expect("dialplan/callrec.xml");
        let default_listen = "127.0.0.1:8084";
        assert_eq!(
            shipped.matches(default_listen).count(),
            2,
            "dialplan/callrec.xml names {default_listen} once in its comment and once in the socket"
        );
        let socket = format!("data=\"{default_listen} async full\"");
        assert!(
            shipped.contains(&socket),
            "dialplan/callrec.xml no longer has {socket}"
        );
        let installed = shipped.replace(
            &socket,
            &format!("data=\"{} async full\"", self.feature_codes),
        );
        std::fs::write(
            self.conf_dir().join("dialplan/default/callrec.xml"),
            installed,
        )
        .expect("dialplan installed");
        if arming {
            self.install_arming();
        }
        std::fs::write(
            self.conf_dir().join("dialplan/default/00_callrec_test.xml"),
            TEST_DIALPLAN,
        )
        .expect("test dialplan installed");
        for d in ["log", "run", "db", "temp", "recordings", "storage", "cache"] {
            std::fs::create_dir_all(self.dir(d)).expect("runtime dir");
        }
    }

    /// `dialplan/callrec-arm.xml` as its comment says: copied to `dialplan/callrec/arm.xml`
    /// and included first in the `default` context.
    fn install_arming(&self) {
        let dialplan = self.conf_dir().join("dialplan");
        std::fs::create_dir_all(dialplan.join("callrec")).expect("dialplan/callrec dir");
        std::fs::copy(
            workspace_root().join("dialplan/callrec-arm.xml"),
            dialplan.join("callrec/arm.xml"),
        )
        .expect("dialplan/callrec-arm.xml installed");
        let default = dialplan.join("default.xml");
        let text = std::fs::read_to_string(&default).expect("dialplan/default.xml");
        let context = "<context name=\"default\">";
        assert_eq!(text.matches(context).count(), 1, "one default context");
        let text = text.replace(
            context,
            &format!("{context}\n    <X-PRE-PROCESS cmd=\"include\" data=\"callrec/arm.xml\"/>"),
        );
        std::fs::write(&default, text).expect("dialplan/default.xml written");
    }

    fn launch(&mut self) {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir("console.log"))
            .expect("console log");
        let err = out.try_clone().expect("console log");
        let mut cmd = Command::new(self.prefix.join("bin/freeswitch"));
        cmd.args(["-nf", "-nc", "-nonat"]);
        for (flag, dir) in [
            ("-conf", "etc/freeswitch"),
            ("-log", "log"),
            ("-run", "run"),
            ("-db", "db"),
            ("-temp", "temp"),
            ("-recordings", "recordings"),
            ("-storage", "storage"),
            ("-cache", "cache"),
        ] {
            cmd.arg(flag).arg(self.dir(dir));
        }
        let child = cmd
            .current_dir(self.home.path())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("freeswitch starts");
        self.child = Some(child);
        let port = self.esl_port;
        eventually(Duration::from_secs(60), "the switch to be ready", || {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "freeswitch exited at start: {status}\n{}",
                    self.log_tail(40)
                );
            }
            let mut esl = Esl::connect(port, ESL_PASSWORD).ok()?;
            esl.api("status")
                .ok()
                .filter(|s| s.contains("is ready"))
                .map(|_| ())
        });
    }

    /// An Event Socket connection to the switch.
    pub fn esl(&self) -> Esl {
        Esl::connect(self.esl_port, ESL_PASSWORD)
            .unwrap_or_else(|e| panic!("ESL to the switch on {}: {e}", self.esl_port))
    }

    /// `api <command>` on a fresh connection: the reply.
    #[track_caller]
    pub fn api(&self, command: &str) -> String {
        self.esl()
            .api(command)
            .unwrap_or_else(|e| panic!("api {command}: {e}"))
    }

    /// Places a loopback call to the tone extension (9999: answers, plays 440 Hz 1 s on,
    /// 0.5 s off) with `vars` on both legs, hung up by the switch `talk_secs` after answer.
    /// Blocks until answered; returns the A leg's uuid.
    #[track_caller]
    pub fn call(&self, vars: &str, talk_secs: u32) -> String {
        self.call_to("9999", vars, talk_secs)
    }

    /// Like [`Switch::call`], to `destination` in the default context.
    #[track_caller]
    pub fn call_to(&self, destination: &str, vars: &str, talk_secs: u32) -> String {
        let uuid = new_uuid();
        let reply = self.api(&format!(
            "originate {{origination_uuid={uuid},{vars},\
             execute_on_answer='sched_hangup +{talk_secs} normal_clearing'}}loopback/{destination}/default &park"
        ));
        assert!(reply.starts_with("+OK"), "originate: {reply}");
        uuid
    }

    /// Dials a feature code as the user `callrec_user` names (as an authenticated phone
    /// would: the dialplan sends it to callrec's listener, which answers, plays a prompt and
    /// hangs up). Returns once the switch has taken the call.
    #[track_caller]
    pub fn dial(&self, code: &str, user: &str) {
        let reply = self.api(&format!(
            "originate {{callrec_user={user},origination_caller_id_number={user}}}loopback/{code}/default &park"
        ));
        // callrec may hang the feature call up before originate returns.
        assert!(
            reply.starts_with("+OK") || reply.contains("NORMAL_CLEARING"),
            "dialling {code}: {reply}"
        );
    }

    /// The switch's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Where the switch writes recordings a dialplan starts without a path (`-recordings`).
    pub fn recordings_dir(&self) -> PathBuf {
        self.dir("recordings")
    }

    /// How many channels the switch has.
    pub fn channel_count(&self) -> usize {
        let text = self.api("show channels count");
        text.split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(usize::MAX)
    }

    /// Waits until the switch has no channels left.
    #[track_caller]
    pub fn wait_idle(&self, within: Duration) {
        eventually(within, "the switch to have no channels", || {
            (self.channel_count() == 0).then_some(())
        });
    }

    /// Whether the switch process is running.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Kills the switch with SIGKILL (a crash), and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `fsctl shutdown` (what an operator or systemd does), then waits for the process to end.
    pub fn shutdown(&mut self) {
        // The switch may close the connection before it answers.
        if let Ok(mut esl) = Esl::connect(self.esl_port, ESL_PASSWORD) {
            let _ = esl.api("fsctl shutdown");
        }
        self.wait_exit(Duration::from_secs(60));
    }

    fn wait_exit(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        if let Some(child) = self.child.as_mut() {
            loop {
                if matches!(child.try_wait(), Ok(Some(_)) | Err(_)) {
                    break;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        self.child = None;
    }

    /// Starts the switch again on the same configuration and ports.
    pub fn restart(&mut self) {
        if self.running() {
            self.shutdown();
        }
        self.launch();
    }

    /// The last `lines` lines of the switch's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.dir("log/freeswitch.log")).unwrap_or_default();
        let all: Vec<_> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Where the switch keeps its files.
    pub fn home(&self) -> &Path {
        self.home.path()
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        if let Some(pid) = self.child.as_ref().and_then(|c| i32::try_from(c.id()).ok()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        self.wait_exit(Duration::from_secs(15));
        if std::thread::panicking() {
            let keep = self.home.path().to_owned();
            eprintln!("switch files kept in {}", keep.display());
            let dir = std::mem::replace(
                &mut self.home,
                tempfile::tempdir().expect("placeholder dir"),
            );
            let _ = dir.keep();
        }
    }
}

/// Test extensions beside the vanilla ones (9999 tone, 9998 park from configure.sh):
/// `9997` rings for 2 s (a 180, no media), then answers, starts a `record_session` of its
/// own (`early-<leg uuid>.wav`) and plays the 9999 tone (a call that rings first, as a
/// phone's does); `9995` is pre-answered and gives 2 s of early media
/// (a 183, as carriers' gateways send), then answers, hangs up 8 s later, starts two
/// `record_session`s of its own (`early-<leg uuid>.wav`, `early2-…`: the second one is the
/// floor of the benchmarks' comparisons) and plays the tone; `9994` does the same after
/// ringing 2 s without media (a 180, as a phone called rings); `9996` gives `callrec_bench_ring_ms` of early
/// media, answers, starts two `record_session`s
/// of its own (the reference recordings of the load benchmark, named by `callrec_bench_call`)
/// and plays the tone; `9993` does the same answering at once (no ringing, no early media:
/// as 9999, an IVR); `7<ext>` answers as the directory user `<ext>` (its leg's `callrec_user`), then plays the
/// tone: the other party of an internal call, with no phone registered.
const TEST_DIALPLAN: &str = r#"<include>
  <extension name="callrec_bench_reference">
    <condition field="destination_number" expression="^9996$">
      <action application="pre_answer"/>
      <action application="sleep" data="${callrec_bench_ring_ms}"/>
      <action application="answer"/>
      <action application="record_session" data="$${recordings_dir}/ref-${callrec_bench_call}.wav"/>
      <action application="record_session" data="$${recordings_dir}/ref2-${callrec_bench_call}.wav"/>
      <action application="playback" data="tone_stream://%(1000,500,440);loops=-1"/>
    </condition>
  </extension>
  <extension name="callrec_bench_reference_answered_at_once">
    <condition field="destination_number" expression="^9993$">
      <action application="answer"/>
      <action application="record_session" data="$${recordings_dir}/ref-${callrec_bench_call}.wav"/>
      <action application="record_session" data="$${recordings_dir}/ref2-${callrec_bench_call}.wav"/>
      <action application="playback" data="tone_stream://%(1000,500,440);loops=-1"/>
    </condition>
  </extension>
  <extension name="callrec_test_ringing_tone">
    <condition field="destination_number" expression="^9997$">
      <action application="ring_ready"/>
      <action application="sleep" data="2000"/>
      <action application="answer"/>
      <action application="record_session" data="$${recordings_dir}/early-${uuid}.wav"/>
      <action application="playback" data="tone_stream://%(1000,500,440);loops=-1"/>
    </condition>
  </extension>
  <extension name="callrec_test_early_media">
    <condition field="destination_number" expression="^9995$">
      <action application="pre_answer"/>
      <action application="sleep" data="2000"/>
      <action application="answer"/>
      <action application="sched_hangup" data="+8 normal_clearing"/>
      <action application="record_session" data="$${recordings_dir}/early-${uuid}.wav"/>
      <action application="record_session" data="$${recordings_dir}/early2-${uuid}.wav"/>
      <action application="playback" data="tone_stream://%(1000,500,440);loops=-1"/>
    </condition>
  </extension>
  <extension name="callrec_test_ringing">
    <condition field="destination_number" expression="^9994$">
      <action application="ring_ready"/>
      <action application="sleep" data="2000"/>
      <action application="answer"/>
      <action application="sched_hangup" data="+8 normal_clearing"/>
      <action application="record_session" data="$${recordings_dir}/early-${uuid}.wav"/>
      <action application="record_session" data="$${recordings_dir}/early2-${uuid}.wav"/>
      <action application="playback" data="tone_stream://%(1000,500,440);loops=-1"/>
    </condition>
  </extension>
  <extension name="callrec_test_internal">
    <condition field="destination_number" expression="^7(10[0-9][0-9])$">
      <action application="set" data="callrec_user=$1"/>
      <action application="answer"/>
      <action application="playback" data="tone_stream://%(1000,500,440);loops=-1"/>
    </condition>
  </extension>
</include>
"#;

/// A fresh call uuid.
pub fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

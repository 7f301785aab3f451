//! A test bed: the daemon, the simulated switch and a fresh index, wired as in production
//! but on ephemeral ports and a temporary directory. Tests poll against deadlines; none
//! sleeps a fixed time.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use callrec_config::Config;
use callrec_daemon::{Daemon, DaemonError, DaemonHandle, Listeners, Options};
use callrec_model::{PauseBehavior, RecordingId, RecordingMode, RecordingState};
use callrec_sim::{FeatureCallHandle, FeatureCallInfo, SimConfig, Simulator};
use callrec_store::{
    Access, NewUser, Recording, RecordingDetail, SearchQuery, SiteUpdate, StoreHandle,
};
use callrec_testkit::wait::{eventually, eventually_async, within};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The repository's prompts.
pub fn prompts_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../prompts")
}

/// What a bed starts with.
pub struct Setup {
    pub users: Vec<(&'static str, RecordingMode)>,
    pub pause: PauseBehavior,
    pub min_seconds: u32,
    pub max_pause_seconds: u32,
    pub password: String,
    /// Point the daemon at this port instead of the simulator's.
    pub esl_port: Option<u16>,
    /// `esl.event_format`.
    pub event_format: callrec_model::EventFormat,
    /// `[webhooks] urls` (signed with [`WEBHOOK_SECRET`]).
    pub webhooks: Vec<String>,
    /// `[storage] audit_head_file`.
    pub audit_head_file: Option<PathBuf>,
    /// The switch has the shipped `dialplan/callrec-arm.xml` (in-switch arming).
    pub dialplan_arming: bool,
}

/// `[webhooks] secret` of every test daemon.
pub const WEBHOOK_SECRET: &str = "test-webhook-secret";

impl Setup {
    pub fn users(users: &[(&'static str, RecordingMode)]) -> Setup {
        Setup {
            users: users.to_vec(),
            pause: PauseBehavior::Silence,
            min_seconds: 3,
            max_pause_seconds: 0,
            password: "ClueCon".into(),
            esl_port: None,
            event_format: callrec_model::EventFormat::Plain,
            webhooks: Vec::new(),
            audit_head_file: None,
            dialplan_arming: false,
        }
    }

    pub fn dialplan_arming(mut self) -> Setup {
        self.dialplan_arming = true;
        self
    }

    pub fn audit_head_file(mut self, path: PathBuf) -> Setup {
        self.audit_head_file = Some(path);
        self
    }

    pub fn webhooks(mut self, urls: &[String]) -> Setup {
        self.webhooks = urls.to_vec();
        self
    }

    pub fn pause(mut self, pause: PauseBehavior) -> Setup {
        self.pause = pause;
        self
    }

    pub fn max_pause(mut self, s: u32) -> Setup {
        self.max_pause_seconds = s;
        self
    }

    pub fn min_seconds(mut self, s: u32) -> Setup {
        self.min_seconds = s;
        self
    }
}

/// The daemon against a simulated switch.
pub struct Bed {
    pub sim: Arc<Simulator>,
    pub handle: DaemonHandle,
    pub store: StoreHandle,
    pub dir: TempDir,
    pub spool: PathBuf,
    pub feature_addr: std::net::SocketAddr,
    pub config: Config,
    task: Option<JoinHandle<Result<(), DaemonError>>>,
    stop: Option<oneshot::Sender<()>>,
}

impl Bed {
    /// A switch, an index with the users, the daemon connected.
    pub async fn start(setup: Setup) -> Bed {
        let bed = Bed::start_unconnected(setup, None).await;
        within(
            "the daemon to connect to the switch",
            bed.handle.wait_connected(),
        )
        .await;
        bed
    }

    /// The same; the daemon may not have connected yet (or never will). `sim` replaces the
    /// switch (one already started, possibly down).
    pub async fn start_unconnected(
        setup: Setup,
        sim: Option<(Arc<Simulator>, TempDir, PathBuf)>,
    ) -> Bed {
        // `RUST_LOG=callrec_daemon=debug cargo test -- --nocapture` shows what the daemon did.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let feature = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let feature_addr = feature.local_addr().unwrap();
        let (sim, dir, spool) = match sim {
            Some(s) => s,
            None => {
                let dir = tempfile::tempdir().unwrap();
                let spool = dir.path().join("spool");
                let sim = Simulator::start(SimConfig {
                    spool_dir: spool.clone(),
                    feature_code_socket: Some(feature_addr.to_string()),
                    dialplan_arming: setup.dialplan_arming,
                    ..SimConfig::default()
                })
                .await
                .unwrap();
                (Arc::new(sim), dir, spool)
            }
        };
        let data = dir.path().join("data");
        let store = StoreHandle::open(&data).unwrap();
        let users = setup.users.clone();
        let (pause, min_seconds, max_pause) =
            (setup.pause, setup.min_seconds, setup.max_pause_seconds);
        store
            .write(move |s| {
                s.update_site(
                    "default",
                    &SiteUpdate {
                        pause_behavior: Some(pause),
                        min_seconds: Some(min_seconds),
                        max_pause_seconds: Some(max_pause),
                        ..SiteUpdate::default()
                    },
                    "test",
                )?;
                for (ext, mode) in users {
                    let mut user = NewUser::new("default", ext);
                    user.mode = Some(mode);
                    s.add_user(&user, "test")?;
                }
                Ok(())
            })
            .await
            .unwrap();

        let mut config = Config::default();
        config.esl.host = "127.0.0.1".into();
        config.esl.port = setup.esl_port.unwrap_or(sim.esl_addr().port());
        config.esl.password = callrec_config::Secret::new(setup.password.clone());
        config.esl.reconnect_max_secs = 1;
        config.esl.event_format = setup.event_format;
        config.storage.data_dir = data;
        config.storage.spool_dir = spool.clone();
        config.storage.spool_scan_secs = 1;
        config.feature_codes.listen = feature_addr;
        config.prompts.dir = prompts_dir();
        config.webhooks.urls = setup.webhooks.clone();
        if let Some(path) = &setup.audit_head_file {
            config.storage.audit_head_file = path.display().to_string();
        }
        config.webhooks.secret = callrec_config::Secret::new(WEBHOOK_SECRET.to_owned());

        let daemon = Daemon::start(
            config.clone(),
            Listeners {
                feature_codes: feature,
            },
            Options {
                clock: Arc::new(sim.clock()),
                reconnect_initial: Duration::from_millis(20),
                store: Some(store.clone()),
                ..Options::default()
            },
        )
        .await
        .unwrap();
        let handle = daemon.handle();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(daemon.run(async {
            let _ = stopped.await;
        }));
        Bed {
            sim,
            handle,
            store,
            dir,
            spool,
            feature_addr,
            config,
            task: Some(task),
            stop: Some(stop),
        }
    }

    /// Moves the switch's clock.
    pub fn advance(&self, by: Duration) {
        self.sim.advance(by).unwrap();
    }

    /// Waits until the switch records these many channels, whatever the daemon knows.
    pub async fn recording_on_switch_only(&self, n: usize) {
        eventually(&format!("{n} recordings running on the switch"), || {
            (self.running_on_switch() == n).then_some(())
        })
        .await
    }

    /// Waits until the switch records these many channels and the daemon holds these many
    /// calls as recording. (The switch starts a recording armed on a ringing leg itself, as
    /// the leg answers, before the daemon has seen the answer.)
    pub async fn recording_on_switch(&self, n: usize) {
        eventually(&format!("{n} recordings running on the switch"), || {
            let held = self
                .handle
                .live_calls()
                .iter()
                .filter(|c| c.recording_id.is_some())
                .count();
            (self.running_on_switch() == n && held == n).then_some(())
        })
        .await
    }

    /// How many channels the switch records.
    fn running_on_switch(&self) -> usize {
        self.sim
            .channels()
            .iter()
            .filter(|c| !c.recording.is_empty())
            .count()
    }

    /// Every recording in the index, whatever its state.
    pub async fn recordings(&self) -> Vec<Recording> {
        let mut all = Vec::new();
        for state in RecordingState::ALL {
            let query = SearchQuery {
                state: Some(*state),
                limit: Some(500),
                ..SearchQuery::default()
            };
            let page = self
                .store
                .read(move |v| v.search(&Access::system("test"), &query))
                .await
                .unwrap();
            all.extend(page.items);
        }
        all
    }

    /// Waits until `n` recordings are in the index in `state`.
    pub async fn wait_recordings(&self, state: RecordingState, n: usize) -> Vec<Recording> {
        eventually_async(&format!("{n} recordings {state}"), || async {
            let all = self.recordings().await;
            let matching: Vec<Recording> =
                all.iter().filter(|r| r.state == state).cloned().collect();
            if matching.len() == n {
                Ok(matching)
            } else {
                Err(format!(
                    "the index has {all:#?}; the switch recorded {:#?}",
                    self.sim.recordings()
                ))
            }
        })
        .await
    }

    /// A recording with its segments.
    pub async fn detail(&self, id: &RecordingId) -> RecordingDetail {
        let id = id.clone();
        self.store
            .write(move |s| s.read_recording(&id, &Access::system("test")))
            .await
            .unwrap()
    }

    /// Dials a feature code and waits until the listener played its prompt; returns it
    /// (the file name).
    pub async fn dial(&self, user: &str, code: &str) -> (FeatureCallHandle, String) {
        let call = self.sim.dial_feature_code(user, code);
        let info: FeatureCallInfo =
            eventually(&format!("{user} dialling {code} to be answered"), || {
                self.sim
                    .feature_call(&call)
                    .filter(|i| !i.prompts.is_empty() || i.ended)
            })
            .await;
        let prompt = info
            .prompts
            .first()
            .map(|p| {
                std::path::Path::new(p)
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default()
            })
            .unwrap_or_else(|| format!("<none: {info:?}>"));
        (call, prompt)
    }

    /// Stops the daemon and starts a fresh one (empty memory) on the same switch, index and
    /// configuration, as a process restart would.
    pub async fn restart_daemon(mut self) -> Bed {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let task = self.task.take().expect("running");
        within("the daemon to stop", task)
            .await
            .expect("no panic")
            .expect("a clean stop");
        let feature = TcpListener::bind(self.feature_addr).await.unwrap();
        let daemon = Daemon::start(
            self.config.clone(),
            Listeners {
                feature_codes: feature,
            },
            Options {
                clock: Arc::new(self.sim.clock()),
                reconnect_initial: Duration::from_millis(20),
                store: Some(self.store.clone()),
                ..Options::default()
            },
        )
        .await
        .unwrap();
        let handle = daemon.handle();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(daemon.run(async {
            let _ = stopped.await;
        }));
        self.handle = handle;
        self.task = Some(task);
        self.stop = Some(stop);
        within("the new daemon to connect", self.handle.wait_connected()).await;
        self
    }

    /// Stops the daemon; returns how `run` ended.
    pub async fn stop(mut self) -> Result<(), DaemonError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let task = self.task.take().expect("running");
        within("the daemon to stop", task)
            .await
            .expect("the daemon task does not panic")
    }

    /// Waits for `run` to end on its own (a fatal error).
    pub async fn ended(mut self) -> Result<(), DaemonError> {
        let task = self.task.take().expect("running");
        within("the daemon to end", task)
            .await
            .expect("the daemon task does not panic")
    }
}

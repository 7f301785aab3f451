//! The running daemon: its long-lived tasks, supervised together, and the handle the API
//! uses.
//!
//! Tasks: the ESL session (reconnecting), the feature-code listener, the store writer
//! (operations in order, ingest through the store's worker), reconciliation with the periodic
//! spool scan, the directory follower, and the retention sweeper (which also purges the
//! portal's ended sessions and old failed sign-ins). A configuration error in
//! any of them (a wrong ESL password) stops the whole daemon; shutdown (SIGTERM in
//! production, a token in tests) stops taking work, lets feature calls in progress finish,
//! applies every store operation already decided, finishes in-flight ingests, and closes the
//! index.

use std::collections::HashSet;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use callrec_config::Config;
use callrec_model::{ActionError, Prompt, RecordingAction, RecordingId, SegmentSource};
use callrec_store::{
    IngestConfig, PortalPolicy, PortalPurge, ReconcileOptions, StoreError, StoreHandle,
    SweepOptions,
};
use freeswitch_esl_tokio::EventFormat;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::audit_head;
use crate::core::{Clock, Core, QueryError, system_clock};
use crate::directory::OwnerIndex;
use crate::esl::{self, EslConfigError, EslSettings};
use crate::feature::{self, FeatureSettings, Prompts};
use crate::metrics::{Metrics, encode_registry};
use crate::reconcile;
use crate::recorder::{ActionDone, IdSource, Recorder, Settings};
use crate::store_writer;
use callrec_model::LiveCall;
use callrec_webhooks::WebhookSettings;

/// The sockets the daemon serves on, bound by the caller (tests bind `127.0.0.1:0`).
#[derive(Debug)]
pub struct Listeners {
    /// Where FreeSWITCH's dialplan `socket` application connects for *48, *49, *44.
    pub feature_codes: TcpListener,
}

impl Listeners {
    /// Binds the addresses of the configuration.
    pub async fn bind(config: &Config) -> Result<Listeners, DaemonError> {
        let addr = config.feature_codes.listen;
        let feature_codes =
            TcpListener::bind(addr)
                .await
                .map_err(|source| DaemonError::Listen {
                    what: "feature_codes.listen",
                    addr: addr.to_string(),
                    source,
                })?;
        Ok(Listeners { feature_codes })
    }
}

/// Knobs tests turn; production uses [`Options::default`].
pub struct Options {
    /// Source of "now" for what no switch event timestamps.
    pub clock: Clock,
    /// First reconnect delay (doubling up to `esl.reconnect_max_secs`).
    pub reconnect_initial: Duration,
    /// New recording ids.
    pub ids: Option<IdSource>,
    /// An index already open (tests share it); otherwise it is opened under
    /// `storage.data_dir`.
    pub store: Option<StoreHandle>,
    /// Interval of the retention sweep; `None` takes `storage.sweep_interval_secs`.
    pub sweep_interval: Option<Duration>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            clock: system_clock(),
            reconnect_initial: Duration::from_millis(250),
            ids: None,
            store: None,
            sweep_interval: None,
        }
    }
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("reconnect_initial", &self.reconnect_initial)
            .finish_non_exhaustive()
    }
}

/// Why the daemon could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The switch refused the credentials or the ACL refused us: a configuration error.
    #[error(transparent)]
    Esl(#[from] EslConfigError),
    /// The index could not be opened or used.
    #[error("the index in {data_dir}: {source}")]
    Store {
        /// `storage.data_dir`.
        data_dir: PathBuf,
        /// What failed.
        source: StoreError,
    },
    /// A directory the daemon needs could not be created.
    #[error("cannot create {what} {path}: {source}")]
    Directory {
        /// Which setting.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A listening socket could not be bound.
    #[error("cannot listen on {addr} (`{what}`): {source}")]
    Listen {
        /// Which setting.
        what: &'static str,
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// A task ended in a way it never should.
    #[error("the {0} task stopped unexpectedly")]
    TaskFailed(&'static str),
    /// The demo could not play its script.
    #[error("demo: {0}")]
    Demo(String),
}

impl DaemonError {
    /// The process exit code: 78 (EX_CONFIG) for what only a configuration change can fix,
    /// so systemd's `RestartPreventExitStatus=78` stops retrying; 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            DaemonError::Esl(_) | DaemonError::Listen { .. } => 78,
            DaemonError::Directory { .. } => 78,
            DaemonError::Store { .. } | DaemonError::TaskFailed(_) | DaemonError::Demo(_) => 1,
        }
    }
}

/// Whether the daemon can do its job (`/readyz`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Readiness {
    /// The index is open.
    pub index_open: bool,
    /// The ESL session is up.
    pub esl_connected: bool,
}

impl Readiness {
    /// Both.
    pub fn is_ready(&self) -> bool {
        self.index_open && self.esl_connected
    }
}

/// What the API needs from the running daemon. Cheap to clone.
#[derive(Clone)]
pub struct DaemonHandle {
    core: Arc<Core>,
    store: StoreHandle,
    registry: Arc<Registry>,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for DaemonHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DaemonHandle").finish_non_exhaustive()
    }
}

impl DaemonHandle {
    /// Calls in progress, one entry per recorded user per call, oldest first.
    pub fn live_calls(&self) -> Vec<LiveCall> {
        self.core.recorder().live_calls()
    }

    /// Starts, stops, pauses or resumes the recording of a call in progress, with the same
    /// mode rules as the feature codes, and waits for the switch to confirm.
    /// `call_uuid` is a [`LiveCall::call_uuid`]; `actor` is recorded on the segment.
    pub async fn recording_action(
        &self,
        call_uuid: &str,
        action: RecordingAction,
        actor: &str,
        source: SegmentSource,
    ) -> Result<ActionDone, ActionError> {
        if !*self.core.esl_up.borrow() {
            return Err(ActionError::SwitchUnavailable {
                action: action.as_str(),
            });
        }
        let at = self.core.clock.now_micros();
        let plan = self
            .core
            .recorder()
            .recording_action(call_uuid, action, source, actor, at)?;
        self.core.run_action(plan).await
    }

    /// Readiness: index open and ESL connected.
    pub fn readiness(&self) -> Readiness {
        Readiness {
            index_open: true,
            esl_connected: *self.core.esl_up.borrow(),
        }
    }

    /// Waits until the ESL session is up (for tests and the demo).
    pub async fn wait_connected(&self) {
        let mut rx = self.core.esl_up.subscribe();
        let _ = rx.wait_for(|up| *up).await;
    }

    /// The daemon's metrics, as Prometheus text.
    pub fn metrics_text(&self) -> String {
        self.core.refresh_metrics();
        encode_registry(&self.registry)
    }

    /// The metrics, for code that reads values directly.
    pub fn metrics(&self) -> &Metrics {
        &self.core.metrics
    }

    /// The index, shared with the daemon.
    pub fn store(&self) -> &StoreHandle {
        &self.store
    }

    /// Asks the daemon to stop, as SIGTERM does.
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Cancelled when the daemon stops; long-lived tasks of the caller (the HTTP server) can
    /// stop with it.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }
}

/// A started daemon: the index open, the directory loaded, nothing running yet.
pub struct Daemon {
    handle: DaemonHandle,
    config: Config,
    listeners: Listeners,
    options_reconnect: Duration,
    sweep_interval: Duration,
    ops: mpsc::UnboundedReceiver<crate::core::StoreWork>,
    directory_version: u64,
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon").finish_non_exhaustive()
    }
}

fn esl_settings(config: &Config, reconnect_initial: Duration) -> EslSettings {
    let esl = &config.esl;
    EslSettings {
        host: esl.host.clone(),
        port: esl.port,
        user: esl.user.clone(),
        password: esl.password.expose().to_owned(),
        connect_timeout: esl.connect_timeout(),
        command_timeout: esl.command_timeout(),
        liveness_timeout: esl.liveness_timeout(),
        format: event_format(esl.event_format),
        queue_size: esl.event_queue_size,
        // Well short of the switch's own send-retry window, so a stall never truncates an
        // event on the wire; long enough to ride out a burst (see BENCHMARKS.md).
        block_budget: Duration::from_secs(1),
        reconnect_initial: reconnect_initial.min(esl.reconnect_max()),
        reconnect_max: esl.reconnect_max(),
    }
}

/// The ESL crate's name for the format (the one place its type meets ours).
fn event_format(format: callrec_model::EventFormat) -> EventFormat {
    match format {
        callrec_model::EventFormat::Plain => EventFormat::Plain,
        callrec_model::EventFormat::Json => EventFormat::Json,
        callrec_model::EventFormat::Xml => EventFormat::Xml,
    }
}

impl Daemon {
    /// Opens the index (applying migrations), finishes what a crash of the last run left in
    /// the store, creates the spool directory, loads the directory. Nothing connects yet.
    pub async fn start(
        config: Config,
        listeners: Listeners,
        options: Options,
    ) -> Result<Daemon, DaemonError> {
        let data_dir = store_writer::absolute(&config.storage.data_dir);
        let spool_dir = store_writer::absolute(&config.storage.spool_dir);
        tokio::fs::create_dir_all(&spool_dir)
            .await
            .map_err(|source| DaemonError::Directory {
                what: "storage.spool_dir",
                path: spool_dir.clone(),
                source,
            })?;
        let store_err = |source| DaemonError::Store {
            data_dir: data_dir.clone(),
            source,
        };
        let store = match options.store {
            Some(store) => store,
            None => {
                let dir = data_dir.clone();
                tokio::task::spawn_blocking(move || StoreHandle::open(dir))
                    .await
                    .map_err(|_| DaemonError::TaskFailed("index open"))?
                    .map_err(store_err)?
            }
        };
        let metrics = Arc::new(Metrics::default());
        reconcile_store(&store, &metrics).await;
        let urls = config.webhooks.urls.clone();
        store
            .write(move |s| s.sync_config_webhooks(&urls))
            .await
            .map_err(store_err)?;
        let dir = store.read(|v| v.directory()).await.map_err(store_err)?;
        let settings = Settings {
            spool_dir: spool_dir.display().to_string(),
            format: config.storage.format.extension().to_owned(),
            owner_headers: config.matching.headers.clone(),
            feature_codes: config.feature_codes.clone(),
            resumed_prompt: store_writer::absolute(&config.prompts.path(Prompt::Resumed))
                .display()
                .to_string(),
        };
        let ids = options
            .ids
            .unwrap_or_else(|| Box::new(callrec_model::RecordingId::new));
        let directory_version = dir.version;
        let recorder = Recorder::new(settings, OwnerIndex::new(dir), ids);
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let (ops_tx, ops) = mpsc::unbounded_channel();
        let query_timeout = config.esl.command_timeout();
        let core = Arc::new(Core::new(
            recorder,
            metrics,
            ops_tx,
            options.clock,
            query_timeout,
        ));
        let sweep_interval = options
            .sweep_interval
            .unwrap_or_else(|| config.storage.sweep_interval());
        Ok(Daemon {
            handle: DaemonHandle {
                core,
                store,
                registry: Arc::new(registry),
                shutdown: CancellationToken::new(),
            },
            directory_version,
            config,
            listeners,
            options_reconnect: options.reconnect_initial,
            sweep_interval,
            ops,
        })
    }

    /// The handle for the API.
    pub fn handle(&self) -> DaemonHandle {
        self.handle.clone()
    }

    /// Runs until `shutdown` completes (or [`DaemonHandle::shutdown`]), then stops cleanly.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), DaemonError> {
        let Daemon {
            handle,
            config,
            listeners,
            options_reconnect,
            sweep_interval,
            ops,
            directory_version,
        } = self;
        let core = handle.core.clone();
        let store = handle.store.clone();
        let token = handle.shutdown.clone();
        let ingest_config = IngestConfig::default();
        let ingest_worker = store
            .start_ingest_worker(ingest_config.clone())
            .map_err(|source| DaemonError::Store {
                data_dir: config.storage.data_dir.clone(),
                source,
            })?;
        *core.ingest.lock().unwrap_or_else(|p| p.into_inner()) = Some(ingest_worker.queue());
        let tracker = TaskTracker::new();
        let feature_calls = TaskTracker::new();

        let store_writer = tokio::spawn(store_writer::apply_store_ops(
            core.clone(),
            store.clone(),
            ingest_worker.queue(),
            store_writer::Backoff::from(&ingest_config),
            ops,
        ));
        tracker.spawn(store_writer::follow_directory(
            core.clone(),
            store.clone(),
            directory_version,
            token.clone(),
        ));
        tracker.spawn(reconcile_loop(
            core.clone(),
            store.clone(),
            config.storage.spool_scan_interval(),
            token.clone(),
        ));
        tracker.spawn(sweep_loop(store.clone(), sweep_interval, token.clone()));
        tracker.spawn(every_second_loop(core.clone(), token.clone()));
        tracker.spawn(publish_loop(core.clone(), token.clone()));
        let head_file = (!config.storage.audit_head_file.is_empty())
            .then(|| store_writer::absolute(Path::new(&config.storage.audit_head_file)));
        if let Some(path) = &head_file {
            tracker.spawn(audit_head::save_loop(
                store.clone(),
                path.clone(),
                audit_head::EVERY,
                token.clone(),
            ));
        }
        tracker.spawn(callrec_webhooks::run(
            store.clone(),
            WebhookSettings {
                config_secret: config.webhooks.secret.expose().to_owned(),
                timeout: config.webhooks.timeout(),
                max_backoff: config.webhooks.max_backoff(),
                give_up_after: config.webhooks.give_up_after(),
                ..WebhookSettings::default()
            },
            core.metrics.webhooks.clone(),
            token.clone(),
        ));
        let prompts_dir = store_writer::absolute(&config.prompts.dir);
        let prompts = Prompts::new(
            prompts_dir.clone(),
            Prompt::ALL.iter().map(|p| {
                let path = config.prompts.path(*p);
                (
                    *p,
                    path.strip_prefix(&config.prompts.dir)
                        .unwrap_or(&path)
                        .display()
                        .to_string(),
                )
            }),
        );
        tracker.spawn(feature::serve(
            core.clone(),
            listeners.feature_codes,
            FeatureSettings {
                prompts,
                format: event_format(config.esl.event_format),
                command_timeout: config.esl.command_timeout(),
            },
            token.clone(),
            feature_calls.clone(),
        ));
        let mut esl_task = tokio::spawn(esl::supervise(
            core.clone(),
            esl_settings(&config, options_reconnect),
            token.clone(),
        ));
        tracker.close();

        tokio::pin!(shutdown);
        let outcome = tokio::select! {
            _ = &mut shutdown => { tracing::info!("shutting down"); Ok(()) }
            _ = token.cancelled() => Ok(()),
            ended = &mut esl_task => match ended {
                Ok(Ok(())) => Ok(()),
                Ok(Err(err)) => Err(DaemonError::Esl(err)),
                Err(_) => Err(DaemonError::TaskFailed("ESL session")),
            },
        };
        // Stop taking work: no new feature calls, no new ESL events.
        token.cancel();
        if !esl_task.is_finished() {
            let _ = esl_task.await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), async {
            feature_calls.close();
            feature_calls.wait().await;
        })
        .await;
        tracker.wait().await;
        // Every decision already taken reaches the index before it closes.
        core.close_store();
        let _ = store_writer.await;
        // The head after the last write of this run.
        if let Some(path) = &head_file {
            audit_head::save(&store, path).await;
        }
        // In-flight ingests finish; anything still failing is left for the next start.
        core.ingest.lock().unwrap_or_else(|p| p.into_inner()).take();
        ingest_worker.shutdown_async().await;
        drop(store);
        tracing::info!("stopped");
        outcome
    }
}

/// Starts the daemon and runs it until `shutdown` completes (SPEC §6 `callrec serve`).
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DaemonError> {
    Daemon::start(config, listeners, Options::default())
        .await?
        .run(shutdown)
        .await
}

/// Finishes what a crash of the last run left in the store ([`callrec_store::Store::reconcile`]):
/// ingests cut short between the rename and the commit, files whose deletion committed but
/// which are still on disk, temporary copies. It runs before the daemon takes new work, on
/// the blocking pool (it walks the whole store). A failure is logged and counted, and the
/// daemon starts anyway: recording new calls matters more than tidying up, and the next start
/// tries again.
async fn reconcile_store(store: &StoreHandle, metrics: &Metrics) {
    let options = ReconcileOptions { walk_store: true };
    match store.write(move |s| s.reconcile(&options)).await {
        Ok(report) => {
            metrics.store_reconciled(&report);
            let repaired = report.ingests_finished.len() as u64
                + report.files_removed
                + report.temp_files_removed;
            let problems = report.ingest_errors.len() + report.unindexed_files.len();
            if repaired > 0 || problems > 0 {
                tracing::info!(
                    ingests_finished = report.ingests_finished.len(),
                    files_removed = report.files_removed,
                    temp_files_removed = report.temp_files_removed,
                    unindexed_files = report.unindexed_files.len(),
                    awaiting_daemon = report.awaiting_daemon,
                    "store reconciled: finished what the last run left"
                );
            } else {
                tracing::debug!(
                    awaiting_daemon = report.awaiting_daemon,
                    "store reconciled: nothing to repair"
                );
            }
            for (id, error) in &report.ingest_errors {
                tracing::warn!(%id, %error, "an interrupted ingest could not be finished yet; the daemon retries it once it has reconciled with the switch");
            }
        }
        Err(err) => {
            metrics.store_reconcile_failed();
            tracing::error!(error = %err, "the store's reconcile pass failed; starting anyway, the next start tries again");
        }
    }
}

/// Reconciles when asked (connect, dropped events) and scans the spool periodically.
async fn reconcile_loop(
    core: Arc<Core>,
    store: StoreHandle,
    scan_every: Duration,
    shutdown: CancellationToken,
) {
    let mut scan = tokio::time::interval(scan_every);
    scan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    scan.tick().await;
    // Set by a complete pass since the last connect: only then does the table speak for the
    // switch, and only then may the spool scan call a recording finished.
    let mut authoritative = false;
    let mut up = core.esl_up.subscribe();
    // Unnamed spool files already logged (each is logged once).
    let mut reported = HashSet::new();
    loop {
        let reason = tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = core.reconcile.notified() => "asked",
            _ = scan.tick() => "spool_scan",
            changed = up.changed() => {
                if changed.is_err() { return; }
                if !*up.borrow() { authoritative = false; }
                continue;
            }
        };
        if !*core.esl_up.borrow() {
            continue;
        }
        let rows = match store_writer::in_progress(&core, &store).await {
            Ok(rows) => rows,
            Err(err) => {
                tracing::warn!(error = %err, "cannot read recordings in progress");
                continue;
            }
        };
        if reason == "spool_scan" && authoritative {
            let now = core.clock.now_micros();
            core.decide(|rec| rec.expire_closing(now, reconcile::CLOSING_GRACE));
            core.decide(|rec| {
                let late = rec.expire_waits(now, reconcile::WAIT_GRACE);
                if !late.is_empty() {
                    tracing::warn!(
                        "a call leg waited too long for its user's own leg to answer; recording it"
                    );
                }
                late
            });
            let orphans = core.recorder().orphaned_rows(&rows, now);
            if !orphans.is_empty() {
                tracing::info!(count = orphans.len(), "spool scan found closed recordings");
            }
            core.apply(orphans);
            report_unnamed_spool_files(&core, &store, &mut reported).await;
            continue;
        }
        match reconcile::reconcile(&core, &rows).await {
            Ok(report) => {
                authoritative = true;
                core.metrics.reconciliations_completed.inc();
                tracing::info!(?report, "reconciled with the switch");
            }
            Err(err) => {
                tracing::warn!(error = %err, "reconciliation did not finish; it runs again at the next connect")
            }
        }
    }
}

/// Counts, and logs once each at WARN, the audio files in the spool that no recording names
/// ([`reconcile::old_spool_files`] that neither a leg of the call table nor a row of the
/// index in any state names). They are kept where they are for an operator: callrec cannot
/// tell whose they are, so it neither indexes nor deletes them. The directory is read
/// without the recorder's lock, which event handling needs.
async fn report_unnamed_spool_files(
    core: &Core,
    store: &StoreHandle,
    reported: &mut HashSet<PathBuf>,
) {
    let (spool, format) = {
        let rec = core.recorder();
        let settings = rec.settings();
        (PathBuf::from(&settings.spool_dir), settings.format.clone())
    };
    let old = reconcile::old_spool_files(
        &spool,
        &format,
        reconcile::UNNAMED_GRACE,
        std::time::SystemTime::now(),
    );
    let candidates: Vec<(RecordingId, PathBuf)> = {
        let rec = core.recorder();
        old.into_iter()
            .filter(|(id, _)| !rec.holds_recording(id))
            .collect()
    };
    let ids: Vec<RecordingId> = candidates.iter().map(|(id, _)| id.clone()).collect();
    // Any row, in any state, names the file (a store error counts as a row: no false alarm).
    let indexed = store
        .read(move |v| {
            let system = callrec_store::Access::system(crate::recorder::POLICY_ACTOR);
            Ok(ids
                .into_iter()
                .filter(|id| {
                    !matches!(v.recording(id, &system),
                        Err(e) if e.kind() == callrec_store::ErrorKind::NotFound)
                })
                .collect::<HashSet<RecordingId>>())
        })
        .await;
    let Ok(indexed) = indexed else {
        return;
    };
    let unnamed: Vec<&PathBuf> = candidates
        .iter()
        .filter(|(id, _)| !indexed.contains(id))
        .map(|(_, path)| path)
        .collect();
    core.metrics.spool_unnamed_files.set(unnamed.len() as i64);
    for path in unnamed {
        if reported.insert(path.clone()) {
            tracing::warn!(
                path = %path.display(),
                "a recording in the spool that no call or row names (the switch recorded a call while callrec was down or disconnected?): kept, not indexed; file it by hand"
            );
        }
    }
}

/// Every second, on the switch's clock: resumes recordings paused longer than their site's
/// `max_pause_seconds` ([`Recorder::auto_resume`]), and starts recordings armed through
/// `api_on_answer` that the switch has not confirmed since their answer
/// ([`Recorder::confirm_armed_starts`]).
async fn every_second_loop(core: Arc<Core>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if !*core.esl_up.borrow() {
            continue;
        }
        let now = core.clock.now_micros();
        core.decide(|rec| {
            let (effects, resumed) = rec.auto_resume(now);
            for leg in resumed {
                tracing::info!(
                    channel = %leg,
                    "a recording paused longer than the site's max_pause_seconds was resumed"
                );
            }
            effects
        });
        core.decide(|rec| {
            let late = rec.confirm_armed_starts(now);
            if !late.is_empty() {
                tracing::warn!(
                    count = late.len(),
                    "a recording armed for the answer did not start with it (the switch took the arming too late?); starting it now"
                );
            }
            late
        });
    }
}

/// Keeps the switch's hash, which the shipped dialplan's in-switch arming reads
/// ([`crate::arming`]), in step with the directory: at every connect, whenever users or sites
/// change, and every minute (the hash lives in the switch's memory: a restart of the switch
/// or a reload of mod_hash empties it). A failure is logged once until it changes or mends;
/// calls are then armed over the Event Socket as without the dialplan file.
async fn publish_loop(core: Arc<Core>, shutdown: CancellationToken) {
    let mut up = core.esl_up.subscribe();
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing: Option<String> = None;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = up.changed() => if changed.is_err() { return },
            _ = core.publish.notified() => {}
            _ = tick.tick() => {}
        }
        if !*core.esl_up.borrow() {
            continue;
        }
        match crate::arming::publish(&core).await {
            Ok(sent) => {
                if sent > 0 {
                    tracing::info!(
                        commands = sent,
                        "published the users recorded on answer to the switch (in-switch arming)"
                    );
                }
                failing = None;
            }
            Err(QueryError::Disconnected) => {}
            Err(err) => {
                let text = err.to_string();
                if failing.as_deref() != Some(text.as_str()) {
                    tracing::warn!(error = %text, "cannot publish the users recorded on answer to the switch's hash (mod_hash); the dialplan's in-switch arming is off until it works, callrec arms calls itself");
                }
                failing = Some(text);
            }
        }
    }
}

/// Applies retention periodically (SPEC §4.3), and with it deletes the portal's rows that
/// no longer matter (sessions that are over, failed sign-ins out of the throttle's window).
async fn sweep_loop(store: StoreHandle, every: Duration, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        match sweep_in_steps(&store, SWEEP_STEP, &shutdown).await {
            Ok(done) if done.deleted > 0 || done.files_not_removed > 0 => tracing::info!(
                deleted = done.deleted,
                deleted_bytes = done.deleted_bytes,
                kept_on_hold = done.kept_on_hold,
                files_not_removed = done.files_not_removed,
                steps = done.steps,
                "retention sweep"
            ),
            Ok(done) => tracing::debug!(?done, "retention sweep: nothing expired"),
            Err(err) => {
                tracing::warn!(error = %err, "retention sweep failed; it runs again at the next interval")
            }
        }
        match purge_portal(&store).await {
            Ok(done) if done != PortalPurge::default() => tracing::info!(
                sessions = done.sessions,
                signin_failures = done.signin_failures,
                "portal purge: ended sessions and old failed sign-ins deleted"
            ),
            Ok(_) => tracing::debug!("portal purge: nothing to delete"),
            Err(err) => {
                tracing::warn!(error = %err, "portal purge failed; it runs again at the next interval")
            }
        }
    }
}

/// Deletes the portal's sessions that are over and failed sign-ins the throttle no longer
/// counts, by the store's clock. The API serves the portal with the default policy
/// (`callrec serve` builds `PortalConfig::default()`), so the purge applies the same one;
/// the store keeps failures an hour past the window, should the two ever differ a little.
pub(crate) async fn purge_portal(store: &StoreHandle) -> Result<PortalPurge, StoreError> {
    store
        .write(|s| s.purge_portal_rows(&PortalPolicy::default()))
        .await
}

/// Deletions per sweep step: one store batch, a fraction of a second of writer time.
const SWEEP_STEP: u64 = 1000;

/// What a whole sweep did, over all its steps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SweepTotals {
    /// Recordings deleted.
    pub deleted: u64,
    /// Their bytes.
    pub deleted_bytes: u64,
    /// Expired recordings kept because they are on hold (as of the last step).
    pub kept_on_hold: u64,
    /// Deleted recordings whose file is left for the next reconcile.
    pub files_not_removed: u64,
    /// Steps taken (each one a hold of the store writer).
    pub steps: u64,
}

/// Sweeps in steps of at most `step` deletions, releasing the store writer between them:
/// a sweep after a retention change can delete hundreds of thousands of recordings, and the
/// ingest of calls ending meanwhile must not wait for all of it. Stops early at shutdown
/// (what is left expires again at the next sweep).
pub(crate) async fn sweep_in_steps(
    store: &StoreHandle,
    step: u64,
    shutdown: &CancellationToken,
) -> Result<SweepTotals, StoreError> {
    let options = SweepOptions {
        max_deletions: Some(step),
        batch: usize::try_from(step).unwrap_or(usize::MAX).max(1),
        // The deletions are in the audit log; the report only needs the counts.
        list_limit: 0,
        ..SweepOptions::default()
    };
    let mut totals = SweepTotals::default();
    loop {
        let opts = options.clone();
        let report = store.write(move |s| s.sweep(&opts)).await?;
        totals.steps += 1;
        totals.deleted += report.deleted;
        totals.deleted_bytes += report.deleted_bytes;
        totals.kept_on_hold = report.kept_on_hold;
        totals.files_not_removed += report.files_not_removed;
        if !report.more || shutdown.is_cancelled() {
            return Ok(totals);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use callrec_model::NewRecording;
    use callrec_model::{Clock as _, Direction, ManualClock, RecordingId};
    use callrec_store::{IngestJob, NewUser, Store, StoreHandle};
    use chrono::{Duration as Span, Utc};
    use tokio_util::sync::CancellationToken;

    use super::sweep_in_steps;

    /// A store holding `n` stored recordings, and the clock it reads.
    fn store_with_recordings(dir: &std::path::Path, n: usize) -> (StoreHandle, ManualClock) {
        let clock = ManualClock::new(Utc::now());
        let mut store = Store::open_with_clock(dir.join("data"), Arc::new(clock.clone())).unwrap();
        let user = store
            .add_user(&NewUser::new("default", "1001"), "test")
            .unwrap();
        let spool = dir.join("spool");
        std::fs::create_dir_all(&spool).unwrap();
        for i in 0..n {
            let id = RecordingId::new();
            let path = spool.join(format!("{id}.wav"));
            std::fs::write(&path, callrec_testkit::wav::silence(1_000)).unwrap();
            let new = NewRecording {
                id: id.clone(),
                user: user.id,
                call_uuid: format!("call-{i}"),
                direction: Direction::Inbound,
                from: "02079460000".into(),
                to: "1001".into(),
                started_at: clock.now() - Span::seconds(10),
                format: "wav".into(),
                spool_path: path,
            };
            store.create_recording(&new, "test").unwrap();
            store.ingest(&IngestJob::new(id)).unwrap();
        }
        (StoreHandle::new(store), clock)
    }

    #[tokio::test]
    async fn a_long_sweep_deletes_everything_expired_one_step_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let (store, clock) = store_with_recordings(dir.path(), 25);
        clock.advance(Span::days(200));

        let done = sweep_in_steps(&store, 10, &CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(done.deleted, 25);
        assert_eq!(
            done.steps, 3,
            "10 + 10 + 5, the writer released between them"
        );
        let left = store
            .read(|v| v.state_counts())
            .await
            .unwrap()
            .into_iter()
            .find(|(s, _)| *s == callrec_model::RecordingState::Stored)
            .map_or(0, |(_, n)| n);
        assert_eq!(left, 0);
    }

    #[tokio::test]
    async fn the_periodic_purge_deletes_a_session_once_it_idled_out() {
        let dir = tempfile::tempdir().unwrap();
        let (store, clock) = store_with_recordings(dir.path(), 0);
        let session = store
            .write(|s| {
                s.set_password("default", "1001", "a long enough password", "test")?;
                s.sign_in(
                    &callrec_store::SignInAttempt {
                        account: "1001".into(),
                        password: "a long enough password".into(),
                        address: "192.0.2.1".into(),
                    },
                    &callrec_store::PortalPolicy::default(),
                )
            })
            .await
            .unwrap();
        assert!(matches!(session, callrec_store::SignIn::Granted(_)));
        assert_eq!(super::purge_portal(&store).await.unwrap().sessions, 0);
        clock.advance(Span::minutes(30));
        assert_eq!(super::purge_portal(&store).await.unwrap().sessions, 1);
    }

    #[tokio::test]
    async fn a_sweep_stops_between_steps_at_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let (store, clock) = store_with_recordings(dir.path(), 25);
        clock.advance(Span::days(200));
        let shutdown = CancellationToken::new();
        shutdown.cancel();

        let done = sweep_in_steps(&store, 10, &shutdown).await.unwrap();
        assert_eq!((done.deleted, done.steps), (10, 1));
        // What is left is swept next time.
        let rest = sweep_in_steps(&store, 10, &CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(rest.deleted, 15);
    }
}

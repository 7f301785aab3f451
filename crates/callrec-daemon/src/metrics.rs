//! The daemon's Prometheus metrics (prometheus-client).
//!
//! Every part of the daemon updates these through one shared [`Metrics`]; the API serves them
//! at `/metrics` through [`crate::DaemonHandle::metrics_text`].

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::event::{EventKind, SUBSCRIBED_EVENTS};

type Labels = Vec<(String, String)>;

fn label(key: &str, value: &str) -> Labels {
    vec![(key.to_owned(), value.to_owned())]
}

/// Counters, gauges and histograms of the daemon.
#[derive(Debug)]
pub struct Metrics {
    /// 1 while both ESL connections are up and subscribed.
    pub esl_connected: Gauge,
    /// Connections established since start.
    pub esl_connects: Counter,
    /// Connection attempts that failed (and will be retried).
    pub esl_connect_failures: Counter,
    /// Calls in progress (user views, as `GET /calls` lists them).
    pub live_calls: Gauge,
    /// Channels tracked.
    pub live_channels: Gauge,
    /// Events received, by name.
    pub events_received: Family<Labels, Counter>,
    /// Events the ESL crate dropped (queue full).
    pub events_dropped: Counter,
    /// Frames or events that could not be used.
    pub malformed_frames: Counter,
    /// Commands the switch refused or never answered, by kind.
    pub command_failures: Family<Labels, Counter>,
    /// Reconciliation passes, by reason.
    pub reconciliations: Family<Labels, Counter>,
    /// Reconciliation passes that finished (the call table speaks for the switch again).
    pub reconciliations_completed: Counter,
    /// Feature-code calls answered, by prompt played.
    pub feature_codes: Family<Labels, Counter>,
    /// Seconds from RECORD_STOP to the file stored.
    pub ingest_latency: Histogram,
    /// Ingest failures, by kind.
    pub ingest_failures: Family<Labels, Counter>,
    /// Recordings stored, discarded or failed, by outcome.
    pub recordings_finished: Family<Labels, Counter>,
    /// What the store's reconcile pass at start repaired, by kind (`ingest_finished`,
    /// `file_removed`, `temp_file_removed`).
    pub store_repairs: Family<Labels, Counter>,
    /// What the store's reconcile pass at start found and could not repair, by kind
    /// (`ingest_error`, `unindexed_file`, `pass_failed`).
    pub store_reconcile_problems: Family<Labels, Counter>,
    /// Calls that should have been recorded (the user's mode records every call) and were
    /// not: the recording failed.
    pub calls_not_recorded: Counter,
    /// Audio files in the spool that no recording names (the switch recorded a call while
    /// callrec could not see it), as of the last spool scan.
    pub spool_unnamed_files: Gauge,
    /// Webhook deliveries.
    pub webhooks: std::sync::Arc<callrec_webhooks::WebhookMetrics>,
    dropped_seen: AtomicU64,
    by_name: Vec<(&'static str, Counter)>,
    ingest_seen: std::sync::Mutex<std::collections::HashMap<&'static str, u64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            esl_connected: Gauge::default(),
            esl_connects: Counter::default(),
            esl_connect_failures: Counter::default(),
            live_calls: Gauge::default(),
            live_channels: Gauge::default(),
            spool_unnamed_files: Gauge::default(),
            events_received: Family::default(),
            events_dropped: Counter::default(),
            malformed_frames: Counter::default(),
            command_failures: Family::default(),
            reconciliations: Family::default(),
            reconciliations_completed: Counter::default(),
            feature_codes: Family::default(),
            ingest_latency: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            ingest_failures: Family::default(),
            recordings_finished: Family::default(),
            store_repairs: Family::default(),
            store_reconcile_problems: Family::default(),
            calls_not_recorded: Counter::default(),
            webhooks: std::sync::Arc::default(),
            dropped_seen: AtomicU64::new(0),
            by_name: Vec::new(),
            ingest_seen: std::sync::Mutex::default(),
        }
        .with_kind_counters()
    }
}

impl Metrics {
    /// Counters for the subscribed kinds are looked up once, so counting an event on the hot
    /// path is one atomic increment.
    fn with_kind_counters(mut self) -> Self {
        self.by_name = SUBSCRIBED_EVENTS
            .iter()
            .map(|name| {
                (
                    *name,
                    self.events_received
                        .get_or_create_owned(&label("event", name)),
                )
            })
            .collect();
        self
    }

    /// Counts one received event under its name (a name outside the subscription too).
    pub fn event_kind(&self, kind: EventKind, name: &str) {
        match self
            .by_name
            .iter()
            .find(|(n, _)| kind != EventKind::Other && *n == name)
        {
            Some((_, counter)) => {
                counter.inc();
            }
            None => self.event(name),
        }
    }

    /// Registers every metric under the `callrec_` prefix.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("callrec");
        r.register(
            "esl_connected",
            "1 while the Event Socket session is up",
            self.esl_connected.clone(),
        );
        r.register(
            "esl_connects",
            "Event Socket sessions established",
            self.esl_connects.clone(),
        );
        r.register(
            "esl_connect_failures",
            "Event Socket connection attempts that failed and are retried",
            self.esl_connect_failures.clone(),
        );
        r.register(
            "live_calls",
            "Calls in progress, one per recorded user per call",
            self.live_calls.clone(),
        );
        r.register(
            "live_channels",
            "Channels tracked",
            self.live_channels.clone(),
        );
        r.register(
            "esl_events_received",
            "Switch events received",
            self.events_received.clone(),
        );
        r.register(
            "esl_events_dropped",
            "Switch events dropped by a full queue (each triggers a reconciliation)",
            self.events_dropped.clone(),
        );
        r.register(
            "esl_malformed_frames",
            "Frames or events that could not be used",
            self.malformed_frames.clone(),
        );
        r.register(
            "esl_command_failures",
            "Switch commands refused or unanswered",
            self.command_failures.clone(),
        );
        r.register(
            "reconciliations",
            "Reconciliation passes against the switch",
            self.reconciliations.clone(),
        );
        r.register(
            "reconciliations_completed",
            "Reconciliation passes that finished: the call table matches the switch's channel list",
            self.reconciliations_completed.clone(),
        );
        r.register(
            "feature_codes",
            "Feature-code calls answered, by prompt",
            self.feature_codes.clone(),
        );
        r.register(
            "ingest_latency_seconds",
            "Time from the switch closing a file to the file stored",
            self.ingest_latency.clone(),
        );
        r.register(
            "ingest_failures",
            "Ingest attempts that failed",
            self.ingest_failures.clone(),
        );
        r.register(
            "calls_not_recorded",
            "Calls of users whose mode records every call that were not recorded (the recording failed)",
            self.calls_not_recorded.clone(),
        );
        r.register(
            "spool_unnamed_files",
            "Audio files in the spool that no recording names (recorded by the switch while callrec could not see it; kept, not ingested)",
            self.spool_unnamed_files.clone(),
        );
        r.register(
            "recordings_finished",
            "Recordings that ended, by outcome",
            self.recordings_finished.clone(),
        );
        r.register(
            "store_repairs",
            "Repairs made at start by the store's reconcile pass (what a crash left)",
            self.store_repairs.clone(),
        );
        r.register(
            "store_reconcile_problems",
            "What the store's reconcile pass at start found and could not repair",
            self.store_reconcile_problems.clone(),
        );
        self.webhooks.register(registry);
    }

    /// Counts one received event.
    pub fn event(&self, name: &str) {
        self.events_received
            .get_or_create(&label("event", name))
            .inc();
    }

    /// Counts a failed command.
    pub fn command_failed(&self, kind: &str) {
        self.command_failures
            .get_or_create(&label("kind", kind))
            .inc();
    }

    /// Counts a reconciliation.
    pub fn reconciled(&self, reason: &str) {
        self.reconciliations
            .get_or_create(&label("reason", reason))
            .inc();
    }

    /// Counts a feature-code call.
    pub fn feature_code(&self, prompt: &str) {
        self.feature_codes
            .get_or_create(&label("prompt", prompt))
            .inc();
    }

    /// Counts an ingest failure.
    pub fn ingest_failed(&self, kind: &str) {
        self.ingest_failures
            .get_or_create(&label("kind", kind))
            .inc();
    }

    /// Brings the ingest failure counters up to the store worker's totals.
    pub fn sync_ingest_errors(&self, totals: &[(&'static str, u64)]) {
        let mut seen = self.ingest_seen.lock().unwrap_or_else(|p| p.into_inner());
        for (kind, total) in totals {
            let before = seen.insert(kind, *total).unwrap_or(0);
            if *total > before {
                self.ingest_failures
                    .get_or_create(&label("kind", kind))
                    .inc_by(total - before);
            }
        }
    }

    /// Counts a finished recording.
    pub fn finished(&self, outcome: &str) {
        self.recordings_finished
            .get_or_create(&label("outcome", outcome))
            .inc();
    }

    /// Counts what the store's reconcile pass repaired and what it could not.
    pub fn store_reconciled(&self, report: &callrec_store::RepairReport) {
        let count = |family: &Family<Labels, Counter>, kind: &str, n: u64| {
            if n > 0 {
                family.get_or_create(&label("kind", kind)).inc_by(n);
            }
        };
        let finished = report
            .ingests_finished
            .iter()
            .filter(|o| !matches!(o, callrec_store::IngestOutcome::AlreadyDone { .. }))
            .count() as u64;
        count(&self.store_repairs, "ingest_finished", finished);
        count(&self.store_repairs, "file_removed", report.files_removed);
        count(
            &self.store_repairs,
            "temp_file_removed",
            report.temp_files_removed,
        );
        count(
            &self.store_reconcile_problems,
            "ingest_error",
            report.ingest_errors.len() as u64,
        );
        count(
            &self.store_reconcile_problems,
            "unindexed_file",
            report.unindexed_files.len() as u64,
        );
    }

    /// Counts a reconcile pass of the store that failed as a whole.
    pub fn store_reconcile_failed(&self) {
        self.store_reconcile_problems
            .get_or_create(&label("kind", "pass_failed"))
            .inc();
    }

    /// Brings the dropped-event counter up to the ESL crate's total for the current
    /// connection; returns how many are new.
    pub fn observe_dropped(&self, connection_total: u64) -> u64 {
        let seen = self.dropped_seen.swap(connection_total, Ordering::Relaxed);
        let new = connection_total.saturating_sub(seen);
        self.events_dropped.inc_by(new);
        new
    }

    /// A new connection counts its drops from zero.
    pub fn reset_dropped_baseline(&self) {
        self.dropped_seen.store(0, Ordering::Relaxed);
    }

    /// A count of one label value of a family, for tests and status output.
    pub fn count(family: &Family<Labels, Counter>, key: &str, value: &str) -> u64 {
        family.get(&label(key, value)).map_or(0, |c| c.get())
    }
}

/// The registry as Prometheus text.
pub fn encode_registry(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut out, registry);
    out
}

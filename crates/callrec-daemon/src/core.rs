//! The daemon's shared core: the [`Recorder`] behind a lock, and the channels its effects go
//! out on (commands to the switch, operations to the store, answers to waiting callers).
//!
//! Every task (ESL session, feature-code calls, API actions, reconciliation) decides through
//! [`Core::decide`] and carries out what comes back with [`Core::apply`]. The lock is a std
//! mutex held only for in-memory decisions (microseconds, never across an await), which is
//! cheaper than an actor's channel round trip and cannot deadlock with I/O.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use callrec_model::RecordingId;
use tokio::sync::{Notify, mpsc, oneshot, watch};

use crate::metrics::Metrics;
use crate::recorder::{
    ActionDone, ActionPlan, CommandOutcome, Effect, Recorder, StoreOp, SwitchCommand, Ticket,
};
use callrec_model::ActionError;

/// Where the time of what no event timestamps (reconciliation, API actions) comes from.
pub type Clock = Arc<dyn callrec_model::Clock>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(callrec_model::SystemClock)
}

/// A command for the switch, as the command connection carries it.
#[derive(Debug)]
pub(crate) enum Job {
    /// A recording command; its outcome goes back to the recorder.
    Record(SwitchCommand),
    /// A query (reconciliation); its raw result body goes back to the caller.
    Query {
        text: String,
        reply: oneshot::Sender<Result<String, QueryError>>,
    },
}

impl Job {
    pub(crate) fn text(&self) -> String {
        match self {
            Job::Record(cmd) => cmd.api_text(),
            Job::Query { text, .. } => text.clone(),
        }
    }
}

/// Why a query to the switch has no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// Not connected, or the connection went away before the answer.
    #[error("the switch is not connected")]
    Disconnected,
    /// No answer in time.
    #[error("the switch did not answer `{0}` in time")]
    Timeout(String),
    /// The switch answered `-ERR …`.
    #[error("the switch refused `{command}`: {reply}")]
    Refused {
        /// The command.
        command: String,
        /// Its reply.
        reply: String,
    },
}

/// What the store writer applies, in the order it was decided.
#[derive(Debug)]
pub(crate) enum StoreWork {
    /// A change to the index.
    Op(StoreOp),
    /// An answer for whoever waits on an action, given once every store operation decided
    /// before it is applied: "paused" means the pause segment, and its audit entry naming
    /// who paused, are in the index.
    Resolve {
        ticket: Ticket,
        outcome: Result<ActionDone, ActionError>,
    },
}

/// Shared by every task of a running daemon.
pub(crate) struct Core {
    recorder: Mutex<Recorder>,
    pub(crate) metrics: Arc<Metrics>,
    commands: Mutex<Option<mpsc::UnboundedSender<Job>>>,
    store: Mutex<Option<mpsc::UnboundedSender<StoreWork>>>,
    waiters: Mutex<HashMap<Ticket, oneshot::Sender<Result<ActionDone, ActionError>>>>,
    /// Wakes the reconciliation task.
    pub(crate) reconcile: Notify,
    /// Wakes the task that publishes the recorded users to the switch (users or sites
    /// changed; [`crate::arming`]).
    pub(crate) publish: Notify,
    /// True while the ESL session is up.
    pub(crate) esl_up: watch::Sender<bool>,
    pub(crate) clock: Clock,
    pub(crate) query_timeout: Duration,
    /// The store's ingest queue once the worker runs, for its counters.
    pub(crate) ingest: Mutex<Option<callrec_store::IngestQueue>>,
    /// Recordings handed to the ingest worker whose outcome has not come yet.
    ingesting: Mutex<HashSet<RecordingId>>,
}

impl Core {
    pub(crate) fn new(
        recorder: Recorder,
        metrics: Arc<Metrics>,
        store: mpsc::UnboundedSender<StoreWork>,
        clock: Clock,
        query_timeout: Duration,
    ) -> Core {
        Core {
            recorder: Mutex::new(recorder),
            metrics,
            commands: Mutex::new(None),
            store: Mutex::new(Some(store)),
            waiters: Mutex::new(HashMap::new()),
            reconcile: Notify::new(),
            publish: Notify::new(),
            esl_up: watch::Sender::new(false),
            clock,
            query_timeout,
            ingest: Mutex::new(None),
            ingesting: Mutex::new(HashSet::new()),
        }
    }

    /// Recordings handed to the ingest worker whose outcome has not come yet.
    pub(crate) fn ingesting(&self) -> MutexGuard<'_, HashSet<RecordingId>> {
        self.ingesting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The recorder, locked. Hold it only for in-memory work.
    pub(crate) fn recorder(&self) -> MutexGuard<'_, Recorder> {
        // A panic while deciding leaves the table as the decision left it; carrying on beats
        // taking the whole daemon down with every later lock.
        self.recorder.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs a decision under the lock and carries out its effects.
    pub(crate) fn decide(&self, f: impl FnOnce(&mut Recorder) -> Vec<Effect>) {
        let effects = {
            let mut rec = self.recorder();
            let effects = f(&mut rec);
            self.metrics.live_channels.set(rec.table().len() as i64);
            effects
        };
        self.apply(effects);
    }

    /// No more store operations: the store writer finishes what it holds and stops.
    pub(crate) fn close_store(&self) {
        self.store.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    /// Whether [`Core::close_store`] was called (the daemon is shutting down).
    pub(crate) fn store_closed(&self) -> bool {
        self.store
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_none()
    }

    /// Connects (or disconnects, with `None`) the command connection.
    pub(crate) fn set_command_sender(&self, tx: Option<mpsc::UnboundedSender<Job>>) {
        *self.commands.lock().unwrap_or_else(|p| p.into_inner()) = tx;
    }

    /// Carries out effects in order.
    pub(crate) fn apply(&self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Command(cmd) => {
                    tracing::debug!(command = %cmd.api_text(), "sending to the switch");
                    self.send(Job::Record(cmd))
                }
                Effect::Store(op) => {
                    if self.to_store(StoreWork::Op(op)).is_some() {
                        tracing::error!(
                            "the store writer has stopped; a store operation is left for the next start's reconciliation"
                        );
                    }
                }
                Effect::Announce { channel, file } => {
                    let text = format!("uuid_broadcast {channel} {file} aleg");
                    tracing::debug!(command = %text, "sending to the switch");
                    let (reply, answer) = oneshot::channel();
                    self.send(Job::Query {
                        text: text.clone(),
                        reply,
                    });
                    tokio::spawn(async move {
                        if let Ok(Err(err)) = answer.await {
                            tracing::warn!(command = %text, error = %err, "a prompt could not be played");
                        }
                    });
                }
                Effect::Resolve { ticket, outcome } => {
                    // Through the store writer, behind the segments decided before it; at
                    // shutdown, when the writer is gone, at once.
                    if let Some(StoreWork::Resolve { ticket, outcome }) =
                        self.to_store(StoreWork::Resolve { ticket, outcome })
                    {
                        self.resolve(ticket, outcome);
                    }
                }
            }
        }
    }

    /// Hands work to the store writer; gives it back when the writer has stopped.
    fn to_store(&self, work: StoreWork) -> Option<StoreWork> {
        match self
            .store
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            Some(tx) => tx.send(work).err().map(|mpsc::error::SendError(work)| work),
            None => Some(work),
        }
    }

    /// Tells whoever waits on `ticket` how their action ended.
    pub(crate) fn resolve(&self, ticket: Ticket, outcome: Result<ActionDone, ActionError>) {
        let waiter = self
            .waiters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&ticket);
        if let Some(tx) = waiter {
            // The caller may have given up waiting; nothing to do then.
            let _ = tx.send(outcome);
        }
    }

    /// Queues a command for the switch; with no session it fails at once as unanswered.
    fn send(&self, job: Job) {
        let job = {
            let guard = self.commands.lock().unwrap_or_else(|p| p.into_inner());
            match guard.as_ref() {
                Some(tx) => match tx.send(job) {
                    Ok(()) => return,
                    Err(mpsc::error::SendError(job)) => job,
                },
                None => job,
            }
        };
        self.complete(job, Err(QueryError::Disconnected));
    }

    /// Hands a command's result to whoever needs it.
    pub(crate) fn complete(&self, job: Job, result: Result<String, QueryError>) {
        match job {
            Job::Record(cmd) => {
                let outcome = match result {
                    Ok(_) => CommandOutcome::Ok,
                    Err(QueryError::Refused { reply, .. }) => {
                        self.metrics.command_failed(cmd.op.kind());
                        tracing::warn!(command = %cmd.api_text(), attempt = cmd.attempt, %reply, "the switch refused a command");
                        CommandOutcome::Refused(reply)
                    }
                    Err(err) => {
                        self.metrics.command_failed("unanswered");
                        tracing::warn!(command = %cmd.api_text(), error = %err, "a command got no answer");
                        CommandOutcome::Lost
                    }
                };
                self.decide(|rec| rec.on_command_result(&cmd, outcome));
            }
            Job::Query { reply, .. } => {
                let _ = reply.send(result);
            }
        }
    }

    /// Asks the switch something and waits for the answer's body.
    pub(crate) async fn query(&self, text: impl Into<String>) -> Result<String, QueryError> {
        let text = text.into();
        let (tx, rx) = oneshot::channel();
        self.send(Job::Query {
            text: text.clone(),
            reply: tx,
        });
        match tokio::time::timeout(self.query_timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(QueryError::Disconnected),
            Err(_) => Err(QueryError::Timeout(text)),
        }
    }

    /// Brings the gauges computed on demand up to date (calls in progress, the ingest
    /// worker's failure counters): called before the metrics are read.
    pub(crate) fn refresh_metrics(&self) {
        let calls = self.recorder().live_calls().len();
        self.metrics.live_calls.set(calls as i64);
        let stats = self
            .ingest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|q| q.stats());
        if let Some(stats) = stats {
            self.metrics.sync_ingest_errors(&[
                ("disk_full", stats.errors_disk_full),
                ("io", stats.errors_io),
                ("busy", stats.errors_busy),
                ("permanent", stats.errors_permanent),
            ]);
        }
    }

    /// Carries out an accepted action and waits for the switch's answer.
    pub(crate) async fn run_action(&self, plan: ActionPlan) -> Result<ActionDone, ActionError> {
        let (tx, rx) = oneshot::channel();
        self.waiters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(plan.ticket, tx);
        self.apply(plan.effects);
        match tokio::time::timeout(self.query_timeout * 2, rx).await {
            Ok(Ok(outcome)) => outcome,
            _ => {
                self.waiters
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&plan.ticket);
                Err(ActionError::SwitchUnavailable { action: "action" })
            }
        }
    }
}

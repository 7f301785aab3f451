//! The ingest worker: ingests off the async runtime, in batches, retrying what can succeed
//! later.
//!
//! One thread takes jobs from a channel. It plans a batch under the store lock, releases the
//! lock for the file work (hash, fsync, rename; several files at once, because fsyncs that
//! overlap share the filesystem's journal commits), fsyncs each touched directory once, and
//! commits the whole batch in one transaction. Transient failures (disk full, I/O errors,
//! a busy index) put the job back with capped exponential backoff, the spool file untouched;
//! ingest resumes by itself when the cause goes away. Counters say what happened, for the
//! daemon's metrics.
//!
//! Shutdown finishes the jobs already submitted (one more attempt each, no further backoff)
//! and stops; anything still failing is left for the reconcile pass of the next start.

use std::collections::{HashSet, VecDeque};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::oneshot;

use crate::error::{ErrorKind, StoreError};
use crate::ingest::{IngestJob, IngestOutcome};
use crate::phases::{self, JobAttempt, lock};
use crate::store::Store;

/// How the worker batches and retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestConfig {
    /// Most jobs committed in one transaction.
    pub batch: usize,
    /// Files moved at once within a batch.
    pub parallel_files: usize,
    /// First retry delay after a transient failure.
    pub initial_backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            batch: 64,
            parallel_files: 4,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
        }
    }
}

/// What the worker has done so far (counters since start, and gauges now).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IngestStats {
    /// Recordings ingested and `stored`.
    pub stored: u64,
    /// Recordings ingested as `failed` (no audio, unreadable audio, no file).
    pub failed_recordings: u64,
    /// Jobs for recordings that were already done.
    pub already_done: u64,
    /// Attempts that failed for lack of space (ENOSPC, quota, SQLITE_FULL).
    pub errors_disk_full: u64,
    /// Attempts that failed with another I/O error.
    pub errors_io: u64,
    /// Attempts that failed because the index was busy.
    pub errors_busy: u64,
    /// Jobs that failed for good (unknown recording, a bug); reported to the submitter.
    pub errors_permanent: u64,
    /// Jobs waiting to be tried.
    pub queued: u64,
    /// Jobs waiting for a retry after a transient failure.
    pub retrying: u64,
    /// The last error, with the kind.
    pub last_error: Option<String>,
}

/// What a submitter learns when its job is done: the outcome, or a permanent error.
pub type IngestResult = Result<IngestOutcome, StoreError>;

enum Msg {
    Job(IngestJob, Option<oneshot::Sender<IngestResult>>),
    Shutdown,
}

struct Entry {
    job: IngestJob,
    reply: Option<oneshot::Sender<IngestResult>>,
    attempts: u32,
    due: Instant,
}

/// The submitting side of the worker: cheap to clone, usable from async code (never blocks).
#[derive(Clone)]
pub struct IngestQueue {
    tx: Sender<Msg>,
    stats: Arc<Mutex<IngestStats>>,
}

impl std::fmt::Debug for IngestQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestQueue").finish_non_exhaustive()
    }
}

impl IngestQueue {
    /// Submit a job. The receiver yields the outcome once it is final (stored, failed,
    /// already done, or a permanent error); drop it if you do not care. Transient failures
    /// are retried and never reported there.
    pub fn submit(&self, job: IngestJob) -> Result<oneshot::Receiver<IngestResult>, StoreError> {
        let (reply, rx) = oneshot::channel();
        lock(&self.stats).queued += 1;
        self.tx.send(Msg::Job(job, Some(reply))).map_err(|_| {
            lock(&self.stats).queued -= 1;
            StoreError::WorkerStopped
        })?;
        Ok(rx)
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> IngestStats {
        lock(&self.stats).clone()
    }
}

/// The ingest worker: ingests off the async runtime on its own thread.
///
/// It takes up to [`IngestConfig::batch`] jobs at a time, plans them in one transaction,
/// moves their files with the store lock released (several at once), fsyncs each directory
/// once, and commits the batch in one transaction. Transient failures (disk full, I/O
/// errors, a busy index) are retried with capped exponential backoff, the spool file left
/// intact, so ingest resumes by itself when the cause goes away; [`IngestQueue::stats`]
/// counts them. [`IngestWorker::shutdown`] finishes the jobs already submitted (one more
/// attempt each) and stops; what still fails is left for the next start's
/// [`crate::Store::reconcile`].
///
/// Dropping it without `shutdown` detaches the thread, which then stops once every
/// [`IngestQueue`] is dropped.
pub struct IngestWorker {
    queue: IngestQueue,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for IngestWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestWorker").finish_non_exhaustive()
    }
}

impl IngestWorker {
    /// Start the worker on its own thread, ingesting into `store`.
    pub fn start(
        store: Arc<Mutex<Store>>,
        config: IngestConfig,
    ) -> Result<IngestWorker, StoreError> {
        let (tx, rx) = mpsc::channel();
        let stats = Arc::new(Mutex::new(IngestStats::default()));
        let state = WorkerState {
            store,
            config,
            rx,
            stats: stats.clone(),
            ready: VecDeque::new(),
            waiting: Vec::new(),
        };
        let thread = std::thread::Builder::new()
            .name("callrec-ingest".to_owned())
            .spawn(move || state.run())
            .map_err(|e| StoreError::Task(format!("cannot start the ingest thread: {e}")))?;
        Ok(IngestWorker {
            queue: IngestQueue { tx, stats },
            thread: Some(thread),
        })
    }

    /// The submitting side.
    pub fn queue(&self) -> IngestQueue {
        self.queue.clone()
    }

    /// Finish the jobs submitted so far, then stop (blocking).
    pub fn shutdown(mut self) {
        let _ = self.queue.tx.send(Msg::Shutdown);
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            tracing::error!("the ingest thread panicked");
        }
    }

    /// [`IngestWorker::shutdown`] without blocking the async runtime.
    pub async fn shutdown_async(self) {
        if tokio::task::spawn_blocking(move || self.shutdown())
            .await
            .is_err()
        {
            tracing::error!("ingest shutdown task failed");
        }
    }
}

struct WorkerState {
    store: Arc<Mutex<Store>>,
    config: IngestConfig,
    rx: Receiver<Msg>,
    stats: Arc<Mutex<IngestStats>>,
    ready: VecDeque<Entry>,
    waiting: Vec<Entry>,
}

enum Attempt {
    Done(IngestResult),
    Retry(StoreError),
}

impl WorkerState {
    fn run(mut self) {
        let mut shutting_down = false;
        loop {
            self.promote_due();
            if self.ready.is_empty() && !shutting_down {
                let timeout = self
                    .waiting
                    .iter()
                    .map(|e| e.due.saturating_duration_since(Instant::now()))
                    .min();
                let msg = match timeout {
                    Some(t) => match self.rx.recv_timeout(t) {
                        Ok(m) => Some(m),
                        Err(RecvTimeoutError::Timeout) => continue,
                        Err(RecvTimeoutError::Disconnected) => None,
                    },
                    None => self.rx.recv().ok(),
                };
                match msg {
                    Some(Msg::Job(job, reply)) => self.accept(job, reply),
                    Some(Msg::Shutdown) | None => shutting_down = true,
                }
            }
            // Take whatever else is already queued, up to a batch.
            while self.ready.len() < self.config.batch {
                match self.rx.try_recv() {
                    Ok(Msg::Job(job, reply)) => self.accept(job, reply),
                    Ok(Msg::Shutdown) => shutting_down = true,
                    Err(_) => break,
                }
            }
            if shutting_down {
                // Last attempt for everything known, then stop.
                let waiting = std::mem::take(&mut self.waiting);
                self.ready.extend(waiting);
                while let Ok(msg) = self.rx.try_recv() {
                    if let Msg::Job(job, reply) = msg {
                        self.accept(job, reply);
                    }
                }
                while !self.ready.is_empty() {
                    let n = self.ready.len().min(self.config.batch);
                    let batch: Vec<Entry> = self.ready.drain(..n).collect();
                    for (entry, attempt) in self.run_batch(batch) {
                        match attempt {
                            Attempt::Done(result) => self.finish(entry, result),
                            Attempt::Retry(e) => {
                                tracing::warn!(id = %entry.job.id, error = %e,
                                    "ingest not finished at shutdown; the next start's reconcile pass will finish it");
                            }
                        }
                    }
                }
                let mut s = lock(&self.stats);
                s.queued = 0;
                s.retrying = 0;
                return;
            }
            if self.ready.is_empty() {
                continue;
            }
            let n = self.ready.len().min(self.config.batch);
            let batch: Vec<Entry> = self.ready.drain(..n).collect();
            for (entry, attempt) in self.run_batch(batch) {
                match attempt {
                    Attempt::Done(result) => self.finish(entry, result),
                    Attempt::Retry(_) => self.retry_later(entry),
                }
            }
        }
    }

    fn accept(&mut self, job: IngestJob, reply: Option<oneshot::Sender<IngestResult>>) {
        self.ready.push_back(Entry {
            job,
            reply,
            attempts: 0,
            due: Instant::now(),
        });
    }

    fn promote_due(&mut self) {
        let now = Instant::now();
        let mut i = 0;
        while i < self.waiting.len() {
            if self.waiting[i].due <= now {
                let e = self.waiting.swap_remove(i);
                lock(&self.stats).retrying -= 1;
                lock(&self.stats).queued += 1;
                self.ready.push_back(e);
            } else {
                i += 1;
            }
        }
    }

    fn finish(&mut self, entry: Entry, result: IngestResult) {
        {
            let mut s = lock(&self.stats);
            s.queued = s.queued.saturating_sub(1);
            match &result {
                Ok(IngestOutcome::Stored { .. }) => s.stored += 1,
                Ok(IngestOutcome::Failed { .. }) => s.failed_recordings += 1,
                Ok(IngestOutcome::AlreadyDone { .. }) => s.already_done += 1,
                Err(e) => {
                    s.errors_permanent += 1;
                    s.last_error = Some(format!("{}: {e}", e.kind().as_str()));
                }
            }
        }
        if let Err(e) = &result {
            tracing::error!(id = %entry.job.id, error = %e, "ingest failed for good");
        }
        if let Some(reply) = entry.reply {
            let _ = reply.send(result);
        }
    }

    fn retry_later(&mut self, mut entry: Entry) {
        entry.attempts = entry.attempts.saturating_add(1);
        let factor = 1u32 << entry.attempts.min(16).saturating_sub(1);
        let delay = self
            .config
            .initial_backoff
            .saturating_mul(factor)
            .min(self.config.max_backoff);
        entry.due = Instant::now() + delay;
        {
            let mut s = lock(&self.stats);
            s.queued = s.queued.saturating_sub(1);
            s.retrying += 1;
        }
        self.waiting.push(entry);
    }

    fn count_transient(&self, e: &StoreError) {
        let mut s = lock(&self.stats);
        match e.kind() {
            ErrorKind::DiskFull => s.errors_disk_full += 1,
            ErrorKind::Busy => s.errors_busy += 1,
            _ => s.errors_io += 1,
        }
        s.last_error = Some(format!("{}: {e}", e.kind().as_str()));
        tracing::warn!(error = %e, "ingest failed; will retry");
    }

    /// Classify an error of one job: retry it, or report it.
    fn attempt_of(&self, e: StoreError) -> Attempt {
        if e.kind().is_transient() {
            self.count_transient(&e);
            Attempt::Retry(e)
        } else {
            Attempt::Done(Err(e))
        }
    }

    /// One attempt at a batch: every entry comes back with its attempt's result. The phases
    /// are `phases::run_phases`, with the store locked only while a phase needs it.
    fn run_batch(&mut self, batch: Vec<Entry>) -> Vec<(Entry, Attempt)> {
        let mut ids = HashSet::new();
        let mut fresh = Vec::with_capacity(batch.len());
        for entry in batch {
            if ids.insert(entry.job.id.clone()) {
                fresh.push(entry);
            } else {
                // The same recording twice in one batch: the second finds it done next time
                // round.
                self.ready.push_back(entry);
            }
        }
        let jobs: Vec<IngestJob> = fresh.iter().map(|e| e.job.clone()).collect();
        let run = phases::run_phases(&*self.store, &jobs, self.config.parallel_files);
        // A failed transaction is one failure, counted once, whatever its jobs.
        for e in &run.batch_errors {
            self.count_transient(e);
        }
        fresh
            .into_iter()
            .zip(run.jobs)
            .map(|(entry, attempt)| {
                let attempt = match attempt {
                    JobAttempt::Done(outcome) => Attempt::Done(Ok(outcome)),
                    JobAttempt::Error(e) => self.attempt_of(e),
                    JobAttempt::BatchFailed(i) => {
                        Attempt::Retry(StoreError::Task(run.batch_errors[i].to_string()))
                    }
                };
                (entry, attempt)
            })
            .collect()
    }
}

//! The one driver of ingest's three phases, for [`Store::ingest`] (one job, the store held
//! throughout) and for the ingest worker (batches, the store locked only for phases 1 and
//! 3): plan the jobs in one transaction, place their files without the store (several at
//! once; each touched directory fsynced once), commit them in one transaction.
//!
//! A transaction of the batch that fails for a passing cause fails every job in it, and is
//! reported once ([`BatchRun::batch_errors`]); one that fails for good is narrowed down by
//! trying the jobs one by one, so one bad job does not hold the others back.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use crate::error::StoreError;
use crate::files;
use crate::ingest::{self, FileResult, IngestJob, IngestOutcome, Plan, Work};
use crate::store::Store;

/// How the phases reach the store: directly, or through the worker's lock (held only while
/// a phase needs it).
pub(crate) trait StoreAccess {
    /// Runs `f` with the store.
    fn with<R>(&mut self, f: impl FnOnce(&mut Store) -> R) -> R;
}

impl StoreAccess for &mut Store {
    fn with<R>(&mut self, f: impl FnOnce(&mut Store) -> R) -> R {
        f(self)
    }
}

impl StoreAccess for &Mutex<Store> {
    fn with<R>(&mut self, f: impl FnOnce(&mut Store) -> R) -> R {
        f(&mut lock(self))
    }
}

/// Locks a mutex of this crate (the store, the worker's counters, the read pool). A panic while
/// holding one leaves nothing half-done in SQLite (the transaction rolls back on drop), so the
/// data behind a poisoned lock is still usable.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What one job's attempt came to.
#[derive(Debug)]
pub(crate) enum JobAttempt {
    /// Finished: stored, failed for want of audio, or already done.
    Done(IngestOutcome),
    /// This job's own error (transient or not).
    Error(StoreError),
    /// A transaction of the batch failed for a passing cause: `batch_errors[i]`.
    BatchFailed(usize),
}

/// What a batch came to: one attempt per job, in order, and the batch's transient errors.
#[derive(Debug)]
pub(crate) struct BatchRun {
    pub jobs: Vec<JobAttempt>,
    pub batch_errors: Vec<StoreError>,
}

/// Runs the three phases for `jobs` (distinct recordings), `parallel` files at a time.
pub(crate) fn run_phases(
    mut store: impl StoreAccess,
    jobs: &[IngestJob],
    parallel: usize,
) -> BatchRun {
    let mut run = BatchRun {
        jobs: Vec::with_capacity(jobs.len()),
        batch_errors: Vec::new(),
    };
    let mut attempts: Vec<Option<JobAttempt>> = jobs.iter().map(|_| None).collect();
    // Phase 1, one transaction.
    let mut works: Vec<(usize, Work)> = Vec::new();
    match store.with(|s| s.plan_ingests(jobs)) {
        Ok(plans) => {
            for (i, plan) in plans.into_iter().enumerate() {
                planned(i, plan, &mut attempts, &mut works);
            }
        }
        Err(e) if e.kind().is_transient() => {
            run.batch_errors.push(e);
            for slot in attempts.iter_mut() {
                *slot = Some(JobAttempt::BatchFailed(0));
            }
        }
        Err(_) => {
            // Something permanent in the batch: plan one by one to find it.
            for (i, job) in jobs.iter().enumerate() {
                let plan = store.with(|s| s.plan_ingest(job));
                planned(i, plan, &mut attempts, &mut works);
            }
        }
    }
    // Phase 2, without the store: several files at once, each directory fsynced once.
    let placed = place_all(&works, parallel.max(1));
    let mut ok: Vec<(usize, Work, FileResult)> = Vec::new();
    let mut dirs: BTreeSet<PathBuf> = BTreeSet::new();
    for ((i, work), result) in works.into_iter().zip(placed) {
        match result {
            Ok(file) => {
                if let FileResult::Placed { placed, .. } = &file {
                    dirs.extend(placed.dirs_to_sync.iter().cloned());
                }
                ok.push((i, work, file));
            }
            Err(e) => attempts[i] = Some(JobAttempt::Error(e)),
        }
    }
    if !ok.is_empty()
        && let Err(e) = files::sync_dirs(&dirs)
    {
        for (i, _, _) in ok.drain(..) {
            attempts[i] = Some(JobAttempt::Error(StoreError::Io {
                op: "fsync directory",
                path: PathBuf::new(),
                source: std::io::Error::other(e.to_string()),
            }));
        }
    }
    // Phase 3, one transaction.
    if !ok.is_empty() {
        let (indexes, commits): (Vec<usize>, Vec<(Work, FileResult)>) =
            ok.into_iter().map(|(i, w, f)| (i, (w, f))).unzip();
        match store.with(|s| s.commit_ingests(&commits)) {
            Ok(outcomes) => {
                for (i, outcome) in indexes.into_iter().zip(outcomes) {
                    attempts[i] = Some(JobAttempt::Done(outcome));
                }
            }
            Err(e) if e.kind().is_transient() => {
                let at = run.batch_errors.len();
                run.batch_errors.push(e);
                for i in indexes {
                    attempts[i] = Some(JobAttempt::BatchFailed(at));
                }
            }
            Err(_) => {
                // A permanent error somewhere in the batch: commit one by one to find it.
                for (i, commit) in indexes.into_iter().zip(commits) {
                    let r = store.with(|s| s.commit_ingests(std::slice::from_ref(&commit)));
                    attempts[i] = Some(match r {
                        Ok(mut outcomes) => match outcomes.pop() {
                            Some(o) => JobAttempt::Done(o),
                            None => JobAttempt::Error(StoreError::Corrupt(
                                "ingest commit returned nothing".into(),
                            )),
                        },
                        Err(e) => JobAttempt::Error(e),
                    });
                }
            }
        }
    }
    run.jobs = attempts
        .into_iter()
        .map(|a| {
            a.unwrap_or_else(|| {
                JobAttempt::Error(StoreError::Corrupt(
                    "an ingest job was left undecided".into(),
                ))
            })
        })
        .collect();
    run
}

/// Phase 1's answer for job `i`: done already, work for phase 2, or its error.
fn planned(
    i: usize,
    plan: Result<Plan, StoreError>,
    attempts: &mut [Option<JobAttempt>],
    works: &mut Vec<(usize, Work)>,
) {
    match plan {
        Ok(Plan::Done(outcome)) => attempts[i] = Some(JobAttempt::Done(outcome)),
        Ok(Plan::Work(work)) => works.push((i, work)),
        Err(e) => attempts[i] = Some(JobAttempt::Error(e)),
    }
}

/// Phase 2 for every job, `parallel` at a time.
fn place_all(works: &[(usize, Work)], parallel: usize) -> Vec<Result<FileResult, StoreError>> {
    if parallel <= 1 || works.len() <= 1 {
        return works.iter().map(|(_, w)| ingest::place(w)).collect();
    }
    let chunk = works.len().div_ceil(parallel);
    std::thread::scope(|s| {
        let handles: Vec<_> = works
            .chunks(chunk)
            .map(|part| {
                let handle = s.spawn(move || {
                    part.iter()
                        .map(|(_, w)| ingest::place(w))
                        .collect::<Vec<_>>()
                });
                (part.len(), handle)
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|(len, h)| {
                h.join().unwrap_or_else(|_| {
                    (0..len)
                        .map(|_| Err(StoreError::Task("a file worker panicked".into())))
                        .collect()
                })
            })
            .collect()
    })
}

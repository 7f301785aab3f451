//! The store writer: the daemon's one way into the store. It applies the recorder's store
//! operations in order, hands finished files to the store's ingest worker, and keeps the
//! in-memory directory current.
//!
//! Everything here runs off the ESL event loop: operations arrive over a channel and each is
//! one store call on the blocking pool (`StoreHandle::write`), so SQLite and file work never
//! stall event handling.
//!
//! One retry layer per kind of work, with one policy (the worker's [`IngestConfig`] backoff):
//! a row operation (create, segment, discard, fail) that fails for a passing cause is tried
//! again here, holding back the operations after it so a row exists before its segments; a
//! finished file is submitted once and its ingest is retried by the worker alone, which also
//! batches it (`callrec_store::IngestWorker`). Nothing here retries an ingest.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use callrec_model::{RecordingId, to_utc};
use callrec_store::{IngestConfig, IngestJob, IngestOutcome, IngestQueue, StoreError, StoreHandle};
use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::core::{Core, StoreWork};
use crate::directory::{OwnerIndex, UserKey};
use crate::recorder::{InProgressRow, POLICY_ACTOR, StoreOp};

/// How often the directory version is checked for user or site changes.
const DIRECTORY_POLL: Duration = Duration::from_secs(1);

/// Applies store operations until the channel closes (every sender dropped), then returns:
/// at shutdown every operation already decided is applied before the index closes. Answers
/// to actions come through here too, so they are given once the action's segment is in.
pub(crate) async fn apply_store_ops(
    core: Arc<Core>,
    store: StoreHandle,
    ingest: IngestQueue,
    retry: Backoff,
    mut work: mpsc::UnboundedReceiver<StoreWork>,
) {
    while let Some(next) = work.recv().await {
        match next {
            StoreWork::Op(op) => apply_until_done(&core, &store, &ingest, retry, op).await,
            StoreWork::Resolve { ticket, outcome } => core.resolve(ticket, outcome),
        }
    }
}

/// How long to wait before trying a failed row operation again: capped exponential backoff,
/// the same policy as the ingest worker's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Backoff {
    /// First wait.
    pub initial: Duration,
    /// Longest wait.
    pub max: Duration,
}

impl From<&IngestConfig> for Backoff {
    fn from(config: &IngestConfig) -> Backoff {
        Backoff {
            initial: config.initial_backoff,
            max: config.max_backoff,
        }
    }
}

/// Applies one operation, trying again while it fails for a cause that passes (a full disk,
/// a busy index, an I/O error): a recording's row that is never created loses the recording,
/// since its ingest then finds no row. The operations decided after it wait, so a row still
/// exists before its segments and its ingest. Once the store is closing (shutdown) a failure
/// is final: the next start's reconciliation has the rest.
async fn apply_until_done(
    core: &Arc<Core>,
    store: &StoreHandle,
    ingest: &IngestQueue,
    retry: Backoff,
    op: StoreOp,
) {
    let mut delay = retry.initial;
    loop {
        match apply_one(core, store, ingest, op.clone()).await {
            Ok(()) => return,
            Err(err) if err.kind().is_transient() && !core.store_closed() => {
                tracing::error!(error = %err, retry_in = ?delay,
                    "a store operation failed; it is tried again, and the ones after it wait");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(retry.max);
            }
            Err(err) => {
                tracing::error!(error = %err, "a store operation failed");
                return;
            }
        }
    }
}

async fn apply_one(
    core: &Arc<Core>,
    store: &StoreHandle,
    ingest: &IngestQueue,
    op: StoreOp,
) -> Result<(), StoreError> {
    match op {
        StoreOp::Create(new) => {
            store
                .write(move |s| s.create_recording(&new, POLICY_ACTOR))
                .await?;
        }
        StoreOp::Segment {
            id,
            kind,
            at,
            source,
            actor,
        } => {
            store
                .write(move |s| s.add_segment(&id, kind, to_utc(at), source, &actor))
                .await?;
        }
        StoreOp::Ingest { id, ended_at, .. } => {
            submit_ingest(core, store, ingest, id, Some(to_utc(ended_at)))?
        }
        StoreOp::Discard {
            id,
            reason,
            at,
            spool_path,
        } => {
            // The switch says it deleted the file; if it is there after all, it is kept.
            if tokio::fs::try_exists(&spool_path).await.unwrap_or(false) {
                tracing::warn!(%id, path = %spool_path, "a recording reported discarded left its file; storing it");
                submit_ingest(core, store, ingest, id, Some(to_utc(at)))?;
            } else {
                core.metrics.finished("discarded");
                store
                    .write(move |s| s.discard(&id, &reason, to_utc(at), POLICY_ACTOR))
                    .await?;
            }
        }
        StoreOp::Disarmed { id, spool_path } => {
            // Usually there is nothing: the switch deletes a file shorter than RECORD_MIN_SEC,
            // and an unanswered leg wrote none. With `min_seconds = 0` the header is left.
            remove_armed_file(&id, std::path::Path::new(&spool_path)).await;
        }
        StoreOp::ArmedEnded { new, ended_at } => {
            // More than a WAV header: the leg answered and the switch wrote audio.
            let has_audio = tokio::fs::metadata(&new.spool_path)
                .await
                .is_ok_and(|m| m.len() > 44);
            if has_audio {
                tracing::warn!(
                    id = %new.id,
                    channel = %new.call_uuid,
                    "a recording armed before answer ended while its answer was never seen (a \
                     dropped connection or events); the switch wrote it: storing it"
                );
                let id = new.id.clone();
                let started_at = new.started_at;
                store
                    .write(move |s| {
                        s.create_recording(&new, POLICY_ACTOR)?;
                        s.add_segment(
                            &new.id,
                            callrec_model::SegmentKind::Start,
                            started_at,
                            callrec_model::SegmentSource::Policy,
                            POLICY_ACTOR,
                        )
                    })
                    .await?;
                submit_ingest(core, store, ingest, id, Some(to_utc(ended_at)))?;
            } else {
                remove_armed_file(&new.id, &new.spool_path).await;
            }
        }
        StoreOp::Fail { id, reason, .. } => {
            core.metrics.finished("failed");
            let why = reason.clone();
            let (recording, mode) = store
                .write(move |s| {
                    let rec = s.fail(&id, &reason, POLICY_ACTOR)?;
                    let mode = s.view().user_by_id(rec.user_id)?.mode;
                    Ok((rec, mode))
                })
                .await?;
            alert_if_required(core, &recording, mode, &why);
        }
    }
    Ok(())
}

/// A failed recording of a user whose mode records every call is a call that should have
/// been recorded and was not (MiFID II, FCA): counted (`callrec_calls_not_recorded_total`)
/// and logged at WARN with the call and the user. The webhook event for it
/// (`call.not_recorded`) is the index's, written with the failure.
fn alert_if_required(
    core: &Core,
    recording: &callrec_store::Recording,
    mode: callrec_model::RecordingMode,
    reason: &str,
) {
    if !mode.records_on_answer() {
        return;
    }
    core.metrics.calls_not_recorded.inc();
    tracing::warn!(
        id = %recording.id,
        call = %recording.call_uuid,
        user = %recording.user,
        site = %recording.site,
        %reason,
        "a call that should have been recorded was not: the user's mode records every call"
    );
}

/// Removes whatever file the switch left for an armed recording that is not kept (none, or a
/// bare header with `min_seconds = 0`).
async fn remove_armed_file(id: &RecordingId, path: &std::path::Path) {
    match tokio::fs::remove_file(path).await {
        Ok(()) => {
            tracing::debug!(%id, path = %path.display(), "removed the file of an armed recording not kept")
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => tracing::warn!(%id, path = %path.display(), error = %err,
            "cannot remove the file of an armed recording not kept"),
    }
}

fn submit_ingest(
    core: &Arc<Core>,
    store: &StoreHandle,
    ingest: &IngestQueue,
    id: RecordingId,
    ended_at: Option<DateTime<Utc>>,
) -> Result<(), StoreError> {
    // One ingest per recording at a time: while one is under way (retrying for a full disk,
    // say), the spool scans that hand its row in again add nothing to the worker's queue.
    if !core.ingesting().insert(id.clone()) {
        return Ok(());
    }
    let started = Instant::now();
    let mut job = IngestJob::new(id.clone());
    job.ended_at = ended_at;
    let result = match ingest.submit(job) {
        Ok(result) => result,
        Err(err) => {
            core.ingesting().remove(&id);
            return Err(err);
        }
    };
    let core = core.clone();
    let store = store.clone();
    tokio::spawn(async move {
        let result = result.await;
        core.ingesting().remove(&id);
        match result {
            Ok(Ok(outcome)) => {
                core.metrics
                    .ingest_latency
                    .observe(started.elapsed().as_secs_f64());
                match &outcome {
                    IngestOutcome::Stored { id, path, .. } => {
                        core.metrics.finished("stored");
                        tracing::info!(%id, path = %path.display(), "recording stored");
                    }
                    IngestOutcome::Failed { id, reason, .. } => {
                        core.metrics.finished("failed");
                        core.metrics.ingest_failed("no_audio");
                        tracing::warn!(%id, %reason, "recording kept as failed");
                        let id = id.clone();
                        let system = callrec_store::Access::system(POLICY_ACTOR);
                        if let Ok((recording, mode)) = store
                            .read(move |v| {
                                let rec = v.recording(&id, &system)?;
                                let mode = v.user_by_id(rec.user_id)?.mode;
                                Ok((rec, mode))
                            })
                            .await
                        {
                            alert_if_required(&core, &recording, mode, reason);
                        }
                    }
                    IngestOutcome::AlreadyDone { .. } => {}
                }
            }
            // Counted from the worker's own totals (`permanent`), with the transient kinds.
            Ok(Err(err)) => tracing::error!(error = %err, "ingest failed for good"),
            // The worker stopped (shutdown): the next start's reconcile finishes it.
            Err(_) => {}
        }
    });
    Ok(())
}

/// Reloads the directory whenever its version moves.
pub(crate) async fn follow_directory(
    core: Arc<Core>,
    store: StoreHandle,
    mut version: u64,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(DIRECTORY_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = match store.read(|v| v.directory_version()).await {
            Ok(v) => v,
            Err(err) => {
                tracing::warn!(error = %err, "cannot read the directory version");
                continue;
            }
        };
        if now == version {
            continue;
        }
        match store.read(|v| v.directory()).await {
            Ok(dir) => {
                version = dir.version;
                core.recorder().set_owners(OwnerIndex::new(dir));
                core.publish.notify_one();
                tracing::info!(version, "users or sites changed; directory reloaded");
            }
            Err(err) => tracing::warn!(error = %err, "cannot reload the directory"),
        }
    }
}

/// The index's recordings still `recording`, with their owners.
pub(crate) async fn in_progress(
    core: &Core,
    store: &StoreHandle,
) -> Result<Vec<InProgressRow>, StoreError> {
    let rows = store.read(|v| v.recordings_in_progress()).await?;
    let rec = core.recorder();
    let owners = rec.owners();
    Ok(rows
        .into_iter()
        .map(|row| InProgressRow {
            user: owners
                .users()
                .iter()
                .find(|u| u.id == row.user_id)
                .map(UserKey::of),
            id: row.id,
            call_uuid: row.call_uuid,
            spool_path: row.spool_path.display().to_string(),
            paused_since: row.paused_since.map(|t| t.timestamp_micros()),
        })
        .collect())
}

/// Makes a configured path absolute (the switch and the store need absolute paths).
pub(crate) fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::{Arc, Mutex};

    use callrec_model::{Direction, RecordingId};
    use callrec_store::{IngestConfig, IngestQueue, IngestWorker, NewUser, Store, StoreHandle};
    use callrec_testkit::tmpfs::Tmpfs;
    use callrec_testkit::wait::{eventually, eventually_async};
    use callrec_testkit::wav;
    use tokio::sync::mpsc;

    use super::{Backoff, apply_store_ops};
    use crate::core::{Core, StoreWork};
    use crate::directory::{OwnerIndex, UserKey};
    use crate::fixtures;
    use crate::recorder::{ActionPlan, StoreOp};
    use callrec_model::{ActionError, NewRecording, UserId, to_utc};

    /// Log lines, for a test to wait on what the store writer reported.
    #[derive(Clone, Default)]
    struct Log(Arc<Mutex<Vec<u8>>>);

    impl Log {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
        }
    }

    impl std::io::Write for Log {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A store on a small tmpfs of its own, its ingest worker and the daemon's store writer.
    struct Bed {
        mnt: PathBuf,
        store: StoreHandle,
        worker: Option<IngestWorker>,
        queue: IngestQueue,
        core: Arc<Core>,
        tx: mpsc::UnboundedSender<StoreWork>,
        writer: Option<tokio::task::JoinHandle<()>>,
        // Dropped last: unmounts after everything that holds files on it.
        disk: Tmpfs,
        _dir: tempfile::TempDir,
    }

    impl Bed {
        fn start() -> Option<Bed> {
            let dir = tempfile::tempdir().unwrap();
            let mnt = dir.path().join("disk");
            let disk = Tmpfs::mount(&mnt, "8m")
                .inspect_err(|e| println!("SKIPPED: {e}; the disk-full test needs root"))
                .ok()?;
            std::fs::create_dir_all(mnt.join("spool")).unwrap();
            let mut store = Store::open(mnt.join("data")).unwrap();
            store
                .add_user(&NewUser::new("default", "1001"), "test")
                .unwrap();
            let dir_snapshot = store.view().directory().unwrap();
            let store = StoreHandle::new(store);
            let config = IngestConfig::default();
            let worker = store.start_ingest_worker(config.clone()).unwrap();
            let queue = worker.queue();
            // No event reaches the recorder here: the tests hand store work to the writer.
            let recorder = fixtures::recorder_in(OwnerIndex::new(dir_snapshot));
            let (tx, work) = mpsc::unbounded_channel();
            let core = fixtures::core(recorder, tx.clone());
            let writer = tokio::spawn(apply_store_ops(
                core.clone(),
                store.clone(),
                queue.clone(),
                Backoff::from(&config),
                work,
            ));
            Some(Bed {
                mnt,
                store,
                worker: Some(worker),
                queue,
                core,
                tx,
                writer: Some(writer),
                disk,
                _dir: dir,
            })
        }

        fn create(&self, id: &RecordingId) {
            self.tx
                .send(StoreWork::Op(StoreOp::Create(NewRecording {
                    id: id.clone(),
                    user: self.user_1001(),
                    call_uuid: "call".into(),
                    direction: Direction::Outbound,
                    from: "1001".into(),
                    to: "02077456456".into(),
                    started_at: to_utc(1_700_000_000_000_000),
                    format: "wav".into(),
                    spool_path: self.spool_path(id).into(),
                })))
                .unwrap();
        }

        /// The id the index gave user 1001 of site default.
        fn user_1001(&self) -> UserId {
            let key = UserKey {
                site: "default".into(),
                extension: "1001".into(),
            };
            let owners = self.core.recorder();
            owners
                .owners()
                .user(&key)
                .map(|u| u.id)
                .expect("1001 is in the index")
        }

        fn spool_path(&self, id: &RecordingId) -> String {
            self.mnt
                .join("spool")
                .join(format!("{id}.wav"))
                .display()
                .to_string()
        }

        async fn in_progress(&self) -> Vec<RecordingId> {
            self.store
                .read(|v| v.recordings_in_progress())
                .await
                .unwrap_or_default()
                .into_iter()
                .map(|r| r.id)
                .collect()
        }

        /// Waits until the store writer has applied everything sent before.
        async fn settle(&self, ticket: u64) {
            let plan = ActionPlan {
                effects: Vec::new(),
                ticket,
            };
            let outcome = Err(ActionError::SwitchUnavailable { action: "settle" });
            self.tx
                .send(StoreWork::Resolve {
                    ticket,
                    outcome: outcome.clone(),
                })
                .unwrap();
            assert_eq!(self.core.run_action(plan).await, outcome);
        }

        async fn stop(mut self) {
            self.core.close_store();
            drop(self.tx);
            if let Some(writer) = self.writer.take() {
                let _ = writer.await;
            }
            if let Some(worker) = self.worker.take() {
                worker.shutdown_async().await;
            }
        }
    }

    // One thread: the store writer logs on the test's thread, where the log is captured.
    #[tokio::test]
    async fn a_recording_answered_while_the_index_disk_is_full_is_indexed_once_space_returns() {
        // The disk holding the index fills up as a call is answered: the row cannot be
        // created then. It must be created once space returns, or the file the switch
        // writes is never indexed (its ingest finds no row) and the recording is lost.
        let log = Log::default();
        let writer = log.clone();
        let _guard = tracing::subscriber::set_default(
            tracing_subscriber::fmt()
                .with_writer(move || writer.clone())
                .with_ansi(false)
                .finish(),
        );
        let Some(bed) = Bed::start() else { return };
        let filler = bed.disk.fill();
        let id = RecordingId::new();
        bed.create(&id);
        eventually("the failed store operation in the log", || {
            log.text().contains("a store operation failed")
        })
        .await;
        std::fs::remove_file(filler).unwrap();

        eventually_async(
            "the row of the recording answered while the disk was full",
            || async { bed.in_progress().await.contains(&id) },
        )
        .await;
        bed.stop().await;
    }

    #[tokio::test]
    async fn spool_scans_while_the_disk_is_full_do_not_pile_up_ingests_of_one_recording() {
        // An ingest that cannot finish (the disk is full) leaves its row `recording`, so every
        // spool scan hands it to ingest again. The worker must hold one job for it, not one
        // more per scan (hours of a full disk would pile up thousands, each retried).
        let Some(bed) = Bed::start() else { return };
        let id = RecordingId::new();
        bed.create(&id);
        std::fs::write(bed.spool_path(&id), wav::empty()).unwrap();
        bed.settle(1).await;
        assert!(bed.in_progress().await.contains(&id));
        let filler = bed.disk.fill();
        let ingest = || {
            bed.tx
                .send(StoreWork::Op(StoreOp::Ingest {
                    id: id.clone(),
                    spool_path: bed.spool_path(&id),
                    ended_at: 1_700_000_060_000_000,
                }))
                .unwrap();
        };
        ingest();
        eventually("the ingest failing for lack of space", || {
            bed.queue.stats().errors_disk_full > 0
        })
        .await;
        for _ in 0..4 {
            ingest();
        }
        bed.settle(2).await;
        let stats = bed.queue.stats();
        assert_eq!(stats.queued + stats.retrying, 1, "{stats:?}");

        std::fs::remove_file(filler).unwrap();
        eventually("the recording stored once space returns", || {
            let s = bed.queue.stats();
            (s.stored + s.failed_recordings == 1 && s.queued + s.retrying == 0)
                .then_some(())
                .is_some()
        })
        .await;
        bed.stop().await;
    }
}

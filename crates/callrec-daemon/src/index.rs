//! The daemon's side of the store: applies the recorder's store operations in order, submits
//! finished files to the store's ingest worker, and keeps the in-memory directory current.
//!
//! Everything here runs off the ESL event loop: operations arrive over a channel and each is
//! one store call on the blocking pool (`StoreHandle::write`), so SQLite and file work never
//! stall event handling.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use callrec_store::{
    IngestJob, IngestOutcome, IngestQueue, NewRecording, RecordingId, StoreError, StoreHandle,
};
use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::core::{Core, StoreWork};
use crate::decide::{InProgressRow, POLICY_ACTOR, StoreOp};
use crate::directory::{self, UserKey};
use crate::event::Micros;

/// How often the directory version is checked for user or site changes.
const DIRECTORY_POLL: Duration = Duration::from_secs(1);

/// A switch timestamp as a UTC time.
pub(crate) fn utc(at: Micros) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_micros(at).unwrap_or_default()
}

/// Applies store operations until the channel closes (every sender dropped), then returns:
/// at shutdown every operation already decided is applied before the index closes. Answers
/// to actions come through here too, so they are given once the action's segment is in.
pub(crate) async fn apply_store_ops(
    core: Arc<Core>,
    store: StoreHandle,
    ingest: IngestQueue,
    mut work: mpsc::UnboundedReceiver<StoreWork>,
) {
    while let Some(next) = work.recv().await {
        match next {
            StoreWork::Op(op) => {
                if let Err(err) = apply_one(&core, &store, &ingest, op).await {
                    tracing::error!(error = %err, "a store operation failed");
                }
            }
            StoreWork::Resolve { ticket, outcome } => core.resolve(ticket, outcome),
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
            let user = core
                .recorder()
                .directory()
                .user(&UserKey {
                    site: new.site.clone(),
                    extension: new.user.clone(),
                })
                .and_then(|u| u.id);
            let Some(user) = user else {
                tracing::error!(id = %new.id, user = %new.user, site = %new.site,
                    "recording of a user the index does not know; it will not be indexed");
                return Ok(());
            };
            let row = NewRecording {
                id: new.id,
                user,
                call_uuid: new.call_uuid,
                direction: new.direction,
                from: new.from,
                to: new.to,
                started_at: utc(new.started_at),
                format: new.format,
                spool_path: PathBuf::from(new.spool_path),
            };
            store
                .write(move |s| s.create_recording(&row, POLICY_ACTOR))
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
                .write(move |s| s.add_segment(&id, kind, utc(at), source, &actor))
                .await?;
        }
        StoreOp::Ingest { id, ended_at, .. } => {
            submit_ingest(core, ingest, id, Some(utc(ended_at)))?
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
                submit_ingest(core, ingest, id, Some(utc(at)))?;
            } else {
                core.metrics.finished("discarded");
                store
                    .write(move |s| s.discard(&id, &reason, utc(at), POLICY_ACTOR))
                    .await?;
            }
        }
        StoreOp::Fail { id, reason, .. } => {
            core.metrics.finished("failed");
            store
                .write(move |s| s.fail(&id, &reason, POLICY_ACTOR))
                .await?;
        }
    }
    Ok(())
}

fn submit_ingest(
    core: &Arc<Core>,
    ingest: &IngestQueue,
    id: RecordingId,
    ended_at: Option<DateTime<Utc>>,
) -> Result<(), StoreError> {
    let started = Instant::now();
    let mut job = IngestJob::new(id);
    job.ended_at = ended_at;
    let result = ingest.submit(job)?;
    let core = core.clone();
    tokio::spawn(async move {
        match result.await {
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
                let fresh = directory::from_store(&dir);
                core.recorder().set_directory(fresh);
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
    let dir = rec.directory();
    Ok(rows
        .into_iter()
        .map(|row| InProgressRow {
            user: dir
                .users()
                .iter()
                .find(|u| u.id == Some(row.user_id))
                .map(|u| u.key()),
            id: row.id,
            call_uuid: row.call_uuid,
            spool_path: row.spool_path.display().to_string(),
        })
        .collect())
}

/// Makes a configured path absolute (the switch and the store need absolute paths).
pub(crate) fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

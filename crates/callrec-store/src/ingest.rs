//! Ingest: a finished spool file becomes a stored, hashed, indexed recording (SPEC §4.1).
//!
//! Three phases, so the index lock is never held during file work:
//! 1. **plan** (short write): the row must be `recording`; its `ended_at` is set, which marks
//!    an ingest as under way so a crash from here on is finished by [`Store::reconcile`];
//! 2. **place** (no lock): hash + fsync + rename into the store (copy across filesystems),
//!    fsync of the directories; or, after a crash between rename and commit, re-hash the file
//!    already in the store. A WAV whose header sizes disagree with the file (the switch was
//!    killed before it closed it) is copied with the sizes rewritten instead (see
//!    [`place`]);
//! 3. **commit** (short write): one transaction sets `stored` (or `failed` with the reason
//!    when the file holds no audio), size, hash, duration, expiry, usage, audit entry, and
//!    quota eviction. Only then is a spool file left by a copy removed.
//!
//! Every phase is idempotent: running an ingest again at any point after a crash completes it
//! exactly once. [`Store::ingest`] runs the three in a row; the worker (`worker.rs`) runs
//! them for a batch at a time with the lock released during phase 2.

use std::collections::BTreeSet;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde_json::json;

use crate::audit::{self, Event};
use crate::error::StoreError;
use crate::files::{self, Placed};
use crate::phases::{self, JobAttempt};
use crate::retention;
use crate::store::{Store, expires_at};
use crate::view::{self, ReadView, ms};
use crate::wav;
use callrec_model::{RecordingId, RecordingState, SegmentKind};
use callrec_model::{SiteId, UserId};

/// A request to ingest a recording whose file the switch has closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestJob {
    /// The recording.
    pub id: RecordingId,
    /// When the recording ended (RECORD_STOP); `None` uses the time the ingest starts.
    pub ended_at: Option<DateTime<Utc>>,
}

impl IngestJob {
    /// Ingest `id`, ended now.
    pub fn new(id: RecordingId) -> Self {
        IngestJob { id, ended_at: None }
    }
}

/// How an ingest ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum IngestOutcome {
    /// The file is in the store and the row says `stored`.
    Stored {
        /// The recording.
        id: RecordingId,
        /// Where the file is.
        path: PathBuf,
        /// Its size.
        size_bytes: u64,
        /// Its SHA-256, hex.
        sha256: String,
        /// Length of its audio (`None` for formats the store cannot measure).
        duration_ms: Option<u64>,
    },
    /// The row says `failed`: the file holds no audio or is not readable audio (it is kept in
    /// the store, `path`), or there was no file at all (`path` is `None`).
    Failed {
        /// The recording.
        id: RecordingId,
        /// Why.
        reason: String,
        /// Where the kept file is, if there is one.
        path: Option<PathBuf>,
    },
    /// The recording was not `recording` any more (already ingested, discarded…): nothing
    /// was done.
    AlreadyDone {
        /// The recording.
        id: RecordingId,
        /// Its state.
        state: RecordingState,
    },
}

impl IngestOutcome {
    /// The recording concerned.
    pub fn id(&self) -> &RecordingId {
        match self {
            IngestOutcome::Stored { id, .. }
            | IngestOutcome::Failed { id, .. }
            | IngestOutcome::AlreadyDone { id, .. } => id,
        }
    }
}

/// Phase 1's result: what phase 2 must do.
#[derive(Debug, Clone)]
pub(crate) struct Work {
    pub id: RecordingId,
    pub site: SiteId,
    pub user: UserId,
    pub spool: PathBuf,
    pub dest: PathBuf,
    pub format: String,
}

/// Phase 2's result.
#[derive(Debug, Clone)]
pub(crate) enum FileResult {
    /// The file is in the store; `repaired` if its WAV header was rewritten on the way.
    Placed {
        placed: Placed,
        repaired: Option<wav::HeaderRepair>,
    },
    /// Neither the spool file nor the store file exists.
    Lost,
}

pub(crate) enum Plan {
    Done(IngestOutcome),
    Work(Work),
}

impl Store {
    /// Ingest one recording whose file the switch has closed (SPEC §4.1). Blocking; the daemon
    /// uses the [`crate::IngestWorker`] instead.
    ///
    /// In order: the row (which must be `recording`) gets `ended_at` (the job's, or now),
    /// marking the ingest as under way; the spool file is hashed, fsynced and renamed into
    /// `store/<site>/<YYYY>/<MM>/<DD>/<file name>` (copied, fsynced and renamed across
    /// filesystems), the directories are fsynced; one transaction then sets `stored` with
    /// size, hash, duration and expiry, updates usage, writes the audit entry and applies the
    /// `evict_oldest` quota policy. A file with no audio (a bare WAV header), unreadable audio
    /// or no file at all ends `failed` with the reason (any file is kept). A WAV whose header
    /// sizes the switch never patched is stored as a copy with the sizes rewritten, its
    /// `state_reason` saying so ([`HEADER_REPAIRED`]). A spool file left by a copy (across
    /// filesystems, or repaired) is removed only after the commit.
    ///
    /// Idempotent: run again at any point after a crash it finishes the job exactly once
    /// (finding the file in the spool or already in the store); on a recording that is no
    /// longer `recording` it does nothing and says so ([`IngestOutcome::AlreadyDone`]).
    /// Errors of kind `DiskFull`, `Io` or `Busy` leave the spool file intact and are worth
    /// retrying.
    pub fn ingest(&mut self, job: &IngestJob) -> Result<IngestOutcome, StoreError> {
        // The worker's phases, for a batch of one, the store held throughout.
        let mut run = phases::run_phases(self, std::slice::from_ref(job), 1);
        match run.jobs.pop() {
            Some(JobAttempt::Done(outcome)) => Ok(outcome),
            Some(JobAttempt::Error(e)) => Err(e),
            Some(JobAttempt::BatchFailed(i)) => Err(run.batch_errors.swap_remove(i)),
            None => Err(StoreError::Corrupt("ingest returned nothing".into())),
        }
    }

    /// Phase 1 for one job.
    pub(crate) fn plan_ingest(&mut self, job: &IngestJob) -> Result<Plan, StoreError> {
        let mut plans = self.plan_ingests(std::slice::from_ref(job))?;
        plans
            .pop()
            .unwrap_or_else(|| Err(StoreError::Corrupt("ingest plan returned nothing".into())))
    }

    /// Phase 1 for a batch, in one transaction (one fsync for the lot). The outer error is
    /// the transaction's own (nothing was planned); the inner ones belong to single jobs
    /// (an unknown recording).
    pub(crate) fn plan_ingests(
        &mut self,
        jobs: &[IngestJob],
    ) -> Result<Vec<Result<Plan, StoreError>>, StoreError> {
        let now = self.now();
        let tx = self.begin()?;
        let mut plans = Vec::with_capacity(jobs.len());
        for job in jobs {
            match plan_one(&tx, &self.paths, job, now) {
                Ok(plan) => plans.push(Ok(plan)),
                // A failing statement may have ended the transaction: give up on the batch.
                Err(e @ StoreError::Sql { .. }) => return Err(e),
                Err(e) => plans.push(Err(e)),
            }
        }
        tx.commit()
            .map_err(StoreError::sql("commit ingest start"))?;
        Ok(plans)
    }

    /// Phase 3 for a batch, in one transaction: every job commits, or none does and the
    /// error (for a transient one, retry the batch; otherwise retry the jobs one by one to
    /// find the culprit) is returned.
    pub(crate) fn commit_ingests(
        &mut self,
        batch: &[(Work, FileResult)],
    ) -> Result<Vec<IngestOutcome>, StoreError> {
        let now = self.now();
        let paths = self.paths.clone();
        let tx = self.begin()?;
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut removals = Vec::new();
        for (work, file) in batch {
            let (outcome, mut remove) = commit_one(&tx, &paths, now, work, file)?;
            outcomes.push(outcome);
            removals.append(&mut remove);
        }
        tx.commit().map_err(StoreError::sql("commit ingest"))?;
        if let Err(e) = retention::remove_files(self, &removals) {
            // Committed; the leftover files stay pending for the reconcile pass.
            tracing::warn!(error = %e, "removing files after ingest failed");
        }
        Ok(outcomes)
    }
}

/// Phase 1 for one job inside the batch transaction.
fn plan_one(
    tx: &Connection,
    paths: &crate::store::Paths,
    job: &IngestJob,
    now: DateTime<Utc>,
) -> Result<Plan, StoreError> {
    let row: Option<(i64, i64, i64, String, String, String, String)> = tx
        .prepare_cached(
            "SELECT seq, site_id, user_id, state, spool_path, store_path, format
             FROM recordings WHERE id = ?1",
        )
        .and_then(|mut s| {
            s.query_row([job.id.as_str()], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            })
            .optional()
        })
        .map_err(StoreError::sql("read recording to ingest"))?;
    let Some((seq, site, user, state, spool, store_path, format)) = row else {
        return Err(StoreError::UnknownRecording(job.id.clone()));
    };
    let state: RecordingState = state
        .parse()
        .map_err(|e| StoreError::Corrupt(format!("recording {}: {e}", job.id)))?;
    if state != RecordingState::Recording {
        return Ok(Plan::Done(IngestOutcome::AlreadyDone {
            id: job.id.clone(),
            state,
        }));
    }
    tx.prepare_cached("UPDATE recordings SET ended_at = COALESCE(ended_at, ?2) WHERE seq = ?1")
        .and_then(|mut s| s.execute(params![seq, ms(job.ended_at.unwrap_or(now))]))
        .map_err(StoreError::sql("mark ingest under way"))?;
    Ok(Plan::Work(Work {
        id: job.id.clone(),
        site: SiteId(site),
        user: UserId(user),
        spool: PathBuf::from(spool),
        dest: paths.store_file(&store_path),
        format,
    }))
}

/// Phase 2: put the file in the store (or find it there after a crash).
///
/// A WAV the switch never closed (killed mid-call) still has the sizes it wrote at the start:
/// a player reading its header sees no audio. It is stored repaired: copied into the store
/// with the RIFF and `data` sizes rewritten from the bytes really there (a torn last frame
/// cut), so the stored file, its hash, its duration and what the API serves agree. A copy
/// rather than a rewrite of the spool file in place, because the spool file is the only copy
/// of the recording: it is never written to, it may belong to the switch's user (callrec
/// needs to rename it, not to write it), and it stays, broken header and all, until the
/// commit. So a crash anywhere before the commit leaves the same spool file, the next attempt
/// repairs it again (writing the same bytes over the copy) and the commit still says it was
/// repaired. The cost, one more copy of a file the switch left behind, is paid only after a
/// switch crash.
pub(crate) fn place(work: &Work) -> Result<FileResult, StoreError> {
    if files::exists(&work.spool) {
        if work.format == "wav" {
            let (head, len) = files::read_head(&work.spool)?;
            if let Some(repair) = wav::plan_repair(&head, len) {
                let rewrite = files::Rewrite {
                    patches: repair
                        .patches()
                        .iter()
                        .map(|(at, bytes)| (*at, bytes.to_vec()))
                        .collect(),
                    len: repair.file_len,
                };
                let placed = files::place_rewritten(&work.spool, &work.dest, &rewrite)?;
                tracing::warn!(
                    recording = %work.id,
                    spool = %work.spool.display(),
                    header_data_bytes = repair.data_size_was,
                    data_bytes = repair.data_size,
                    cut_bytes = repair.cut_bytes(),
                    "{HEADER_REPAIRED}"
                );
                return Ok(FileResult::Placed {
                    placed,
                    repaired: Some(repair),
                });
            }
        }
        return files::place(&work.spool, &work.dest).map(|placed| FileResult::Placed {
            placed,
            repaired: None,
        });
    }
    if files::exists(&work.dest) {
        // Renamed before a crash, not yet committed: the file in the store is the recording.
        // (A repaired copy never gets here: its spool file stays until the commit.)
        let hashed = files::hash_and_sync(&work.dest)?;
        let mut dirs_to_sync = BTreeSet::new();
        if let Some(dir) = work.dest.parent() {
            dirs_to_sync.insert(dir.to_path_buf());
        }
        return Ok(FileResult::Placed {
            placed: Placed {
                hashed,
                dirs_to_sync,
                spool_left: false,
            },
            repaired: None,
        });
    }
    Ok(FileResult::Lost)
}

/// How the `state_reason` of a recording stored with a repaired WAV header begins (the
/// switch was killed before it closed the file; see the ingest's phase 2), and what the
/// warning logged then says.
pub const HEADER_REPAIRED: &str = "header repaired: the switch stopped before closing the file";

/// The `state_reason` of a recording stored repaired: [`HEADER_REPAIRED`] and what changed.
fn repaired_reason(repair: &wav::HeaderRepair) -> String {
    let mut reason = format!(
        "{HEADER_REPAIRED} (its header said {} bytes of audio, the file held {})",
        repair.data_size_was, repair.data_size
    );
    if repair.cut_bytes() > 0 {
        reason.push_str(&format!(
            "; a torn last frame of {} bytes was cut",
            repair.cut_bytes()
        ));
    }
    reason
}

/// Time spent paused, from the segments: each pause runs to the next resume or stop, or to
/// the end of the recording.
fn paused_ms(conn: &Connection, seq: i64) -> Result<i64, StoreError> {
    let segments: Vec<(SegmentKind, i64)> = conn
        .prepare_cached("SELECT kind, at FROM segments WHERE recording_seq = ?1 ORDER BY at, id")
        .and_then(|mut s| {
            s.query_map([seq], |r| Ok((view::parse_col(r, 0)?, r.get(1)?)))?
                .collect()
        })
        .map_err(StoreError::sql("read segments"))?;
    let ended: Option<i64> = conn
        .prepare_cached("SELECT ended_at FROM recordings WHERE seq = ?1")
        .and_then(|mut s| s.query_row([seq], |r| r.get(0)))
        .map_err(StoreError::sql("read recording end"))?;
    let mut paused = 0i64;
    let mut since: Option<i64> = None;
    for (kind, at) in segments {
        match kind {
            SegmentKind::Pause => {
                since.get_or_insert(at);
            }
            SegmentKind::Resume | SegmentKind::Stop | SegmentKind::Start => {
                if let Some(s) = since.take() {
                    paused += (at - s).max(0);
                }
            }
        }
    }
    if let (Some(s), Some(end)) = (since, ended) {
        paused += (end - s).max(0);
    }
    Ok(paused)
}

/// Phase 3 for one job inside the batch transaction. Returns the outcome and files to remove
/// after the commit.
fn commit_one(
    tx: &Connection,
    paths: &crate::store::Paths,
    now: DateTime<Utc>,
    work: &Work,
    file: &FileResult,
) -> Result<(IngestOutcome, Vec<PathBuf>), StoreError> {
    let (seq, _, state) = crate::store::row_key(tx, &work.id)?;
    if state != RecordingState::Recording {
        return Ok((
            IngestOutcome::AlreadyDone {
                id: work.id.clone(),
                state,
            },
            Vec::new(),
        ));
    }
    let site = ReadView::new(tx).site_by_id(work.site)?;
    let started: i64 = tx
        .prepare_cached("SELECT started_at FROM recordings WHERE seq = ?1")
        .and_then(|mut s| s.query_row([seq], |r| r.get(0)))
        .map_err(StoreError::sql("read recording start"))?;
    let expires = expires_at(view::from_ms(started)?, &site.settings);
    let paused = paused_ms(tx, seq)?;
    let target = format!("recording:{}", work.id);

    let (placed, repaired) = match file {
        FileResult::Placed { placed, repaired } => (placed, repaired),
        FileResult::Lost => {
            let reason = format!(
                "no file: neither {} nor {} exists",
                work.spool.display(),
                work.dest.display()
            );
            tx.prepare_cached(
                "UPDATE recordings SET state = 'failed', state_reason = ?2, paused_ms = ?3,
                     expires_at = ?4
                 WHERE seq = ?1",
            )
            .and_then(|mut s| s.execute(params![seq, reason, paused, ms(expires)]))
            .map_err(StoreError::sql("mark recording failed"))?;
            audit::append(
                tx,
                &Event {
                    at_ms: ms(now),
                    site: Some(work.site),
                    actor: "ingest",
                    action: "recording.failed",
                    target: &target,
                    detail: &json!({"reason": reason}).to_string(),
                },
            )?;
            return Ok((
                IngestOutcome::Failed {
                    id: work.id.clone(),
                    reason,
                    path: None,
                },
                Vec::new(),
            ));
        }
    };

    let hashed = &placed.hashed;
    let (duration, failure) = if work.format == "wav" {
        match wav::inspect(&hashed.head, hashed.size) {
            Ok(info) => (Some(info.duration_ms), None),
            Err(problem) => (None, Some(problem.to_string())),
        }
    } else if hashed.size == 0 {
        (None, Some("the file is empty".to_owned()))
    } else {
        (None, None)
    };
    let size = i64::try_from(hashed.size).unwrap_or(i64::MAX);
    let state = if failure.is_some() {
        "failed"
    } else {
        "stored"
    };
    // A stored recording's reason says it was repaired; a failure's reason is the failure.
    let reason = failure
        .clone()
        .or_else(|| repaired.as_ref().map(repaired_reason));
    tx.prepare_cached(
        "UPDATE recordings SET state = ?2, state_reason = ?3, size_bytes = ?4, sha256 = ?5,
             duration_ms = ?6, paused_ms = ?7, expires_at = ?8
         WHERE seq = ?1",
    )
    .and_then(|mut s| {
        s.execute(params![
            seq,
            state,
            reason,
            size,
            hashed.sha256,
            duration.map(|d| i64::try_from(d).unwrap_or(i64::MAX)),
            paused,
            ms(expires)
        ])
    })
    .map_err(StoreError::sql("mark recording stored"))?;
    tx.prepare_cached(
        "INSERT INTO usage (user_id, bytes, files) VALUES (?1, ?2, 1)
         ON CONFLICT (user_id) DO UPDATE SET bytes = bytes + excluded.bytes, files = files + 1",
    )
    .and_then(|mut s| s.execute(params![work.user.0, size]))
    .map_err(StoreError::sql("update usage"))?;
    let mut removals = Vec::new();
    if placed.spool_left {
        tx.prepare_cached("INSERT OR IGNORE INTO pending_removals (path, reason) VALUES (?1, ?2)")
            .and_then(|mut s| {
                s.execute(params![
                    work.spool.to_string_lossy(),
                    "spool file copied into the store"
                ])
            })
            .map_err(StoreError::sql("record pending removal"))?;
        removals.push(work.spool.clone());
    }
    audit::append(
        tx,
        &Event {
            at_ms: ms(now),
            site: Some(work.site),
            actor: "ingest",
            action: if failure.is_some() {
                "recording.failed"
            } else {
                "recording.stored"
            },
            target: &target,
            detail: &audit_detail(hashed, size, duration, reason.as_deref(), repaired.as_ref())
                .to_string(),
        },
    )?;
    if site.settings.quota_policy == callrec_model::QuotaPolicy::EvictOldest {
        removals.extend(retention::evict_for_quota(
            tx,
            paths,
            work.user,
            &site.settings,
            seq,
            now,
        )?);
    }
    let outcome = match failure {
        Some(reason) => IngestOutcome::Failed {
            id: work.id.clone(),
            reason,
            path: Some(work.dest.clone()),
        },
        None => IngestOutcome::Stored {
            id: work.id.clone(),
            path: work.dest.clone(),
            size_bytes: hashed.size,
            sha256: hashed.sha256.clone(),
            duration_ms: duration,
        },
    };
    Ok((outcome, removals))
}

/// The audit entry of an ingest: what was stored, and for a repaired file what its header
/// said before.
fn audit_detail(
    hashed: &files::Hashed,
    size: i64,
    duration: Option<u64>,
    reason: Option<&str>,
    repaired: Option<&wav::HeaderRepair>,
) -> serde_json::Value {
    let mut detail = json!({"sha256": hashed.sha256, "size_bytes": size,
        "duration_ms": duration, "reason": reason});
    if let (Some(r), Some(map)) = (repaired, detail.as_object_mut()) {
        map.insert(
            "header_repaired".into(),
            json!({"riff_size_was": r.riff_size_was, "data_size_was": r.data_size_was,
                "data_size": r.data_size, "size_bytes_was": r.file_len_was,
                "cut_bytes": r.cut_bytes()}),
        );
    }
    detail
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{Access, NewUser};
    use callrec_model::{Direction, NewRecording};
    use callrec_testkit::wav as test_wav;

    /// A store with one recording whose spool file holds `bytes`.
    fn store_with_spool_file(dir: &std::path::Path, bytes: &[u8]) -> (Store, RecordingId) {
        let mut store = Store::open(dir.join("data")).unwrap();
        let user = store
            .add_user(&NewUser::new("default", "1001"), "test")
            .unwrap();
        let id = RecordingId::new();
        let spool_path = dir.join(format!("{id}.wav"));
        store
            .create_recording(
                &NewRecording {
                    id: id.clone(),
                    user: user.id,
                    call_uuid: format!("call-{id}"),
                    direction: Direction::Inbound,
                    from: "02920123123".into(),
                    to: "1001".into(),
                    started_at: Utc::now(),
                    format: "wav".into(),
                    spool_path: spool_path.clone(),
                },
                "daemon",
            )
            .unwrap();
        std::fs::write(&spool_path, bytes).unwrap();
        (store, id)
    }

    #[test]
    fn a_crash_after_the_repaired_copy_is_in_the_store_still_ends_stored_repaired() {
        let dir = tempfile::tempdir().unwrap();
        let cut = test_wav::cut_by_crash(2000, 21);
        let (mut store, id) = store_with_spool_file(dir.path(), &cut);
        // Phases 1 and 2, then the process dies before the commit.
        let Plan::Work(work) = store.plan_ingest(&IngestJob::new(id.clone())).unwrap() else {
            panic!("nothing to do");
        };
        let FileResult::Placed { placed, repaired } = place(&work).unwrap() else {
            panic!("no file");
        };
        files::sync_dirs(&placed.dirs_to_sync).unwrap();
        assert!(repaired.is_some());
        assert_eq!(
            std::fs::read(&work.spool).unwrap(),
            cut,
            "the spool file is as it was"
        );
        drop(store);

        // The next life finds the spool file still there and repairs it again.
        let mut store = Store::open(dir.path().join("data")).unwrap();
        let outcome = store.ingest(&IngestJob::new(id.clone())).unwrap();
        let IngestOutcome::Stored { sha256, path, .. } = outcome else {
            panic!("{outcome:?}");
        };
        let stored = std::fs::read(&path).unwrap();
        assert_eq!(stored, test_wav::noise(2000, 21));
        assert_eq!(sha256, placed.hashed.sha256);
        let rec = store.view().recording(&id, &Access::system("t")).unwrap();
        assert!(
            rec.state_reason
                .as_deref()
                .is_some_and(|r| r.starts_with(HEADER_REPAIRED)),
            "{rec:?}"
        );
        assert!(!work.spool.exists());
        assert!(store.verify(&Default::default()).unwrap().is_clean());
    }
}

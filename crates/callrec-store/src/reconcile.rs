//! The reconcile pass: finish whatever a crash interrupted, so index and disk agree again.
//!
//! Run at start (the daemon) before new work. What it repairs, and why each case can exist:
//! - **pending removals**: a deletion or a cross-filesystem ingest committed, the process died
//!   before removing the file it made obsolete → remove it now;
//! - **ingests under way**: a row still `recording` with `ended_at` set was being ingested →
//!   run the ingest again (it is idempotent: it finds the file in the spool or in the store);
//! - with `walk_store`, **temporary copies** (`.name.tmp`) left by a copy interrupted midway →
//!   remove them; **files of tombstones** → remove them; **files no row knows** → report them
//!   and leave them alone (an unknown recording is never deleted).
//!
//! Rows still `recording` *without* `ended_at` are left to the daemon: only it can ask the
//! switch whether the call is over (SPEC §3.6) before submitting the ingest.

use std::collections::BTreeSet;
use std::path::PathBuf;

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use crate::error::StoreError;
use crate::files;
use crate::ingest::{IngestJob, IngestOutcome};
use crate::store::Store;
use crate::view;
use callrec_model::{RecordingId, RecordingState};

/// What to include in a reconcile pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReconcileOptions {
    /// Also walk every file of the store (temporary copies, files without a row). Its cost
    /// grows with the store (one lookup per file); the rest of the pass is proportional to
    /// the work a crash left.
    pub walk_store: bool,
}

/// What a reconcile pass repaired of what a crash left: the store's side of reconciliation
/// (the daemon's, rebuilding its call table from the switch, reports a `ResyncReport`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct RepairReport {
    /// Ingests that were under way and are now finished.
    pub ingests_finished: Vec<IngestOutcome>,
    /// Ingests that could not be finished now (e.g. disk full), with the error; run again.
    pub ingest_errors: Vec<(RecordingId, String)>,
    /// Obsolete files removed (pending removals, tombstones' files).
    pub files_removed: u64,
    /// Temporary copies removed.
    pub temp_files_removed: u64,
    /// Files in the store that no row knows (left in place).
    pub unindexed_files: Vec<PathBuf>,
    /// Rows still `recording` that wait for the daemon to decide.
    pub awaiting_daemon: u64,
}

impl Store {
    /// Finish what a crash interrupted, so index and disk agree again; run it at start,
    /// before new work.
    ///
    /// - files whose deletion (or cross-filesystem copy) committed but which were not yet
    ///   removed are removed;
    /// - rows still `recording` with `ended_at` set were being ingested: the ingest is run
    ///   again (idempotent);
    /// - with [`ReconcileOptions::walk_store`]: temporary copies (`.name.tmp`) and files of
    ///   tombstones are removed, and files no row knows are reported and left alone.
    ///
    /// Rows still `recording` *without* `ended_at` are left to the daemon (counted in
    /// [`RepairReport::awaiting_daemon`]): only it can ask the switch whether the call is
    /// over (SPEC §3.6) before it submits the ingest, with the time the recording ended.
    pub fn reconcile(&mut self, options: &ReconcileOptions) -> Result<RepairReport, StoreError> {
        let mut report = RepairReport {
            files_removed: self.finish_pending_removals()?,
            ..RepairReport::default()
        };

        for row in self.view().recordings_in_progress()? {
            if row.ended_at.is_none() {
                report.awaiting_daemon += 1;
                continue;
            }
            match self.ingest(&IngestJob::new(row.id.clone())) {
                Ok(outcome) => report.ingests_finished.push(outcome),
                Err(e) => report.ingest_errors.push((row.id, e.to_string())),
            }
        }

        if options.walk_store {
            let root = self.paths.store.clone();
            let mut stale = Vec::new();
            let mut temps = Vec::new();
            let mut unindexed = Vec::new();
            files::walk(&root, &mut |rel, abs| {
                let name = abs
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if files::is_temp_name(&name) {
                    temps.push(abs.to_path_buf());
                    return Ok(());
                }
                match self.state_of_store_path(rel)? {
                    None => unindexed.push(abs.to_path_buf()),
                    Some(RecordingState::Deleted) => stale.push(abs.to_path_buf()),
                    Some(_) => {}
                }
                Ok(())
            })?;
            let mut dirs = BTreeSet::new();
            for path in &temps {
                if let Some(dir) = files::remove(path)? {
                    dirs.insert(dir);
                    report.temp_files_removed += 1;
                }
            }
            for path in &stale {
                if let Some(dir) = files::remove(path)? {
                    dirs.insert(dir);
                    report.files_removed += 1;
                }
            }
            files::sync_dirs(&dirs)?;
            for path in &unindexed {
                tracing::warn!(path = %path.display(), "file in the store that no recording knows; left in place");
            }
            report.unindexed_files = unindexed;
        }
        Ok(report)
    }

    fn state_of_store_path(&self, rel: &str) -> Result<Option<RecordingState>, StoreError> {
        self.conn
            .prepare_cached("SELECT state FROM recordings WHERE store_path = ?1")
            .and_then(|mut s| s.query_row([rel], |r| view::parse_col(r, 0)).optional())
            .map_err(StoreError::sql("look up a store file"))
    }

    /// Remove every file listed in `pending_removals` and forget it.
    fn finish_pending_removals(&mut self) -> Result<u64, StoreError> {
        let pending: Vec<String> = self
            .conn
            .prepare_cached("SELECT path FROM pending_removals ORDER BY path")
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .map_err(StoreError::sql("list pending removals"))?;
        if pending.is_empty() {
            return Ok(0);
        }
        let mut dirs = BTreeSet::new();
        let mut removed = 0;
        let mut done = Vec::with_capacity(pending.len());
        for path in &pending {
            // One file that cannot be removed now stays pending (the next sweep or start
            // tries again); it must not stop the others, nor the rest of the pass.
            match files::remove(std::path::Path::new(path)) {
                Ok(Some(dir)) => {
                    dirs.insert(dir);
                    removed += 1;
                    done.push(path);
                }
                Ok(None) => done.push(path),
                Err(e) => {
                    tracing::warn!(error = %e, "a pending removal failed; left for the next try")
                }
            }
        }
        files::sync_dirs(&dirs)?;
        let tx = self.begin()?;
        for path in done {
            tx.prepare_cached("DELETE FROM pending_removals WHERE path = ?1")
                .and_then(|mut s| s.execute(params![path]))
                .map_err(StoreError::sql("forget pending removal"))?;
        }
        tx.commit()
            .map_err(StoreError::sql("commit pending removals"))?;
        Ok(removed)
    }
}

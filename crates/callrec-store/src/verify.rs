//! `callrec verify` (SPEC §4.5): re-hash every stored file, walk the audit chain, and report
//! every missing file, altered file, unindexed file and altered or missing log entry.
//!
//! Verify changes nothing but one audit entry recording that it ran and what it found.

use std::fmt;
use std::path::PathBuf;

use rusqlite::params;
use serde::Serialize;
use serde_json::json;

use crate::audit::{self, ChainBreak, ChainHead};
use crate::error::StoreError;
use crate::files;
use crate::store::Store;
use callrec_model::RecordingId;

/// How to verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyOptions {
    /// Who runs it (audit log).
    pub actor: String,
    /// Also look for files in the store that no row knows.
    pub walk_store: bool,
    /// Chain heads saved away from the index (`callrec audit head`): each must still be in
    /// the log, or entries were cut from its end or rewritten.
    pub saved_heads: Vec<ChainHead>,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            actor: "verify".to_owned(),
            walk_store: true,
            saved_heads: Vec::new(),
        }
    }
}

/// A stored file that is not what the index says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileProblem {
    /// The recording.
    pub id: RecordingId,
    /// Its file.
    pub path: PathBuf,
    /// The hash the index holds.
    pub expected_sha256: String,
    /// The hash of the file now, when it could be read.
    pub actual_sha256: Option<String>,
    /// What is wrong.
    pub problem: String,
}

/// What verify found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct VerifyReport {
    /// Stored files checked.
    pub files_checked: u64,
    /// Of which were intact.
    pub files_ok: u64,
    /// Files the index has and the disk does not.
    pub missing: Vec<FileProblem>,
    /// Files whose content changed (or could not be read).
    pub altered: Vec<FileProblem>,
    /// Files in the store that no stored recording owns.
    pub unindexed: Vec<PathBuf>,
    /// Audit log entries checked.
    pub audit_entries: u64,
    /// Breaks in the audit chain.
    pub audit_breaks: Vec<ChainBreak>,
}

impl VerifyReport {
    /// How many problems were found.
    pub fn problem_count(&self) -> usize {
        self.missing.len() + self.altered.len() + self.unindexed.len() + self.audit_breaks.len()
    }

    /// Whether everything checked out (the CLI exits 0 only then).
    pub fn is_clean(&self) -> bool {
        self.problem_count() == 0
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "files: {} checked, {} intact, {} missing, {} altered, {} unindexed",
            self.files_checked,
            self.files_ok,
            self.missing.len(),
            self.altered.len(),
            self.unindexed.len()
        )?;
        for p in &self.missing {
            writeln!(f, "  MISSING  {} ({})", p.path.display(), p.id)?;
        }
        for p in &self.altered {
            writeln!(
                f,
                "  ALTERED  {} ({}): {}",
                p.path.display(),
                p.id,
                p.problem
            )?;
        }
        for p in &self.unindexed {
            writeln!(f, "  UNINDEXED  {}", p.display())?;
        }
        writeln!(
            f,
            "audit log: {} entries, {} breaks",
            self.audit_entries,
            self.audit_breaks.len()
        )?;
        for b in &self.audit_breaks {
            writeln!(f, "  BROKEN  entry {}: {}", b.seq, b.problem)?;
        }
        if self.is_clean() {
            write!(f, "OK")
        } else {
            write!(f, "{} problem(s) found", self.problem_count())
        }
    }
}

/// At most this many recordings without their entries are named one by one (a log emptied
/// under a large index would otherwise list every recording); the rest are counted.
const MAX_NAMED_UNLOGGED: usize = 1000;

impl Store {
    /// The audit log's newest entry (`callrec audit head`): save it away from the index and
    /// pass it to [`Store::verify`] later.
    pub fn audit_head(&self) -> Result<Option<ChainHead>, StoreError> {
        audit::chain_head(&self.conn)
    }

    /// Recordings whose creation, or whose deletion, has no entry in the log. The chain links
    /// each entry to the one before, so entries cut from its end leave an intact, shorter
    /// chain; but the index still holds every recording (deleted ones as tombstones), each
    /// created, and deleted, in the same transaction as its entry.
    fn entries_cut_from_the_log(&self) -> Result<Vec<ChainBreak>, StoreError> {
        let next_seq: i64 = self
            .conn
            .query_row("SELECT COALESCE(MAX(seq), 0) + 1 FROM audit_log", [], |r| {
                r.get(0)
            })
            .map_err(StoreError::sql("read the audit log head"))?;
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, created, state <> 'deleted' OR deleted FROM (
                     SELECT r.id, r.state,
                         EXISTS (SELECT 1 FROM audit_log a WHERE a.target = 'recording:' || r.id
                                 AND a.action = 'recording.create') AS created,
                         EXISTS (SELECT 1 FROM audit_log a WHERE a.target = 'recording:' || r.id
                                 AND a.action = 'recording.delete') AS deleted
                     FROM recordings r)
                 WHERE NOT created OR (state = 'deleted' AND NOT deleted)
                 ORDER BY id",
            )
            .map_err(StoreError::sql("check the log against the index"))?;
        let mut rows = stmt
            .query([])
            .map_err(StoreError::sql("check the log against the index"))?;
        let mut breaks = Vec::new();
        let mut unnamed = 0u64;
        while let Some(row) = rows
            .next()
            .map_err(StoreError::sql("check the log against the index"))?
        {
            if breaks.len() >= MAX_NAMED_UNLOGGED {
                unnamed += 1;
                continue;
            }
            let read = || -> rusqlite::Result<(String, bool, bool)> {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            };
            let (id, created, deletion_logged) =
                read().map_err(StoreError::sql("check the log against the index"))?;
            let missing = match (created, deletion_logged) {
                (false, false) => "its creation and its deletion",
                (false, true) => "its creation",
                _ => "its deletion",
            };
            breaks.push(ChainBreak {
                seq: next_seq,
                problem: format!(
                    "entries are missing from the end of the log: recording {id} has no entry \
                     for {missing}"
                ),
            });
        }
        if unnamed > 0 {
            breaks.push(ChainBreak {
                seq: next_seq,
                problem: format!(
                    "entries are missing from the end of the log: {unnamed} more recordings \
                     without theirs"
                ),
            });
        }
        Ok(breaks)
    }

    /// Check every stored file against its hash and the audit chain (see the module doc).
    pub fn verify(&mut self, options: &VerifyOptions) -> Result<VerifyReport, StoreError> {
        let mut report = VerifyReport::default();
        // Page by seq so no read transaction stays open while files are hashed.
        let mut after = 0i64;
        loop {
            // With each row, the hash its ingest wrote to the audit log: the index's copy
            // alone can be rewritten together with the file.
            type Row = (i64, String, String, String, Option<i64>, Option<String>);
            let rows: Vec<Row> = self
                .conn
                .prepare_cached(
                    "SELECT r.seq, r.id, r.store_path, r.sha256, r.size_bytes,
                        (SELECT json_extract(a.detail, '$.sha256') FROM audit_log a
                         WHERE a.target = 'recording:' || r.id
                           AND a.action IN ('recording.stored', 'recording.failed')
                         ORDER BY a.seq DESC LIMIT 1)
                     FROM recordings r
                     WHERE r.seq > ?1 AND r.state IN ('stored', 'failed') AND r.sha256 IS NOT NULL
                     ORDER BY r.seq LIMIT 1000",
                )
                .and_then(|mut s| {
                    s.query_map(params![after], |r| {
                        Ok((
                            r.get(0)?,
                            r.get(1)?,
                            r.get(2)?,
                            r.get(3)?,
                            r.get(4)?,
                            r.get(5)?,
                        ))
                    })?
                    .collect()
                })
                .map_err(StoreError::sql("list stored recordings"))?;
            let Some(last) = rows.last() else { break };
            after = last.0;
            for (_, id, rel, expected, size, logged) in rows {
                let id: RecordingId = id
                    .parse()
                    .map_err(|e| StoreError::Corrupt(format!("recording id: {e}")))?;
                let path = self.paths.store_file(&rel);
                report.files_checked += 1;
                let problem = |actual: Option<String>, problem: String| FileProblem {
                    id: id.clone(),
                    path: path.clone(),
                    expected_sha256: expected.clone(),
                    actual_sha256: actual,
                    problem,
                };
                if logged.as_deref() != Some(expected.as_str()) {
                    let hashed = files::hash_file(&path).ok().map(|h| h.sha256);
                    let what = match &logged {
                        Some(l) => format!(
                            "the index's hash is not the one its ingest wrote to the audit log \
                             ({l}): file and index were changed together"
                        ),
                        None => "the audit log has no ingest entry with its hash".to_owned(),
                    };
                    report.altered.push(problem(hashed, what));
                    continue;
                }
                if !files::exists(&path) {
                    report
                        .missing
                        .push(problem(None, "the file is missing".to_owned()));
                    continue;
                }
                match files::hash_file(&path) {
                    Ok(h) if h.sha256 == expected => report.files_ok += 1,
                    Ok(h) => {
                        let what = match size {
                            Some(s) if u64::try_from(s).ok() != Some(h.size) => {
                                format!("content changed (size {s} -> {})", h.size)
                            }
                            _ => "content changed (same size)".to_owned(),
                        };
                        report.altered.push(problem(Some(h.sha256), what));
                    }
                    Err(e) => report
                        .altered
                        .push(problem(None, format!("cannot be read: {e}"))),
                }
            }
        }

        let (entries, mut breaks) = audit::verify_chain(&self.conn)?;
        breaks.extend(self.entries_cut_from_the_log()?);
        for saved in &options.saved_heads {
            breaks.extend(audit::check_saved_head(&self.conn, saved)?);
        }
        report.audit_entries = entries;
        report.audit_breaks = breaks;

        if options.walk_store {
            let root = self.paths.store.clone();
            let conn = &self.conn;
            let mut unindexed = Vec::new();
            files::walk(&root, &mut |rel, abs| {
                let owned: bool = conn
                    .prepare_cached(
                        "SELECT EXISTS (SELECT 1 FROM recordings WHERE store_path = ?1
                                        AND state IN ('stored', 'failed', 'recording'))",
                    )
                    .and_then(|mut s| s.query_row([rel], |r| r.get(0)))
                    .map_err(StoreError::sql("look up a store file"))?;
                if !owned {
                    unindexed.push(abs.to_path_buf());
                }
                Ok(())
            })?;
            report.unindexed = unindexed;
        }

        self.record_event(
            None,
            &options.actor,
            "store.verify",
            "store",
            &json!({
                "files_checked": report.files_checked,
                "missing": report.missing.len(),
                "altered": report.altered.len(),
                "unindexed": report.unindexed.len(),
                "audit_entries": report.audit_entries,
                "audit_breaks": report.audit_breaks.len(),
            }),
        )?;
        Ok(report)
    }
}

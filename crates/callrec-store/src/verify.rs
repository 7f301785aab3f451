//! `callrec verify` (SPEC §4.5): re-hash every stored file, walk the audit chain, and report
//! every missing file, altered file, unindexed file and altered or missing log entry.
//!
//! Verify changes nothing but one audit entry recording that it ran and what it found.

use std::fmt;
use std::path::PathBuf;

use rusqlite::params;
use serde::Serialize;
use serde_json::json;

use crate::audit::{self, ChainBreak};
use crate::error::StoreError;
use crate::files;
use crate::model::RecordingId;
use crate::store::Store;

/// How to verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyOptions {
    /// Who runs it (audit log).
    pub actor: String,
    /// Also look for files in the store that no row knows.
    pub walk_store: bool,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            actor: "verify".to_owned(),
            walk_store: true,
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

impl Store {
    /// Check every stored file against its hash and the audit chain (see the module doc).
    pub fn verify(&mut self, options: &VerifyOptions) -> Result<VerifyReport, StoreError> {
        let mut report = VerifyReport::default();
        // Page by seq so no read transaction stays open while files are hashed.
        let mut after = 0i64;
        loop {
            let rows: Vec<(i64, String, String, String, Option<i64>)> = self
                .conn
                .prepare_cached(
                    "SELECT seq, id, store_path, sha256, size_bytes FROM recordings
                     WHERE seq > ?1 AND state IN ('stored', 'failed') AND sha256 IS NOT NULL
                     ORDER BY seq LIMIT 1000",
                )
                .and_then(|mut s| {
                    s.query_map(params![after], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                    })?
                    .collect()
                })
                .map_err(StoreError::sql("list stored recordings"))?;
            let Some(last) = rows.last() else { break };
            after = last.0;
            for (_, id, rel, expected, size) in rows {
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

        let (entries, breaks) = audit::verify_chain(&self.conn)?;
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

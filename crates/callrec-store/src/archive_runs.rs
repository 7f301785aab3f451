//! Archive clients' run reports (issue 11, SPEC §6 `callrec archive`): each run of an archive
//! client tells the server what it did, and a site's admins list the clients that archive the
//! site with their last run. The report is the client's word, stored as given after checks
//! on its shape; it changes no recording. Migration `0005-archive-runs.sql`.

use chrono::{DateTime, Utc};
use rusqlite::params;

use crate::audit::{self, Event};
use crate::error::StoreError;
use crate::records::Caller;
use crate::store::Store;
use crate::view::{ReadView, ms, time_col};
use callrec_model::SiteId;

/// The longest client name accepted.
pub const MAX_CLIENT_CHARS: usize = 100;
/// The most errors one report keeps.
pub const MAX_RUN_ERRORS: usize = 100;
/// The longest error message kept.
pub const MAX_ERROR_CHARS: usize = 1000;

/// What a client reports about one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewArchiveRun {
    /// The client's name (a host name, or what `--client-name` said).
    pub client: String,
    /// When the run started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
    /// Recordings downloaded and verified.
    pub downloaded: u64,
    /// Recordings seen and not downloaded (already there, before `--since`, gone).
    pub skipped: u64,
    /// Recordings that could not be archived.
    pub failed: u64,
    /// Bytes of audio downloaded.
    pub bytes: u64,
    /// The last change of the feed the client has fully handled.
    pub last_seq: i64,
    /// A dry run: nothing was written.
    pub dry_run: bool,
    /// What went wrong, one line each.
    pub errors: Vec<String>,
}

/// A run as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveRun {
    /// Its id.
    pub id: i64,
    /// The client's name.
    pub client: String,
    /// Whose token reported it (`extension@site`).
    pub actor: String,
    /// When the run started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
    /// When the server received the report.
    pub reported_at: DateTime<Utc>,
    /// Recordings downloaded and verified.
    pub downloaded: u64,
    /// Recordings seen and not downloaded.
    pub skipped: u64,
    /// Recordings that could not be archived.
    pub failed: u64,
    /// Bytes of audio downloaded.
    pub bytes: u64,
    /// The last change of the feed the client has fully handled.
    pub last_seq: i64,
    /// A dry run.
    pub dry_run: bool,
    /// What went wrong.
    pub errors: Vec<String>,
}

/// An archive client of a site and its last run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveClient {
    /// The client's name.
    pub client: String,
    /// Whose token it uses (`extension@site`).
    pub actor: String,
    /// How many runs it has reported.
    pub runs: u64,
    /// Its last run.
    pub last_run: ArchiveRun,
}

impl NewArchiveRun {
    /// Refuse a report whose shape is wrong: it would mislead the admins who read it.
    pub fn validate(&self) -> Result<(), StoreError> {
        let client = self.client.trim();
        if client.is_empty()
            || client.chars().count() > MAX_CLIENT_CHARS
            || client.chars().any(char::is_control)
        {
            return Err(StoreError::invalid(
                "client",
                client,
                format!("must be 1 to {MAX_CLIENT_CHARS} characters, without control characters"),
            ));
        }
        if self.finished_at < self.started_at {
            return Err(StoreError::invalid(
                "finished_at",
                self.finished_at.to_rfc3339(),
                "is before started_at",
            ));
        }
        if self.last_seq < 0 {
            return Err(StoreError::invalid(
                "last_seq",
                self.last_seq.to_string(),
                "must not be negative",
            ));
        }
        for (field, n) in [
            ("downloaded", self.downloaded),
            ("skipped", self.skipped),
            ("failed", self.failed),
            ("bytes", self.bytes),
        ] {
            if i64::try_from(n).is_err() {
                return Err(StoreError::invalid(field, n.to_string(), "is too large"));
            }
        }
        if self.errors.len() > MAX_RUN_ERRORS {
            return Err(StoreError::invalid(
                "errors",
                format!("{} errors", self.errors.len()),
                format!("at most {MAX_RUN_ERRORS} are kept; send the first ones"),
            ));
        }
        if let Some(e) = self
            .errors
            .iter()
            .find(|e| e.chars().count() > MAX_ERROR_CHARS)
        {
            return Err(StoreError::invalid(
                "errors",
                e.as_str(),
                format!("an error is longer than {MAX_ERROR_CHARS} characters"),
            ));
        }
        Ok(())
    }
}

fn count(n: u64) -> i64 {
    // validate() checked every count fits.
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn run_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ArchiveRun> {
    let errors: String = r.get(13)?;
    let errors: Vec<String> = serde_json::from_str(&errors).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(13, rusqlite::types::Type::Text, Box::new(e))
    })?;
    let n = |i: usize| -> rusqlite::Result<u64> {
        let v: i64 = r.get(i)?;
        u64::try_from(v).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(
                i,
                rusqlite::types::Type::Integer,
                Box::new(e),
            )
        })
    };
    Ok(ArchiveRun {
        id: r.get(0)?,
        client: r.get(1)?,
        actor: r.get(2)?,
        started_at: time_col(r, 3)?,
        finished_at: time_col(r, 4)?,
        reported_at: time_col(r, 5)?,
        downloaded: n(6)?,
        skipped: n(7)?,
        failed: n(8)?,
        bytes: n(9)?,
        last_seq: r.get(10)?,
        dry_run: r.get(11)?,
        errors,
    })
}

const RUN_COLUMNS: &str = "r.id, r.client, r.actor, r.started_at, r.finished_at, r.reported_at, \
     r.downloaded, r.skipped, r.failed, r.bytes, r.last_seq, r.dry_run, r.user_id, r.errors";

impl Store {
    /// Store a run report of `caller`'s archive client, with its audit entry.
    pub fn record_archive_run(
        &mut self,
        caller: &Caller,
        run: &NewArchiveRun,
    ) -> Result<ArchiveRun, StoreError> {
        run.validate()?;
        let now = self.now();
        let actor = caller.actor();
        let errors = serde_json::to_string(&run.errors)
            .map_err(|e| StoreError::Corrupt(format!("cannot encode errors: {e}")))?;
        let tx = self.begin()?;
        tx.prepare_cached(
            "INSERT INTO archive_runs (site_id, user_id, actor, token_id, client, started_at,
                 finished_at, reported_at, downloaded, skipped, failed, bytes, last_seq, dry_run,
                 errors)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
        )
        .and_then(|mut s| {
            s.execute(params![
                caller.site_id.0,
                caller.user_id.0,
                actor,
                caller.token_id.0,
                run.client.trim(),
                ms(run.started_at),
                ms(run.finished_at),
                ms(now),
                count(run.downloaded),
                count(run.skipped),
                count(run.failed),
                count(run.bytes),
                run.last_seq,
                run.dry_run,
                errors,
            ])
        })
        .map_err(StoreError::sql("record an archive run"))?;
        let id = tx.last_insert_rowid();
        let detail = serde_json::json!({
            "client": run.client.trim(),
            "downloaded": run.downloaded,
            "failed": run.failed,
            "bytes": run.bytes,
            "last_seq": run.last_seq,
            "dry_run": run.dry_run,
        });
        audit::append(
            &tx,
            &Event {
                at_ms: ms(now),
                site: Some(caller.site_id),
                actor: &actor,
                action: "archive.run",
                target: &format!("archive_run:{id}"),
                detail: &detail.to_string(),
            },
        )?;
        let stored = ReadView::new(&tx).archive_run(id)?;
        tx.commit()
            .map_err(StoreError::sql("commit an archive run"))?;
        Ok(stored)
    }
}

impl ReadView<'_> {
    fn archive_run(&self, id: i64) -> Result<ArchiveRun, StoreError> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {RUN_COLUMNS} FROM archive_runs r WHERE r.id = ?1"
            ))
            .and_then(|mut s| s.query_row([id], run_from_row))
            .map_err(StoreError::sql("read an archive run"))
    }

    /// The archive clients of a site (one per client name and user), each with its last run,
    /// by client name.
    pub fn archive_clients(&self, site: SiteId) -> Result<Vec<ArchiveClient>, StoreError> {
        let sql = format!(
            "SELECT {RUN_COLUMNS},
                    (SELECT COUNT(*) FROM archive_runs c
                     WHERE c.site_id = r.site_id AND c.client = r.client AND c.user_id = r.user_id)
             FROM archive_runs r
             WHERE r.site_id = ?1
               AND r.id = (SELECT MAX(m.id) FROM archive_runs m
                           WHERE m.site_id = r.site_id AND m.client = r.client
                             AND m.user_id = r.user_id)
             ORDER BY r.client, r.actor"
        );
        self.conn
            .prepare_cached(&sql)
            .and_then(|mut s| {
                s.query_map([site.0], |r| {
                    let runs: i64 = r.get(14)?;
                    let last_run = run_from_row(r)?;
                    Ok(ArchiveClient {
                        client: last_run.client.clone(),
                        actor: last_run.actor.clone(),
                        runs: u64::try_from(runs).unwrap_or(0),
                        last_run,
                    })
                })?
                .collect()
            })
            .map_err(StoreError::sql("list archive clients"))
    }
}

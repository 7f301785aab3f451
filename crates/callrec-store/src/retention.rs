//! Deleting recordings: retention (SPEC §4.3), quota eviction (§4.4) and deletion by an admin.
//!
//! Every deletion follows one order so a kill at any instant is safe:
//! 1. in one transaction: the row becomes a tombstone (`deleted`, when, why), the user's usage
//!    drops, the file is listed in `pending_removals`, and an audit entry is appended;
//! 2. after the commit, the file is removed and its directory fsynced;
//! 3. the `pending_removals` entries are forgotten.
//!
//! A sweep does each step for a batch at once (SPEC §8 asks 10,000 deletions/s): step 1 is a
//! handful of set statements per batch (still one tombstone and one audit entry per
//! recording), step 2 unlinks on several threads and fsyncs each directory once per batch,
//! and step 3 for one batch rides in the transaction of the next while its files are removed.
//!
//! A crash after 1 leaves a tombstone whose file still exists and a pending entry, which
//! [`Store::reconcile`] (and the next real sweep) finishes. The index never says `stored` for
//! a file that is gone.
//! A dry run selects the same victims and writes nothing; given other settings for a site
//! (`SweepOptions::site_overrides`), it computes the expiry they would give instead.

use std::collections::{BTreeMap, BinaryHeap, HashSet};
use std::path::PathBuf;
use std::sync::mpsc;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};
use serde::Serialize;
use serde_json::json;

use crate::audit::{self, Event};
use crate::error::StoreError;
use crate::files;
use crate::records::SiteSettings;
use crate::store::{Paths, Store, expires_at};
use crate::view::{self, ms};
use callrec_model::RecordingId;
use callrec_model::{SiteId, UserId};

/// A recording about to be deleted.
#[derive(Debug, Clone)]
pub(crate) struct Victim {
    pub seq: i64,
    pub id: RecordingId,
    pub site: SiteId,
    pub user: UserId,
    pub store_path: String,
    pub size: i64,
    /// Whether the recording has a file in the store (a `failed` one may have none).
    pub has_file: bool,
    pub started_at: i64,
    pub expires_at: Option<i64>,
}

const VICTIM_COLUMNS: &str = "seq, id, site_id, user_id, store_path, COALESCE(size_bytes, 0), \
     started_at, expires_at, sha256 IS NOT NULL";

fn victim_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Victim> {
    Ok(Victim {
        seq: r.get(0)?,
        id: view::parse_col(r, 1)?,
        site: SiteId(r.get(2)?),
        user: UserId(r.get(3)?),
        store_path: r.get(4)?,
        size: r.get(5)?,
        started_at: r.get(6)?,
        expires_at: r.get(7)?,
        has_file: r.get(8)?,
    })
}

impl Victim {
    /// The recording `id` as a victim.
    pub(crate) fn of(conn: &Connection, id: &RecordingId) -> Result<Victim, StoreError> {
        let sql = format!("SELECT {VICTIM_COLUMNS} FROM recordings WHERE id = ?1");
        conn.prepare_cached(&sql)
            .and_then(|mut s| s.query_row([id.as_str()], victim_from_row))
            .map_err(StoreError::sql("read recording"))
    }
}

/// Step 1 of a deletion (see the module doc): tombstones, usage, pending removals, audit.
/// Returns the files to remove after the commit.
///
/// A sweep calls this with thousands of victims at a time, so it works on the set, not row by
/// row: one statement marks every victim (and says which rows it changed: a victim deleted
/// meanwhile is skipped), one updates each user's usage, one records the pending removals,
/// and the audit entries (one per deletion, in victim order) chain from one read of the log's
/// head. Lists go to SQLite as a JSON array read with `json_each` (PostgreSQL:
/// `jsonb_array_elements`), which needs no extension.
pub(crate) fn tombstone(
    tx: &Connection,
    paths: &Paths,
    victims: &[Victim],
    now: DateTime<Utc>,
    actor: &str,
    action: &str,
    why: &str,
) -> Result<Vec<PathBuf>, StoreError> {
    if victims.is_empty() {
        return Ok(Vec::new());
    }
    let seqs = format!(
        "[{}]",
        victims
            .iter()
            .map(|v| v.seq.to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    let changed: HashSet<i64> = tx
        .prepare_cached(
            "UPDATE recordings SET state = 'deleted', state_reason = ?2, deleted_at = ?3
             WHERE seq IN (SELECT value FROM json_each(?1)) AND state IN ('stored', 'failed')
             RETURNING seq",
        )
        .and_then(|mut s| {
            s.query_map(params![seqs, why, ms(now)], |r| r.get(0))?
                .collect()
        })
        .map_err(StoreError::sql("mark recordings deleted"))?;
    let deleted: Vec<&Victim> = victims
        .iter()
        .filter(|v| changed.contains(&v.seq))
        .collect();

    let mut usage: BTreeMap<UserId, (i64, i64)> = BTreeMap::new();
    let mut removals = Vec::with_capacity(deleted.len());
    for v in deleted.iter().filter(|v| v.has_file) {
        let u = usage.entry(v.user).or_default();
        u.0 += v.size;
        u.1 += 1;
        removals.push(paths.store_file(&v.store_path));
    }
    let mut usage_update = tx
        .prepare_cached(
            "UPDATE usage SET bytes = bytes - ?2, files = files - ?3 WHERE user_id = ?1",
        )
        .map_err(StoreError::sql("update usage"))?;
    for (user, (bytes, files)) in &usage {
        usage_update
            .execute(params![user.0, bytes, files])
            .map_err(StoreError::sql("update usage"))?;
    }
    if !removals.is_empty() {
        tx.prepare_cached(
            "INSERT OR IGNORE INTO pending_removals (path, reason)
             SELECT value, ?2 FROM json_each(?1)",
        )
        .and_then(|mut s| s.execute(params![path_list(&removals)?, why]))
        .map_err(StoreError::sql("record pending removals"))?;
    }

    let details: Vec<(String, String)> = deleted
        .iter()
        .map(|v| {
            (
                format!("recording:{}", v.id),
                json!({"reason": why, "size_bytes": v.size}).to_string(),
            )
        })
        .collect();
    let events: Vec<Event<'_>> = deleted
        .iter()
        .zip(&details)
        .map(|(v, (target, detail))| Event {
            at_ms: ms(now),
            site: Some(v.site),
            actor,
            action,
            target,
            detail,
        })
        .collect();
    audit::append_many(tx, &events)?;
    Ok(removals)
}

/// `paths` as a JSON array of strings, for `json_each`.
fn path_list(paths: &[PathBuf]) -> rusqlite::Result<String> {
    let strings: Vec<std::borrow::Cow<'_, str>> =
        paths.iter().map(|p| p.to_string_lossy()).collect();
    serde_json::to_string(&strings)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

/// How many threads remove files at once. Unlinking waits on the filesystem (reading the
/// inode and bitmaps of a file not touched for months, the directory's lock, the journal)
/// far more than on the CPU, so more removals in flight than cores still pay: on the
/// benchmark VM (2 cores, ext4 on virtio) 1, 4 and 8 threads unlink about 15,000, 35,000
/// and 50,000 files/s.
const REMOVER_THREADS: usize = 8;

/// Step 2 of a deletion: remove the files, then fsync each directory they were in once.
/// Returns the files now durably gone and how many could not be removed (logged; they stay
/// pending for the next reconcile pass; the deletion itself stands).
fn remove_now(removals: &[PathBuf]) -> (Vec<PathBuf>, u64) {
    let (removed, mut failed) = if removals.len() < 2 * REMOVER_THREADS {
        unlink_all(removals)
    } else {
        let chunk = removals.len().div_ceil(REMOVER_THREADS);
        std::thread::scope(|s| {
            let handles: Vec<_> = removals
                .chunks(chunk)
                .map(|part| (part.len() as u64, s.spawn(move || unlink_all(part))))
                .collect();
            let mut removed = Vec::with_capacity(removals.len());
            let mut failed = 0;
            for (len, handle) in handles {
                match handle.join() {
                    Ok((r, f)) => {
                        removed.extend(r);
                        failed += f;
                    }
                    // Whatever that thread did stays pending for reconcile.
                    Err(_) => failed += len,
                }
            }
            (removed, failed)
        })
    };
    // One fsync per directory for the whole batch makes the removals durable; a file whose
    // directory could not be synced stays pending so reconcile redoes it.
    let mut synced: BTreeMap<PathBuf, bool> = BTreeMap::new();
    let mut done = Vec::with_capacity(removed.len());
    for (path, dir) in removed {
        let durable = match dir {
            None => true,
            Some(dir) => *synced.entry(dir).or_insert_with_key(|dir| {
                files::sync_dir(dir)
                    .inspect_err(
                        |e| tracing::warn!(error = %e, "directory fsync after removal failed"),
                    )
                    .is_ok()
            }),
        };
        if durable {
            done.push(path);
        } else {
            failed += 1;
        }
    }
    (done, failed)
}

/// Unlink `paths`; returns each one removed (or already gone) with the directory to fsync,
/// and how many could not be removed.
fn unlink_all(paths: &[PathBuf]) -> (Vec<(PathBuf, Option<PathBuf>)>, u64) {
    let mut removed = Vec::with_capacity(paths.len());
    let mut failed = 0u64;
    for path in paths {
        match files::remove(path) {
            Ok(dir) => removed.push((path.clone(), dir)),
            Err(e) => {
                tracing::warn!(error = %e, "file of a deleted recording left for the next reconcile pass");
                failed += 1;
            }
        }
    }
    (removed, failed)
}

/// Step 3 of a deletion: forget pending removals that are done.
fn forget_removals(tx: &Connection, done: &[PathBuf]) -> Result<(), StoreError> {
    if done.is_empty() {
        return Ok(());
    }
    tx.prepare_cached(
        "DELETE FROM pending_removals WHERE path IN (SELECT value FROM json_each(?1))",
    )
    .and_then(|mut s| s.execute([path_list(done)?]))
    .map_err(StoreError::sql("forget pending removals"))?;
    Ok(())
}

/// Steps 2 and 3 of a deletion, one after the other. Returns how many files could not be
/// removed (left pending).
pub(crate) fn remove_files(store: &mut Store, removals: &[PathBuf]) -> Result<u64, StoreError> {
    if removals.is_empty() {
        return Ok(0);
    }
    let (done, failed) = remove_now(removals);
    if !done.is_empty() {
        let tx = store.begin()?;
        forget_removals(&tx, &done)?;
        tx.commit()
            .map_err(StoreError::sql("commit pending removals"))?;
    }
    Ok(failed)
}

/// How to run a sweep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepOptions {
    /// Select what would be deleted and change nothing.
    pub dry_run: bool,
    /// Who is sweeping, for the audit log (`sweeper`, `cli`).
    pub actor: String,
    /// Deletions per transaction. Each transaction touches about one page of each index per
    /// user and fsyncs the WAL once, so larger batches cost less per deletion; 5,000 holds
    /// the write lock for a few hundred milliseconds.
    pub batch: usize,
    /// At most this many deletions are listed in the report (all are counted).
    pub list_limit: usize,
    /// Stop after about this many deletions (whole batches) and say whether more remain, so
    /// a daemon can release the store between steps and let ingest through. `None`: all.
    pub max_deletions: Option<u64>,
    /// Dry run only: evaluate these sites (by name) as if they had these settings, e.g. the
    /// settings a config file would apply before a real sweep, so the preview shows what
    /// that sweep would delete. Recordings of a site whose retention or legal hold differ get
    /// their expiry computed from the given settings (as [`Store::update_site`] would);
    /// nothing is written. A real sweep refuses overrides: apply them with `update_site`.
    pub site_overrides: BTreeMap<String, SiteSettings>,
}

impl Default for SweepOptions {
    fn default() -> Self {
        SweepOptions {
            dry_run: false,
            actor: "sweeper".to_owned(),
            batch: 5000,
            list_limit: 10_000,
            max_deletions: None,
            site_overrides: BTreeMap::new(),
        }
    }
}

/// One recording a sweep deleted (or would delete).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Swept {
    /// The recording.
    pub id: RecordingId,
    /// Its site.
    pub site_id: SiteId,
    /// Its user.
    pub user_id: UserId,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it expired.
    pub expires_at: DateTime<Utc>,
    /// Its size.
    pub size_bytes: u64,
    /// Its file.
    pub path: PathBuf,
}

/// What a sweep did (or, dry, would do).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    /// The time the sweep ran as of.
    pub now: DateTime<Utc>,
    /// Whether nothing was changed.
    pub dry_run: bool,
    /// How many recordings were (would be) deleted.
    pub deleted: u64,
    /// Their bytes.
    pub deleted_bytes: u64,
    /// The first `list_limit` of them, oldest expiry first.
    pub listed: Vec<Swept>,
    /// Expired recordings kept because they are on hold.
    pub kept_on_hold: u64,
    /// Deleted recordings whose file could not be removed yet (this sweep's, or an earlier
    /// deletion's tried again): the next sweep or reconcile tries again.
    pub files_not_removed: u64,
    /// Whether the sweep stopped at `max_deletions`, so expired recordings may be left: call
    /// it again.
    pub more: bool,
}

/// Where a page of victims starts: after this (time, seq).
type Keyset = (i64, i64);

/// No site, as a JSON array of site ids.
const NO_SITES: &str = "[]";

/// The first `limit` victims by (expiry, seq) of those offered in any order, holding no more
/// than `limit` at a time.
struct Shortlist {
    limit: usize,
    heap: BinaryHeap<ByExpiry>,
}

/// A victim ordered by (expiry, seq).
struct ByExpiry(Victim);

impl ByExpiry {
    fn key(&self) -> (i64, i64) {
        (self.0.expires_at.unwrap_or(i64::MIN), self.0.seq)
    }
}

impl PartialEq for ByExpiry {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for ByExpiry {}

impl PartialOrd for ByExpiry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ByExpiry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

impl Shortlist {
    fn new(limit: usize) -> Shortlist {
        Shortlist {
            limit,
            heap: BinaryHeap::new(),
        }
    }

    fn offer(&mut self, v: Victim) {
        if self.limit == 0 {
            return;
        }
        // A max-heap of the kept ones: a newcomer earlier than the latest kept replaces it.
        if self.heap.len() < self.limit {
            self.heap.push(ByExpiry(v));
        } else if let Some(mut latest) = self.heap.peek_mut() {
            let v = ByExpiry(v);
            if v < *latest {
                *latest = v;
            }
        }
    }

    fn into_sorted(self) -> Vec<Victim> {
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|b| b.0)
            .collect()
    }
}

impl Store {
    /// Apply retention now (SPEC §4.3): delete every `stored` or `failed` recording whose
    /// `expires_at` has passed and that is not on hold, leaving tombstones and audit entries.
    /// With `dry_run`, change nothing and report what would be deleted, under the sites'
    /// current settings or, for the sites in `site_overrides`, under the settings given there
    /// (what a sweep after `update_site` would delete).
    ///
    /// Crash-safe: each batch's rows become tombstones (with usage, audit entries and a
    /// `pending_removals` entry per file) in one transaction before any file is removed; a
    /// kill between the two leaves files that [`Store::reconcile`] removes. The index never
    /// says `stored` for a file that is gone.
    pub fn sweep(&mut self, options: &SweepOptions) -> Result<SweepReport, StoreError> {
        let now = self.now();
        let batch = options.batch.max(1);
        if options.dry_run {
            return self.dry_run(options, now, batch);
        }
        if !options.site_overrides.is_empty() {
            let names: Vec<&str> = options.site_overrides.keys().map(String::as_str).collect();
            return Err(StoreError::invalid(
                "site_overrides",
                names.join(", "),
                "only a dry run can use settings that are not in force; apply them with \
                 update_site first",
            ));
        }
        let mut report = SweepReport {
            now,
            dry_run: false,
            deleted: 0,
            deleted_bytes: 0,
            listed: Vec::new(),
            kept_on_hold: self.count_held_expired(now, NO_SITES)?,
            files_not_removed: 0,
            more: false,
        };
        let limit_reached =
            |report: &SweepReport| options.max_deletions.is_some_and(|m| report.deleted >= m);

        // Files an earlier deletion could not remove (a passing error) are tried again now:
        // the daemon sweeps for months without a restart, and only a start ran reconcile.
        let leftover = self.pending_removals()?;
        report.files_not_removed += remove_files(self, &leftover)?;

        // Rows and files are pipelined: while a helper thread removes the files of one
        // committed batch (never before its commit), the next batch's tombstones are
        // written. Files removed (and their directories fsynced) are forgotten from
        // `pending_removals` in the next transaction.
        let (to_remove, removals_in) = mpsc::sync_channel::<Vec<PathBuf>>(2);
        let (removed_out, removed) = mpsc::channel::<(Vec<PathBuf>, u64)>();
        let paths = self.paths.clone();
        std::thread::scope(|scope| {
            scope.spawn(move || {
                for batch in removals_in {
                    let _ = removed_out.send(remove_now(&batch));
                }
            });
            let result = (|| {
                let mut after = (i64::MIN, i64::MIN);
                loop {
                    let tx = self.begin()?;
                    while let Ok((done, failed)) = removed.try_recv() {
                        forget_removals(&tx, &done)?;
                        report.files_not_removed += failed;
                    }
                    let victims = self.select_victims(&tx, now, after, batch)?;
                    if let Some(last) = victims.last() {
                        after = (last.expires_at.unwrap_or(i64::MIN), last.seq);
                    }
                    self.note_victims(&mut report, &victims, options.list_limit)?;
                    let files = tombstone(
                        &tx,
                        &paths,
                        &victims,
                        now,
                        &options.actor,
                        "recording.delete",
                        "retention: expired",
                    )?;
                    tx.commit().map_err(StoreError::sql("commit sweep"))?;
                    if !files.is_empty() && to_remove.send(files).is_err() {
                        return Err(StoreError::Task("the file remover stopped".into()));
                    }
                    if victims.len() < batch {
                        return Ok(());
                    }
                    if limit_reached(&report) {
                        report.more = true;
                        return Ok(());
                    }
                }
            })();
            drop(to_remove);
            // Wait for the remover, then forget what it removed.
            let mut rest = Vec::new();
            for (done, failed) in removed.iter() {
                rest.extend(done);
                report.files_not_removed += failed;
            }
            result?;
            if !rest.is_empty() {
                let tx = self.begin()?;
                forget_removals(&tx, &rest)?;
                tx.commit()
                    .map_err(StoreError::sql("commit pending removals"))?;
            }
            Ok(report)
        })
    }

    /// The files whose removal is committed but not yet done.
    fn pending_removals(&self) -> Result<Vec<PathBuf>, StoreError> {
        self.conn
            .prepare_cached("SELECT path FROM pending_removals ORDER BY path")
            .and_then(|mut s| {
                s.query_map([], |r| r.get::<_, String>(0).map(PathBuf::from))?
                    .collect()
            })
            .map_err(StoreError::sql("list pending removals"))
    }

    fn select_victims(
        &self,
        conn: &Connection,
        now: DateTime<Utc>,
        after: (i64, i64),
        batch: usize,
    ) -> Result<Vec<Victim>, StoreError> {
        // Keyset on (expires_at, seq): a dry run pages through victims that stay put, a real
        // run through victims that turn into tombstones behind it.
        let select = format!(
            "SELECT {VICTIM_COLUMNS} FROM recordings
             WHERE state IN ('stored', 'failed') AND hold = 0 AND expires_at <= ?1
               AND (expires_at, seq) > (?2, ?3)
             ORDER BY expires_at, seq LIMIT ?4"
        );
        conn.prepare_cached(&select)
            .and_then(|mut s| {
                s.query_map(
                    params![ms(now), after.0, after.1, batch as i64],
                    victim_from_row,
                )?
                .collect()
            })
            .map_err(StoreError::sql("select expired recordings"))
    }

    fn note_victims(
        &self,
        report: &mut SweepReport,
        victims: &[Victim],
        list_limit: usize,
    ) -> Result<(), StoreError> {
        for v in victims {
            report.deleted += 1;
            report.deleted_bytes += u64::try_from(v.size).unwrap_or(0);
            if report.listed.len() < list_limit {
                report.listed.push(self.swept(v)?);
            }
        }
        Ok(())
    }

    /// Expired recordings on hold, outside the sites listed in `excluded` (a JSON array of
    /// site ids).
    fn count_held_expired(&self, now: DateTime<Utc>, excluded: &str) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn
            .prepare_cached(
                "SELECT COUNT(*) FROM recordings
                 WHERE hold = 1 AND state IN ('stored', 'failed') AND expires_at <= ?1
                   AND site_id NOT IN (SELECT value FROM json_each(?2))",
            )
            .and_then(|mut s| s.query_row(params![ms(now), excluded], |r| r.get(0)))
            .map_err(StoreError::sql("count held recordings"))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// A sweep that writes nothing: page through the victims (they stay put), count them and
    /// list the first `list_limit` by expiry. Sites in `site_overrides` whose retention or
    /// legal hold would change are read by start time and their expiry computed from the
    /// given settings; every other site by its stored expiry.
    fn dry_run(
        &self,
        options: &SweepOptions,
        now: DateTime<Utc>,
        batch: usize,
    ) -> Result<SweepReport, StoreError> {
        let view = self.view();
        let mut recomputed = Vec::new();
        for (name, settings) in &options.site_overrides {
            settings.validate()?;
            let site = view.site(name)?;
            if settings.retention_days != site.settings.retention_days
                || settings.legal_hold != site.settings.legal_hold
            {
                recomputed.push((site.id, settings));
            }
        }
        let excluded = format!(
            "[{}]",
            recomputed
                .iter()
                .map(|(site, _)| site.0.to_string())
                .collect::<Vec<_>>()
                .join(",")
        );
        let mut report = SweepReport {
            now,
            dry_run: true,
            deleted: 0,
            deleted_bytes: 0,
            listed: Vec::new(),
            kept_on_hold: self.count_held_expired(now, &excluded)?,
            files_not_removed: 0,
            more: false,
        };
        let mut listed = Shortlist::new(options.list_limit);
        let mut count = |victims: Vec<Victim>, report: &mut SweepReport| {
            for v in victims {
                report.deleted += 1;
                report.deleted_bytes += u64::try_from(v.size).unwrap_or(0);
                listed.offer(v);
            }
        };
        let limit_reached =
            |report: &SweepReport| options.max_deletions.is_some_and(|m| report.deleted >= m);

        // Sites evaluated as they are.
        let mut after = (i64::MIN, i64::MIN);
        loop {
            let victims = self.select_dry_victims(now, after, batch, &excluded)?;
            let full = victims.len() == batch;
            if let Some(last) = victims.last() {
                after = (last.expires_at.unwrap_or(i64::MIN), last.seq);
            }
            count(victims, &mut report);
            if !full {
                break;
            }
            if limit_reached(&report) {
                report.more = true;
                break;
            }
        }
        // Sites evaluated with other settings.
        for (site, settings) in &recomputed {
            report.kept_on_hold += self.count_expiring_with(*site, settings, now, true)?;
            let mut after = (i64::MIN, i64::MIN);
            while !report.more {
                let (victims, next) =
                    self.expiring_with(*site, settings, now, false, after, batch)?;
                count(victims, &mut report);
                match next {
                    Some(_) if limit_reached(&report) => report.more = true,
                    Some(next) => after = next,
                    None => break,
                }
            }
        }
        for v in listed.into_sorted() {
            report.listed.push(self.swept(&v)?);
        }
        Ok(report)
    }

    /// [`Store::select_victims`] outside the sites in `excluded` (a JSON array of site ids),
    /// on the write connection outside any transaction (a dry run).
    fn select_dry_victims(
        &self,
        now: DateTime<Utc>,
        after: (i64, i64),
        batch: usize,
        excluded: &str,
    ) -> Result<Vec<Victim>, StoreError> {
        let select = format!(
            "SELECT {VICTIM_COLUMNS} FROM recordings
             WHERE state IN ('stored', 'failed') AND hold = 0 AND expires_at <= ?1
               AND (expires_at, seq) > (?2, ?3)
               AND site_id NOT IN (SELECT value FROM json_each(?5))
             ORDER BY expires_at, seq LIMIT ?4"
        );
        self.conn
            .prepare_cached(&select)
            .and_then(|mut s| {
                s.query_map(
                    params![ms(now), after.0, after.1, batch as i64, excluded],
                    victim_from_row,
                )?
                .collect()
            })
            .map_err(StoreError::sql("select expired recordings"))
    }

    /// One page of `site`'s recordings (on hold or not) that would have expired by `now`
    /// under `settings`, read by start time after `after` (started_at, seq), with the expiry
    /// they would have. Returns where the next page starts, or `None` after the last.
    fn expiring_with(
        &self,
        site: SiteId,
        settings: &SiteSettings,
        now: DateTime<Utc>,
        hold: bool,
        after: (i64, i64),
        batch: usize,
    ) -> Result<(Vec<Victim>, Option<Keyset>), StoreError> {
        // Only recordings that started this long ago can have expired: `retention_days`
        // ago, and under a legal hold also seven calendar years ago (a few days' slack for
        // months of different lengths; the exact test is `expires_at` below).
        let mut latest_start = now - chrono::TimeDelta::days(i64::from(settings.retention_days));
        if settings.legal_hold {
            let seven_years = now
                .checked_sub_months(chrono::Months::new(7 * 12))
                .map_or(DateTime::<Utc>::MIN_UTC, |t| t + chrono::TimeDelta::days(4));
            latest_start = latest_start.min(seven_years);
        }
        let select = format!(
            "SELECT {VICTIM_COLUMNS} FROM recordings
             WHERE site_id = ?1 AND state IN ('stored', 'failed') AND hold = ?2
               AND started_at <= ?3 AND (started_at, seq) > (?4, ?5)
             ORDER BY started_at, seq LIMIT ?6"
        );
        let page: Vec<Victim> = self
            .conn
            .prepare_cached(&select)
            .and_then(|mut s| {
                s.query_map(
                    params![
                        site.0,
                        hold,
                        ms(latest_start),
                        after.0,
                        after.1,
                        batch as i64
                    ],
                    victim_from_row,
                )?
                .collect()
            })
            .map_err(StoreError::sql("select recordings to preview"))?;
        let next = match page.last() {
            Some(last) if page.len() == batch => Some((last.started_at, last.seq)),
            _ => None,
        };
        let mut expiring = Vec::with_capacity(page.len());
        for mut v in page {
            let expires = ms(expires_at(view::from_ms(v.started_at)?, settings));
            if expires <= ms(now) {
                v.expires_at = Some(expires);
                expiring.push(v);
            }
        }
        Ok((expiring, next))
    }

    /// How many of `site`'s recordings on hold (`hold`) would have expired under `settings`.
    fn count_expiring_with(
        &self,
        site: SiteId,
        settings: &SiteSettings,
        now: DateTime<Utc>,
        hold: bool,
    ) -> Result<u64, StoreError> {
        let mut n = 0u64;
        let mut after = (i64::MIN, i64::MIN);
        loop {
            let (page, next) = self.expiring_with(site, settings, now, hold, after, 1000)?;
            n += page.len() as u64;
            match next {
                Some(next) => after = next,
                None => return Ok(n),
            }
        }
    }

    /// A victim as the report lists it.
    fn swept(&self, v: &Victim) -> Result<Swept, StoreError> {
        Ok(Swept {
            id: v.id.clone(),
            site_id: v.site,
            user_id: v.user,
            started_at: view::from_ms(v.started_at)?,
            expires_at: view::from_ms(v.expires_at.unwrap_or(v.started_at))?,
            size_bytes: u64::try_from(v.size).unwrap_or(0),
            path: self.paths.store_file(&v.store_path),
        })
    }
}

/// Quota eviction inside an ingest's transaction (SPEC §4.4, policy `evict_oldest`): delete
/// the user's oldest recordings not on hold until their usage fits, never the one just
/// ingested (`keep`). Returns the files to remove after the commit.
///
/// On a site under `legal_hold` nothing is evicted: the legal hold keeps every recording of
/// the site seven years (SPEC §1), and a quota cannot overrule it. The user stays flagged as
/// over quota, as under `alert`.
pub(crate) fn evict_for_quota(
    tx: &Connection,
    paths: &Paths,
    user: UserId,
    settings: &SiteSettings,
    keep: i64,
    now: DateTime<Utc>,
) -> Result<Vec<PathBuf>, StoreError> {
    if settings.legal_hold {
        return Ok(Vec::new());
    }
    let used: i64 = tx
        .prepare_cached("SELECT COALESCE((SELECT bytes FROM usage WHERE user_id = ?1), 0)")
        .and_then(|mut s| s.query_row([user.0], |r| r.get(0)))
        .map_err(StoreError::sql("read usage"))?;
    let quota = i64::try_from(settings.quota_bytes).unwrap_or(i64::MAX);
    if used <= quota {
        return Ok(Vec::new());
    }
    // Deleting only makes sense when it can bring the user within the quota: when held
    // recordings and the one just stored exceed it alone, every other recording would go and
    // the user would still be over. Then the user is flagged, as under `alert`.
    let evictable: i64 = tx
        .prepare_cached(
            "SELECT COALESCE(SUM(size_bytes), 0) FROM recordings
             WHERE user_id = ?1 AND state IN ('stored', 'failed') AND hold = 0 AND seq <> ?2
               AND sha256 IS NOT NULL",
        )
        .and_then(|mut s| s.query_row(params![user.0, keep], |r| r.get(0)))
        .map_err(StoreError::sql("sum evictable recordings"))?;
    if used - evictable > quota {
        return Ok(Vec::new());
    }
    let select = format!(
        "SELECT {VICTIM_COLUMNS} FROM recordings
         WHERE user_id = ?1 AND state IN ('stored', 'failed') AND hold = 0 AND seq <> ?2
           AND sha256 IS NOT NULL
         ORDER BY started_at, seq LIMIT 256"
    );
    let candidates: Vec<Victim> = tx
        .prepare_cached(&select)
        .and_then(|mut s| {
            s.query_map(params![user.0, keep], victim_from_row)?
                .collect()
        })
        .map_err(StoreError::sql("select recordings to evict"))?;
    let mut excess = used - quota;
    let mut victims = Vec::new();
    for v in candidates {
        if excess <= 0 {
            break;
        }
        excess -= v.size;
        victims.push(v);
    }
    let why = format!("quota: oldest recordings evicted to fit {quota} bytes");
    tombstone(tx, paths, &victims, now, "quota", "recording.delete", &why)
}

//! One archive run, and the schedule of runs: read the change feed from the saved state,
//! archive each recording stored since (and those that failed last time), save the state as
//! it goes, write the run's manifest, report the run to the server.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::download::{self, Fetched, RateLimit};
use crate::error::ArchiveError;
use crate::plan::{self, FeedAction, FeedCursor, OnDisk, SkipReason, Step};
use crate::progress::Progress;
use crate::schedule::{Schedule, Timer};
use crate::server::{RecordingMeta, RetryPolicy, RunReport, Server, Token};
use crate::state::{self, ArchiveState, STATE_DIR};
use crate::template::{NameFields, NameTemplate};

/// The most changes asked for per page of the feed.
const FEED_PAGE: u32 = 1000;
/// Recordings handled together: their metadata read in one request (the next batch's is
/// read while this one downloads), their audio downloaded `concurrency` at once, then the
/// folders synced and the state saved.
const BATCH: usize = 200;
/// Verified downloads being synced and renamed at once. Their fsyncs, in flight together,
/// share the disk's journal commits; one after another, each would wait for its own.
const FINISHING: usize = 32;
/// The most errors a run report carries (the manifest has them all).
const REPORTED_ERRORS: usize = 20;

/// `--since`: a day in the site's time zone, or an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    /// From the start of this day in the site's time zone.
    Day(NaiveDate),
    /// From this instant.
    Instant(DateTime<Utc>),
}

impl std::str::FromStr for Since {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            return Ok(Since::Day(d));
        }
        DateTime::parse_from_rfc3339(s)
            .map(|t| Since::Instant(t.with_timezone(&Utc)))
            .map_err(|_| format!("`{s}` is not a date (2024-05-01) or an RFC 3339 time"))
    }
}

impl Since {
    /// The instant, with a day taken in `tz`.
    pub fn resolve(self, tz: Tz) -> DateTime<Utc> {
        match self {
            Since::Instant(t) => t,
            Since::Day(d) => {
                use chrono::TimeZone;
                (0..24)
                    .filter_map(|h| d.and_hms_opt(h, 0, 0))
                    .find_map(|t| tz.from_local_datetime(&t).earliest())
                    .map(|t| t.with_timezone(&Utc))
                    .unwrap_or_else(|| d.and_time(chrono::NaiveTime::MIN).and_utc())
            }
        }
    }
}

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct ArchiveConfig {
    /// The server, e.g. `https://callrec.example.com`.
    pub server: String,
    /// The API token.
    pub token: Token,
    /// The archive's folder.
    pub dest: PathBuf,
    /// Only recordings started from then on.
    pub since: Option<Since>,
    /// How files are named.
    pub name: NameTemplate,
    /// When to run.
    pub schedule: Schedule,
    /// Show what would be downloaded; write nothing.
    pub dry_run: bool,
    /// The most bytes per second.
    pub limit_rate: Option<u64>,
    /// Show a progress bar (on a terminal only).
    pub progress: bool,
    /// The name runs are reported under.
    pub client_name: String,
    /// How requests are retried.
    pub retry: RetryPolicy,
    /// Recordings downloaded at once.
    pub concurrency: usize,
}

impl ArchiveConfig {
    /// A configuration with the defaults: the default template, once, no limit, 4 at once.
    pub fn new(server: &str, token: Token, dest: impl Into<PathBuf>) -> Self {
        ArchiveConfig {
            server: server.to_owned(),
            token,
            dest: dest.into(),
            since: None,
            name: NameTemplate::default(),
            schedule: Schedule::Once,
            dry_run: false,
            limit_rate: None,
            progress: false,
            client_name: default_client_name(),
            retry: RetryPolicy::default(),
            concurrency: 4,
        }
    }
}

/// This machine's name, for run reports: from the environment (`COMPUTERNAME` on Windows,
/// `HOSTNAME`), `/etc/hostname`, or `callrec-archive`.
pub fn default_client_name() -> String {
    ["COMPUTERNAME", "HOSTNAME"]
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .chain(std::fs::read_to_string("/etc/hostname").ok())
        .map(|s| s.trim().to_owned())
        .find(|s| !s.is_empty() && s.len() <= 100)
        .unwrap_or_else(|| "callrec-archive".to_owned())
}

/// A recording archived in this run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArchivedFile {
    /// Its id.
    pub id: String,
    /// Its path under the destination, `/`-separated.
    pub name: String,
    /// Its size.
    pub size_bytes: u64,
    /// Its SHA-256, checked.
    pub sha256: String,
}

/// A recording that could not be archived (tried again next run).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailedRecording {
    /// Its id.
    pub id: String,
    /// Why.
    pub error: String,
}

/// What a run did: the manifest of the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunSummary {
    /// The client's name.
    pub client: String,
    /// The server.
    pub server: String,
    /// Whose recordings (`extension@site`).
    pub owner: String,
    /// When the run started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
    /// Nothing was written.
    pub dry_run: bool,
    /// The feed was read after this change.
    pub from_seq: i64,
    /// The feed is handled up to this change.
    pub last_seq: i64,
    /// Recordings downloaded and verified (a dry run: those that would be).
    pub downloaded: Vec<ArchivedFile>,
    /// Recordings found already archived (their hash checked).
    pub already_archived: u64,
    /// Recordings gone from the server before they could be archived (deleted, erased).
    pub gone: u64,
    /// Recordings started before `--since`.
    pub before_since: u64,
    /// Recordings that could not be archived.
    pub failed: Vec<FailedRecording>,
    /// Bytes received.
    pub bytes: u64,
    /// Why the run stopped early, if it did.
    pub stopped: Option<String>,
}

impl RunSummary {
    /// The report sent to the server.
    pub fn report(&self) -> RunReport {
        let mut errors: Vec<String> = self
            .stopped
            .iter()
            .cloned()
            .chain(self.failed.iter().map(|f| format!("{}: {}", f.id, f.error)))
            .take(REPORTED_ERRORS)
            .map(|e| e.chars().take(500).collect())
            .collect();
        errors.dedup();
        RunReport {
            client: self.client.clone(),
            started_at: self.started_at,
            finished_at: self.finished_at.max(self.started_at),
            downloaded: self.downloaded.len() as u64,
            skipped: self.gone + self.before_since + self.already_archived,
            failed: self.failed.len() as u64,
            bytes: self.bytes,
            last_seq: self.last_seq,
            dry_run: self.dry_run,
            errors,
        }
    }
}

/// What downloading one recording left to do.
enum Downloaded {
    /// Nothing: how it went is known (skipped, already there, failed, a dry run).
    Decided(Outcome),
    /// Whole and verified in `NAME.part`, its sidecar staged: to be synced and put in place
    /// ([`Ctx::finish`]).
    Verified {
        file: ArchivedFile,
        final_path: PathBuf,
        sidecar: state::Staged,
    },
}

/// How one recording went.
enum Outcome {
    Archived(ArchivedFile),
    AlreadyThere,
    Skipped(SkipReason),
    Failed(String),
}

/// What every recording of a run shares.
struct Ctx {
    server: Server,
    config: ArchiveConfig,
    tz: Tz,
    since: Option<DateTime<Utc>>,
    limit: Option<RateLimit>,
    progress: Progress,
    bytes: AtomicU64,
    /// Folders renamed into since they were last synced.
    unsynced: std::sync::Mutex<HashSet<PathBuf>>,
}

/// A recording's path under `dest` from its `/`-separated name.
fn local_path(dest: &Path, name: &str) -> PathBuf {
    name.split('/').fold(dest.to_path_buf(), |p, s| p.join(s))
}

/// The JSON sidecar beside an archived file.
fn sidecar_path(final_path: &Path) -> PathBuf {
    let mut s = final_path.as_os_str().to_owned();
    s.push(".json");
    PathBuf::from(s)
}

/// Write the sidecar (synced, renamed into place); its folder is synced with the others.
async fn write_sidecar(final_path: &Path, detail: &Value) -> Result<(), ArchiveError> {
    let staged = stage_sidecar(final_path, detail).await?;
    tokio::task::spawn_blocking(move || staged.commit())
        .await
        .map_err(|e| ArchiveError::Protocol(format!("sidecar task failed: {e}")))?
}

/// Write the sidecar beside its place, synced, to be put in place when its audio is.
async fn stage_sidecar(final_path: &Path, detail: &Value) -> Result<state::Staged, ArchiveError> {
    let path = sidecar_path(final_path);
    let bytes = serde_json::to_vec_pretty(detail)
        .map_err(|e| ArchiveError::Protocol(format!("cannot encode a sidecar: {e}")))?;
    tokio::task::spawn_blocking(move || state::stage(&path, &bytes))
        .await
        .map_err(|e| ArchiveError::Protocol(format!("sidecar task failed: {e}")))?
}

/// Remove a staged sidecar whose audio was not kept.
async fn discard(staged: state::Staged) {
    let _ = tokio::task::spawn_blocking(move || staged.discard()).await;
}

async fn exists(path: &Path) -> Result<bool, ArchiveError> {
    tokio::fs::try_exists(path)
        .await
        .map_err(|e| ArchiveError::io("look for", path, e))
}

impl Ctx {
    fn renamed_in(&self, final_path: &Path) {
        if let Some(dir) = final_path.parent() {
            self.unsynced
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(dir.to_path_buf());
        }
    }

    /// Sync every folder a file was renamed into, so that the state saved next (which
    /// counts on those files) never runs ahead of what a crash would keep. One sync per
    /// folder per save, not two per recording.
    async fn sync_folders(&self) {
        let dirs: Vec<PathBuf> = self
            .unsynced
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .drain()
            .collect();
        if dirs.is_empty() {
            return;
        }
        let _ = tokio::task::spawn_blocking(move || {
            for dir in dirs {
                state::sync_dir(&dir);
            }
        })
        .await;
    }

    /// Archive one recording, from its metadata and the whole reply for its sidecar.
    async fn download_one(
        &self,
        meta: RecordingMeta,
        detail: Value,
    ) -> Result<Downloaded, ArchiveError> {
        let name = match self.name_of(&meta) {
            Ok(n) => n,
            Err(e) => return Ok(Downloaded::Decided(Outcome::Failed(e.to_string()))),
        };
        let final_path = local_path(&self.config.dest, &name);
        let part = download::part_path(&final_path);
        let disk = OnDisk {
            complete: exists(&final_path).await?,
            part_len: match tokio::fs::metadata(&part).await {
                Ok(m) => Some(m.len()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(ArchiveError::io("look for", &part, e)),
            },
        };
        let step = plan::step(&meta, self.since, disk);
        let (Some(size), Some(sha256)) = (meta.size_bytes, meta.sha256.clone()) else {
            return Ok(Downloaded::Decided(Outcome::Skipped(SkipReason::Gone)));
        };
        match step {
            Step::Skip(why) => Ok(Downloaded::Decided(Outcome::Skipped(why))),
            Step::CheckExisting if self.config.dry_run => {
                Ok(Downloaded::Decided(Outcome::AlreadyThere))
            }
            Step::Download { .. } if self.config.dry_run => {
                Ok(Downloaded::Decided(Outcome::Archived(ArchivedFile {
                    id: meta.id,
                    name,
                    size_bytes: size,
                    sha256,
                })))
            }
            Step::CheckExisting => {
                let (len, found) = download::hash_file(&final_path).await?;
                if len != size || found != sha256 {
                    return Ok(Downloaded::Decided(Outcome::Failed(format!(
                        "{} exists with other content (SHA-256 {found}); left alone",
                        final_path.display()
                    ))));
                }
                if !exists(&sidecar_path(&final_path)).await? {
                    write_sidecar(&final_path, &detail).await?;
                    self.renamed_in(&final_path);
                }
                Ok(Downloaded::Decided(Outcome::AlreadyThere))
            }
            Step::Download { .. } => {
                if let Some(dir) = final_path.parent() {
                    tokio::fs::create_dir_all(dir)
                        .await
                        .map_err(|e| ArchiveError::io("create the folder", dir, e))?;
                }
                let on_bytes = |n: u64| {
                    self.bytes.fetch_add(n, Ordering::Relaxed);
                    self.progress.bytes(n);
                };
                // The sidecar is written and synced while the audio downloads, and put in
                // place once the audio is: the fsyncs of the two overlap instead of adding up.
                let staging = stage_sidecar(&final_path, &detail);
                let (fetched, staged) = tokio::join!(
                    download::fetch(
                        &self.server,
                        &meta,
                        &final_path,
                        self.limit.as_ref(),
                        &on_bytes,
                    ),
                    staging
                );
                let (fetched, staged) = match (fetched, staged) {
                    (Ok(f), Ok(s)) => (f, s),
                    (Err(e), staged) => {
                        if let Ok(s) = staged {
                            discard(s).await;
                        }
                        return Err(e);
                    }
                    // The audio may be in place without its sidecar: the state does not
                    // count on it yet, and the next run writes the sidecar it finds missing.
                    (Ok(_), Err(e)) => return Err(e),
                };
                match fetched {
                    Fetched::Verified { .. } => Ok(Downloaded::Verified {
                        file: ArchivedFile {
                            id: meta.id,
                            name,
                            size_bytes: size,
                            sha256,
                        },
                        final_path,
                        sidecar: staged,
                    }),
                    Fetched::Gone => {
                        discard(staged).await;
                        Ok(Downloaded::Decided(Outcome::Skipped(SkipReason::Gone)))
                    }
                    Fetched::Corrupt { attempts, found } => {
                        discard(staged).await;
                        Ok(Downloaded::Decided(Outcome::Failed(format!(
                            "SHA-256 mismatch on {attempts} downloads (expected {sha256}, last \
                             got {found}); nothing kept, tried again next run"
                        ))))
                    }
                }
            }
        }
    }

    /// Put a verified download in place: the audio synced and renamed, then its sidecar.
    async fn finish(&self, downloaded: Downloaded) -> Result<Outcome, ArchiveError> {
        let (file, final_path, sidecar) = match downloaded {
            Downloaded::Decided(outcome) => return Ok(outcome),
            Downloaded::Verified {
                file,
                final_path,
                sidecar,
            } => (file, final_path, sidecar),
        };
        if let Err(e) = download::keep(&final_path).await {
            discard(sidecar).await;
            return Err(e);
        }
        self.renamed_in(&final_path);
        tokio::task::spawn_blocking(move || sidecar.commit())
            .await
            .map_err(|e| ArchiveError::Protocol(format!("sidecar task failed: {e}")))??;
        Ok(Outcome::Archived(file))
    }

    fn name_of(&self, meta: &RecordingMeta) -> Result<String, crate::template::TemplateError> {
        self.config.name.render(
            &NameFields {
                started_at: meta.started_at,
                from: &meta.from.raw,
                to: &meta.to.raw,
                user: &meta.user,
                site: &meta.site,
                direction: &meta.direction,
                id: &meta.id,
                format: &meta.format,
            },
            self.tz,
        )
    }
}

/// Run the archive once. The run's manifest is written and the run reported even when it
/// stops early; the error that stopped it is then returned.
pub async fn run_once(
    config: &ArchiveConfig,
    timer: &dyn Timer,
) -> Result<RunSummary, ArchiveError> {
    let started_at = timer.now();
    let server = Server::new(&config.server, config.token.clone(), config.retry)?;
    let me = server.me().await?;
    let owner = me.owner();
    let tz = me.site_timezone;
    let mut state = match state::load(&config.dest)? {
        Some(s) => {
            s.check_matches(server.base(), &owner)
                .map_err(ArchiveError::Config)?;
            s
        }
        None => ArchiveState::new(server.base(), &owner),
    };
    let from_seq = state.last_seq;

    // What to archive: the recordings that failed last run, then those stored since.
    let mut items: Vec<(Option<i64>, String)> =
        state.pending.iter().map(|id| (None, id.clone())).collect();
    let mut seen: HashSet<String> = state.pending.iter().cloned().collect();
    let mut feed_head = state.last_seq;
    loop {
        let page = server.changes(feed_head, FEED_PAGE).await?;
        if page.changes.is_empty() {
            break;
        }
        for change in &page.changes {
            if plan::feed_action(&change.kind) == FeedAction::Fetch
                && seen.insert(change.recording_id.clone())
            {
                items.push((Some(change.seq), change.recording_id.clone()));
            }
        }
        if page.last_seq <= feed_head {
            return Err(ArchiveError::Protocol(format!(
                "the change feed did not move past {feed_head}"
            )));
        }
        feed_head = page.last_seq;
    }
    drop(seen);

    let ctx = Arc::new(Ctx {
        server: server.clone(),
        config: config.clone(),
        tz,
        since: config.since.map(|s| s.resolve(tz)),
        limit: config.limit_rate.map(RateLimit::new),
        progress: Progress::new(items.len() as u64, config.progress),
        bytes: AtomicU64::new(0),
        unsynced: std::sync::Mutex::new(HashSet::new()),
    });
    let mut summary = RunSummary {
        client: config.client_name.clone(),
        server: server.base().to_owned(),
        owner,
        started_at,
        finished_at: started_at,
        dry_run: config.dry_run,
        from_seq,
        last_seq: from_seq,
        downloaded: Vec::new(),
        already_archived: 0,
        gone: 0,
        before_since: 0,
        failed: Vec::new(),
        bytes: 0,
        stopped: None,
    };
    let mut cursor = FeedCursor {
        last_seq: state.last_seq,
    };
    let mut stop: Option<ArchiveError> = None;
    let batches: Vec<Vec<(Option<i64>, String)>> = items.chunks(BATCH).map(<[_]>::to_vec).collect();
    drop(items);
    let mut batches = batches.into_iter();
    let read_metadata = |batch: &[(Option<i64>, String)]| {
        let server = server.clone();
        let ids: Vec<String> = batch.iter().map(|(_, id)| id.clone()).collect();
        tokio::spawn(async move { server.recordings(&ids).await })
    };
    let mut next = batches.next().map(|b| (read_metadata(&b), b));
    while let Some((reading, batch)) = next.take() {
        let found = match reading.await {
            Ok(Ok(found)) => found,
            Ok(Err(e)) => {
                stop = Some(e);
                break;
            }
            Err(e) => {
                stop = Some(ArchiveError::Protocol(format!("metadata task failed: {e}")));
                break;
            }
        };
        next = batches.next().map(|b| (read_metadata(&b), b));
        let mut found: HashMap<String, (RecordingMeta, Value)> = found
            .into_iter()
            .map(|(meta, detail)| (meta.id.clone(), (meta, detail)))
            .collect();
        // Two stages, each in the feed's order: `concurrency` downloads at once, and up to
        // `FINISHING` verified files being synced and renamed while the next ones download.
        let results = futures_util::stream::iter(batch.into_iter().map(|(seq, id)| {
            let ctx = ctx.clone();
            let recording = found.remove(&id);
            async move {
                let downloaded = match recording {
                    Some((meta, detail)) => ctx.download_one(meta, detail).await,
                    // Gone from the server (deleted and erased, or no longer the token's).
                    None => Ok(Downloaded::Decided(Outcome::Skipped(SkipReason::Gone))),
                };
                (seq, id, downloaded)
            }
        }))
        .buffered(config.concurrency.max(1))
        .map(|(seq, id, downloaded)| {
            let ctx = ctx.clone();
            async move {
                let outcome = match downloaded {
                    Ok(d) => ctx.finish(d).await,
                    Err(e) => Err(e),
                };
                (seq, id, outcome)
            }
        })
        .buffered(FINISHING);
        let mut results = std::pin::pin!(results);
        while let Some((seq, id, outcome)) = results.next().await {
            let outcome = match outcome {
                Ok(o) => o,
                Err(e) => {
                    stop = Some(e);
                    break;
                }
            };
            match outcome {
                Outcome::Archived(f) => {
                    state.pending.remove(&id);
                    summary.downloaded.push(f);
                }
                Outcome::AlreadyThere => {
                    state.pending.remove(&id);
                    summary.already_archived += 1;
                }
                Outcome::Skipped(why) => {
                    state.pending.remove(&id);
                    match why {
                        SkipReason::Gone => summary.gone += 1,
                        SkipReason::BeforeSince => summary.before_since += 1,
                    }
                }
                Outcome::Failed(error) => {
                    tracing::error!(id, error, "not archived");
                    state.pending.insert(id.clone());
                    summary.failed.push(FailedRecording { id, error });
                }
            }
            // `buffered` yields in the feed's order, so the cursor only ever moves past
            // changes whose recordings are all handled.
            if let Some(seq) = seq {
                cursor.resolved(seq);
            }
            ctx.progress.recording_done();
        }
        if stop.is_some() {
            break;
        }
        if !config.dry_run {
            ctx.sync_folders().await;
            state.last_seq = cursor.last_seq;
            if let Err(e) = state::save(&config.dest, &state) {
                stop = Some(e);
                break;
            }
        }
    }
    if let Some((reading, _)) = next {
        reading.abort();
    }
    if stop.is_none() {
        // Every change up to the head is handled, the ones that asked nothing included.
        cursor.resolved(feed_head);
    }
    ctx.progress.finish();
    state.last_seq = cursor.last_seq;
    summary.last_seq = cursor.last_seq;
    summary.bytes = ctx.bytes.load(Ordering::Relaxed);
    summary.stopped = stop.as_ref().map(ToString::to_string);
    summary.finished_at = timer.now();

    if !config.dry_run {
        ctx.sync_folders().await;
        // On a full disk these may fail too; the state on disk is then the last one saved,
        // which is safe to resume from.
        let saved = state::save(&config.dest, &state);
        let manifest = write_manifest(&config.dest, &summary);
        for e in [saved.err(), manifest.err()].into_iter().flatten() {
            tracing::error!(error = %e, "cannot record the run in the archive");
            stop.get_or_insert(e);
        }
    }
    if let Err(e) = server.report(&summary.report()).await {
        tracing::warn!(error = %e, "cannot report the run to the server");
    }
    match stop {
        Some(e) => Err(e),
        None => Ok(summary),
    }
}

/// Write the run's manifest to `DEST/.callrec-archive/runs/`.
pub fn write_manifest(dest: &Path, summary: &RunSummary) -> Result<PathBuf, ArchiveError> {
    let name = format!(
        "run-{}.json",
        summary.started_at.format("%Y%m%dT%H%M%S%.3fZ")
    );
    let path = dest.join(STATE_DIR).join("runs").join(name);
    let bytes = serde_json::to_vec_pretty(summary)
        .map_err(|e| ArchiveError::Protocol(format!("cannot encode the manifest: {e}")))?;
    state::write_atomically(&path, &bytes)?;
    Ok(path)
}

/// Run on `config.schedule` until `shutdown`: once (returning its result), or again and
/// again. On a schedule, a failed run is logged and the next one tried at its time (a full
/// disk resumes once space is freed); only a configuration error (a refused token, a
/// folder of another server) ends the loop. `after_run` sees each run's result.
pub async fn run_scheduled(
    config: &ArchiveConfig,
    timer: &dyn Timer,
    shutdown: CancellationToken,
    mut after_run: impl FnMut(&Result<RunSummary, ArchiveError>),
) -> Result<Option<RunSummary>, ArchiveError> {
    loop {
        let start = timer.now();
        let result = tokio::select! {
            r = run_once(config, timer) => r,
            () = shutdown.cancelled() => return Ok(None),
        };
        after_run(&result);
        let Some(next) = config.schedule.next_run(start, timer.now(), &chrono::Local) else {
            return result.map(Some);
        };
        match result {
            Err(e) if e.is_config() => return Err(e),
            Err(e) => tracing::error!(error = %e, "archive run failed"),
            Ok(_) => {}
        }
        tracing::info!(next = %next, "next archive run");
        tokio::select! {
            () = timer.sleep_until(next) => {}
            () = shutdown.cancelled() => return Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_day_in_the_site_zone_or_an_instant() {
        let day: Since = "2024-05-01".parse().unwrap();
        assert_eq!(
            day.resolve(Tz::Europe__London).to_rfc3339(),
            "2024-04-30T23:00:00+00:00"
        );
        let t: Since = "2024-05-01T10:00:00+02:00".parse().unwrap();
        assert_eq!(t.resolve(Tz::UTC).to_rfc3339(), "2024-05-01T08:00:00+00:00");
        assert!("yesterday".parse::<Since>().is_err());
    }

    #[test]
    fn a_report_carries_the_first_errors_and_counts() {
        let s = RunSummary {
            client: "nas".into(),
            server: "http://h".into(),
            owner: "1001@default".into(),
            started_at: Utc::now(),
            finished_at: Utc::now(),
            dry_run: false,
            from_seq: 0,
            last_seq: 9,
            downloaded: vec![],
            already_archived: 2,
            gone: 1,
            before_since: 0,
            failed: (0..30)
                .map(|i| FailedRecording {
                    id: format!("r{i}"),
                    error: "x".repeat(900),
                })
                .collect(),
            bytes: 10,
            stopped: Some("the destination is full".into()),
        };
        let r = s.report();
        assert_eq!(r.failed, 30);
        assert_eq!(r.skipped, 3);
        assert_eq!(r.errors.len(), REPORTED_ERRORS);
        assert_eq!(r.errors[0], "the destination is full");
        assert!(r.errors.iter().all(|e| e.chars().count() <= 500));
    }

    #[test]
    fn names_become_paths_under_the_destination() {
        assert_eq!(
            local_path(Path::new("/d"), "2024/05/01/x.wav"),
            Path::new("/d/2024/05/01/x.wav")
        );
        assert_eq!(
            sidecar_path(Path::new("/d/x.wav")),
            Path::new("/d/x.wav.json")
        );
    }
}

//! [`Store`]: the one owner of the index's write connection and of every change to it.
//!
//! Every change runs in one `BEGIN IMMEDIATE` transaction together with its audit entry, so a
//! change and its record commit together or not at all. Changes that also touch files
//! (ingest, deletion) follow the order in `files.rs` and `ingest.rs`: rows and files move
//! together, and a crash in between is finished by [`Store::reconcile`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Datelike, Months, TimeDelta, Utc};
use rand::RngCore;
use rusqlite::{
    Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior, params,
};
use serde_json::json;

use crate::audit::{self, Event};
use crate::error::{ErrorKind, StoreError};
use crate::files;
use crate::migrate::{self, Migration};
use crate::naming::{self, validate_extension, validate_format, validate_site_name};
use crate::records::{
    Access, FilePurpose, NewToken, NewUser, Note, Recording, RecordingDetail, Segment, Site,
    SiteSettings, SiteUpdate, StoredFile, User, UserUpdate,
};
use crate::view::{self, ReadView, ms};
use callrec_model::{Clock, NewRecording, SystemClock};
use callrec_model::{RecordingId, RecordingMode, RecordingState, SegmentKind, SegmentSource};
use callrec_model::{Role, SiteId, TokenId, UserId};
use callrec_numbers::{self as numbers, NumberPlan};

/// How long a connection waits for another process's write lock before giving up with
/// `busy`. The daemon and a CLI command may write at the same time; each write is short.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest note accepted, in characters.
pub const MAX_NOTE_CHARS: usize = 10_000;

/// Where a store keeps its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// The data directory (`storage.data_dir`).
    pub data_dir: PathBuf,
    /// The index: `<data_dir>/index.db`.
    pub index: PathBuf,
    /// The root of stored files: `<data_dir>/store`.
    pub store: PathBuf,
}

impl Paths {
    /// The layout under `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        let data_dir = data_dir.into();
        Paths {
            index: data_dir.join("index.db"),
            store: data_dir.join("store"),
            data_dir,
        }
    }

    /// The absolute path of a store-relative path kept in a row.
    pub(crate) fn store_file(&self, rel: &str) -> PathBuf {
        self.store.join(rel)
    }
}

/// The recording store: the index and the files under the data directory.
pub struct Store {
    pub(crate) conn: Connection,
    pub(crate) paths: Paths,
    pub(crate) clock: Arc<dyn Clock>,
    migration: Migration,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("paths", &self.paths).finish()
    }
}

pub(crate) fn configure(conn: &Connection) -> Result<(), StoreError> {
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(StoreError::sql("set busy timeout"))?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// The time a recording started at `started_at` expires under `settings` (SPEC §4.3): after
/// `retention_days`, or after 7 calendar years under `legal_hold` (whichever is later: a
/// legal hold never shortens a retention; 29 February counts on to 1 March).
pub fn expires_at(started_at: DateTime<Utc>, settings: &SiteSettings) -> DateTime<Utc> {
    // The start time comes from the switch's event: one at the end of the calendar must keep
    // the recording for ever, not panic the ingest thread.
    let by_days = started_at
        .checked_add_signed(TimeDelta::days(i64::from(settings.retention_days)))
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    if settings.legal_hold {
        // Calendar arithmetic takes 29 February to 28 February of a common year, a day short
        // of seven years (2,556 days): a leap-day recording is kept until 1 March instead.
        let seven_years = started_at
            .checked_add_months(Months::new(7 * 12))
            .map(|t| {
                if t.day() == started_at.day() {
                    t
                } else {
                    t.checked_add_signed(TimeDelta::days(1))
                        .unwrap_or(DateTime::<Utc>::MAX_UTC)
                }
            })
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        seven_years.max(by_days)
    } else {
        by_days
    }
}

/// A new API token secret: 32 random bytes, hex, with a recognisable prefix.
fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("callrec_{}", hex::encode(bytes))
}

impl Store {
    /// Open (creating if needed) the store under `data_dir`, applying pending migrations.
    pub fn open(data_dir: impl AsRef<Path>) -> Result<Store, StoreError> {
        Store::open_with_clock(data_dir, Arc::new(SystemClock))
    }

    /// [`Store::open`] with a given clock (tests move time; a dry run can look ahead).
    pub fn open_with_clock(
        data_dir: impl AsRef<Path>,
        clock: Arc<dyn Clock>,
    ) -> Result<Store, StoreError> {
        let paths = Paths::new(data_dir.as_ref());
        // Refuse early, before anything is created, so a bad data dir leaves nothing behind.
        files::probe_writable(&paths.data_dir)?;
        std::fs::create_dir_all(&paths.store).map_err(|source| StoreError::DataDirNotWritable {
            path: paths.store.clone(),
            source,
        })?;
        let mut conn = Connection::open_with_flags(
            &paths.index,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(StoreError::sql("open the index"))?;
        configure(&conn)?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "wal", |r| r.get(0))
            .map_err(StoreError::sql("enable WAL"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Corrupt(format!(
                "index {} refused WAL mode (got {mode})",
                paths.index.display()
            )));
        }
        // FULL: a commit is on disk when it returns. "Stored" must mean stored.
        conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")
            .map_err(StoreError::sql("set pragmas"))?;
        let migration = migrate::migrate(&mut conn, &paths.index)?;
        Ok(Store {
            conn,
            paths,
            clock,
            migration,
        })
    }

    /// The schema versions before and after opening.
    pub fn migration(&self) -> Migration {
        self.migration
    }

    /// Where this store keeps its files.
    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    /// The store's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Read-only queries over the write connection.
    pub fn view(&self) -> ReadView<'_> {
        ReadView::new(&self.conn)
    }

    /// Begin a write transaction. `IMMEDIATE` takes the write lock up front, so two writers
    /// (this process and a CLI command) queue on the busy timeout instead of one failing to
    /// upgrade a read lock midway.
    pub(crate) fn begin(&self) -> Result<Transaction<'_>, StoreError> {
        Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)
            .map_err(StoreError::sql("begin a write"))
    }

    /// Ask SQLite to refresh its planner statistics where they are stale (cheap; run it at
    /// times, e.g. after a sweep).
    pub fn optimize(&self) -> Result<(), StoreError> {
        self.conn
            .execute_batch("PRAGMA optimize")
            .map_err(StoreError::sql("optimize"))
    }

    // ---- sites -------------------------------------------------------------------------

    /// Add a site.
    pub fn create_site(
        &mut self,
        name: &str,
        settings: &SiteSettings,
        actor: &str,
    ) -> Result<Site, StoreError> {
        validate_site_name(name)?;
        settings.validate()?;
        let now = self.now();
        let tx = self.begin()?;
        if ReadView::new(&tx).site(name).is_ok() {
            return Err(StoreError::DuplicateSite(name.to_owned()));
        }
        tx.prepare_cached("INSERT INTO sites (name) VALUES (?1)")
            .and_then(|mut s| s.execute([name]))
            .map_err(StoreError::sql("insert site"))?;
        let id = SiteId(tx.last_insert_rowid());
        write_site_settings(&tx, id, settings)?;
        audit::append(
            &tx,
            &Event {
                at_ms: ms(now),
                site: Some(id),
                actor,
                action: "site.create",
                target: &format!("site:{name}"),
                detail: &serde_json::to_string(settings).unwrap_or_default(),
            },
        )?;
        let site = ReadView::new(&tx).site_by_id(id)?;
        tx.commit().map_err(StoreError::sql("commit site"))?;
        Ok(site)
    }

    /// Change some settings of a site, with an audit entry naming each change. Changing
    /// `retention_days` or `legal_hold` recomputes `expires_at` of the site's recordings in
    /// the same transaction; changing the number plan re-normalises its users' numbers
    /// (recordings keep the form they were indexed with). An update that changes nothing
    /// writes nothing.
    pub fn update_site(
        &mut self,
        name: &str,
        update: &SiteUpdate,
        actor: &str,
    ) -> Result<Site, StoreError> {
        let now = self.now();
        let tx = self.begin()?;
        let old = ReadView::new(&tx).site(name)?;
        let new = update.apply_to(&old.settings);
        new.validate()?;
        if new == old.settings {
            return Ok(old);
        }
        write_site_settings(&tx, old.id, &new)?;
        let (a, b) = (&old.settings, &new);
        if a.retention_days != b.retention_days || a.legal_hold != b.legal_hold {
            recompute_expiry(&tx, old.id, b)?;
        }
        if a.country_code != b.country_code || a.national_prefix != b.national_prefix {
            renormalise_user_numbers(&tx, &old, &b.number_plan())?;
        }
        let before = serde_json::to_value(a).unwrap_or_default();
        let after = serde_json::to_value(b).unwrap_or_default();
        let mut changes = serde_json::Map::new();
        if let (Some(before), Some(after)) = (before.as_object(), after.as_object()) {
            for (k, v) in after {
                if before.get(k) != Some(v) {
                    changes.insert(k.clone(), json!({"from": before.get(k), "to": v}));
                }
            }
        }
        audit::append(
            &tx,
            &Event {
                at_ms: ms(now),
                site: Some(old.id),
                actor,
                action: "site.update",
                target: &format!("site:{name}"),
                detail: &serde_json::Value::Object(changes).to_string(),
            },
        )?;
        let site = ReadView::new(&tx).site_by_id(old.id)?;
        tx.commit().map_err(StoreError::sql("commit site update"))?;
        Ok(site)
    }

    // ---- users -------------------------------------------------------------------------

    /// Add a user. Its mode defaults to the site's `default_mode`.
    pub fn add_user(&mut self, new: &NewUser, actor: &str) -> Result<User, StoreError> {
        validate_extension(&new.extension)?;
        let now = self.now();
        let tx = self.begin()?;
        let view = ReadView::new(&tx);
        let site = view.site(&new.site)?;
        if view.user(&new.site, &new.extension).is_ok() {
            return Err(StoreError::DuplicateExtension {
                site: new.site.clone(),
                extension: new.extension.clone(),
            });
        }
        let mode = new.mode.unwrap_or(site.settings.default_mode);
        tx.prepare_cached(
            "INSERT INTO users (site_id, extension, display_name, mode, role, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .and_then(|mut s| {
            s.execute(params![
                site.id.0,
                new.extension,
                new.display_name,
                mode.as_str(),
                new.role.as_str(),
                ms(now)
            ])
        })
        .map_err(StoreError::sql("insert user"))?;
        let id = UserId(tx.last_insert_rowid());
        set_numbers(&tx, &site, id, &new.numbers)?;
        let user = ReadView::new(&tx).user_by_id(id)?;
        audit::append(
            &tx,
            &Event {
                at_ms: ms(now),
                site: Some(site.id),
                actor,
                action: "user.add",
                target: &format!("user:{}/{}", site.name, new.extension),
                detail: &json!({"mode": mode, "role": new.role, "numbers": user.numbers})
                    .to_string(),
            },
        )?;
        tx.commit().map_err(StoreError::sql("commit user"))?;
        Ok(user)
    }

    /// Change a user's mode, role, name or numbers.
    pub fn update_user(
        &mut self,
        site: &str,
        extension: &str,
        update: &UserUpdate,
        actor: &str,
    ) -> Result<User, StoreError> {
        let now = self.now();
        let tx = self.begin()?;
        let view = ReadView::new(&tx);
        let site_row = view.site(site)?;
        let old = view.user(site, extension)?;
        let mode = update.mode.unwrap_or(old.mode);
        let role = update.role.unwrap_or(old.role);
        if old.role == Role::Admin && role != Role::Admin {
            refuse_last_admin(&tx, &site_row, &old)?;
        }
        let display_name = update
            .display_name
            .clone()
            .unwrap_or_else(|| old.display_name.clone());
        tx.prepare_cached("UPDATE users SET mode = ?2, role = ?3, display_name = ?4 WHERE id = ?1")
            .and_then(|mut s| {
                s.execute(params![
                    old.id.0,
                    mode.as_str(),
                    role.as_str(),
                    display_name
                ])
            })
            .map_err(StoreError::sql("update user"))?;
        if let Some(numbers) = &update.numbers {
            tx.prepare_cached("DELETE FROM user_numbers WHERE user_id = ?1")
                .and_then(|mut s| s.execute([old.id.0]))
                .map_err(StoreError::sql("replace user numbers"))?;
            set_numbers(&tx, &site_row, old.id, numbers)?;
        }
        let user = ReadView::new(&tx).user_by_id(old.id)?;
        let action = if update.mode.is_some() && update.role.is_none() && update.numbers.is_none() {
            "user.set_mode"
        } else {
            "user.update"
        };
        audit::append(
            &tx,
            &Event {
                at_ms: ms(now),
                site: Some(site_row.id),
                actor,
                action,
                target: &format!("user:{site}/{extension}"),
                detail: &json!({
                    "mode": {"from": old.mode, "to": user.mode},
                    "role": {"from": old.role, "to": user.role},
                    "numbers": user.numbers,
                })
                .to_string(),
            },
        )?;
        tx.commit().map_err(StoreError::sql("commit user update"))?;
        Ok(user)
    }

    /// Remove a user who has no recordings (a typo, a leaver who was never recorded): their
    /// numbers and tokens go with them. A user with recordings is refused (the recordings are
    /// kept for their retention, and they name their owner), as is a site's last admin.
    pub fn remove_user(
        &mut self,
        site: &str,
        extension: &str,
        actor: &str,
    ) -> Result<(), StoreError> {
        let now = self.now();
        let tx = self.begin()?;
        let view = ReadView::new(&tx);
        let site_row = view.site(site)?;
        let user = view.user(site, extension)?;
        let recordings: i64 = tx
            .prepare_cached("SELECT count(*) FROM recordings WHERE user_id = ?1")
            .and_then(|mut s| s.query_row([user.id.0], |r| r.get(0)))
            .map_err(StoreError::sql("count the user's recordings"))?;
        if recordings > 0 {
            return Err(StoreError::UserHasRecordings {
                site: site.to_owned(),
                extension: extension.to_owned(),
                recordings,
            });
        }
        if user.role == Role::Admin {
            refuse_last_admin(&tx, &site_row, &user)?;
        }
        for sql in [
            "DELETE FROM api_tokens WHERE user_id = ?1",
            "DELETE FROM sessions WHERE user_id = ?1",
            "DELETE FROM usage WHERE user_id = ?1",
            "DELETE FROM users WHERE id = ?1",
        ] {
            tx.prepare_cached(sql)
                .and_then(|mut s| s.execute([user.id.0]))
                .map_err(StoreError::sql("remove user"))?;
        }
        audit::append(
            &tx,
            &Event {
                at_ms: ms(now),
                site: Some(site_row.id),
                actor,
                action: "user.remove",
                target: &format!("user:{site}/{extension}"),
                detail: &json!({"role": user.role, "mode": user.mode}).to_string(),
            },
        )?;
        tx.commit()
            .map_err(StoreError::sql("commit user removal"))?;
        Ok(())
    }

    /// Set a user's recording mode.
    pub fn set_mode(
        &mut self,
        site: &str,
        extension: &str,
        mode: RecordingMode,
        actor: &str,
    ) -> Result<User, StoreError> {
        let update = UserUpdate {
            mode: Some(mode),
            ..UserUpdate::default()
        };
        self.update_user(site, extension, &update, actor)
    }

    // ---- recordings: the daemon's side -------------------------------------------------

    /// Create the row of a recording the daemon is starting (state `recording`). Calling it
    /// again with the same id and call returns the existing row.
    pub fn create_recording(
        &mut self,
        new: &NewRecording,
        actor: &str,
    ) -> Result<Recording, StoreError> {
        validate_format(&new.format)?;
        if !new.spool_path.is_absolute() {
            return Err(StoreError::invalid(
                "spool path",
                new.spool_path.display().to_string(),
                "must be absolute",
            ));
        }
        let spool = new.spool_path.to_str().ok_or_else(|| {
            StoreError::invalid(
                "spool path",
                new.spool_path.display().to_string(),
                "must be valid UTF-8",
            )
        })?;
        let now = self.now();
        let tx = self.begin()?;
        let view = ReadView::new(&tx);
        if let Ok(existing) = view.recording(&new.id, &Access::system(actor)) {
            if existing.call_uuid == new.call_uuid && existing.user_id == new.user {
                return Ok(existing);
            }
            return Err(StoreError::invalid(
                "recording id",
                new.id.as_str(),
                "already used by another call",
            ));
        }
        let user = view.user_by_id(new.user)?;
        let site = view.site_by_id(user.site_id)?;
        let plan = site.settings.number_plan();
        let mut place =
            naming::store_place(&site.name, site.settings.timezone, &user.extension, new);
        let taken: bool = tx
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM recordings WHERE store_path = ?1)")
            .and_then(|mut s| s.query_row([&place.store_path], |r| r.get(0)))
            .map_err(StoreError::sql("check store path"))?;
        if taken {
            // Two recordings of one user, same second, same parties and the same 6-hex
            // suffix: use the whole id rather than ever sharing a file.
            let full = new.id.as_str().replace('-', "");
            place.file_name = place.file_name.replace(new.id.short(), &full);
            place.store_path = place.store_path.replace(new.id.short(), &full);
        }
        tx.prepare_cached(
            "INSERT INTO recordings (id, site_id, user_id, call_uuid, direction, from_raw,
                 from_norm, to_raw, to_norm, started_at, format, spool_path, store_path,
                 file_name, state)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, 'recording')",
        )
        .and_then(|mut s| {
            s.execute(params![
                new.id.as_str(),
                site.id.0,
                user.id.0,
                new.call_uuid,
                new.direction.as_str(),
                new.from,
                numbers::normalise(&new.from, &plan),
                new.to,
                numbers::normalise(&new.to, &plan),
                ms(new.started_at),
                new.format,
                spool,
                place.store_path,
                place.file_name,
            ])
        })
        .map_err(StoreError::sql("insert recording"))?;
        audit::append(
            &tx,
            &Event {
                at_ms: ms(now),
                site: Some(site.id),
                actor,
                action: "recording.create",
                target: &format!("recording:{}", new.id),
                detail: &json!({"call_uuid": new.call_uuid, "user": user.extension,
                    "direction": new.direction, "from": new.from, "to": new.to})
                .to_string(),
            },
        )?;
        let rec = ReadView::new(&tx).recording(&new.id, &Access::system(actor))?;
        tx.commit().map_err(StoreError::sql("commit recording"))?;
        Ok(rec)
    }

    /// Record a start, pause, resume or stop of a recording that is still `recording`.
    pub fn add_segment(
        &mut self,
        id: &RecordingId,
        kind: SegmentKind,
        at: DateTime<Utc>,
        source: SegmentSource,
        actor: &str,
    ) -> Result<(), StoreError> {
        let now = self.now();
        let tx = self.begin()?;
        let (seq, site, state) = row_key(&tx, id)?;
        if state != RecordingState::Recording {
            return Err(StoreError::WrongState {
                id: id.clone(),
                state,
                op: "add a segment",
            });
        }
        tx.prepare_cached(
            "INSERT INTO segments (recording_seq, kind, at, source, actor) VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .and_then(|mut s| s.execute(params![seq, kind.as_str(), ms(at), source.as_str(), actor]))
        .map_err(StoreError::sql("insert segment"))?;
        audit::append(
            &tx,
            &Event {
                at_ms: ms(now),
                site: Some(site),
                actor,
                action: &format!("recording.{}", kind.as_str()),
                target: &format!("recording:{id}"),
                detail: &json!({"at": at, "source": source}).to_string(),
            },
        )?;
        tx.commit().map_err(StoreError::sql("commit segment"))
    }

    /// Mark a recording `discarded` (the switch deleted a too-short file), with the reason.
    pub fn discard(
        &mut self,
        id: &RecordingId,
        reason: &str,
        ended_at: DateTime<Utc>,
        actor: &str,
    ) -> Result<Recording, StoreError> {
        self.end_without_file(id, RecordingState::Discarded, reason, Some(ended_at), actor)
    }

    /// Mark a recording `failed` without a file (the switch never wrote one), with the reason.
    pub fn fail(
        &mut self,
        id: &RecordingId,
        reason: &str,
        actor: &str,
    ) -> Result<Recording, StoreError> {
        self.end_without_file(id, RecordingState::Failed, reason, None, actor)
    }

    fn end_without_file(
        &mut self,
        id: &RecordingId,
        to: RecordingState,
        reason: &str,
        ended_at: Option<DateTime<Utc>>,
        actor: &str,
    ) -> Result<Recording, StoreError> {
        let now = self.now();
        let tx = self.begin()?;
        let (seq, site, state) = row_key(&tx, id)?;
        if state == to {
            return ReadView::new(&tx).recording(id, &Access::system(actor));
        }
        if state != RecordingState::Recording {
            return Err(StoreError::WrongState {
                id: id.clone(),
                state,
                op: "end it",
            });
        }
        // A failed row is swept at the end of the site's retention like a stored one (its
        // metadata names the call), so it gets its expiry as ingest would give it.
        let expires = if to == RecordingState::Failed {
            let settings = ReadView::new(&tx).site_by_id(site)?.settings;
            let started: i64 = tx
                .prepare_cached("SELECT started_at FROM recordings WHERE seq = ?1")
                .and_then(|mut s| s.query_row([seq], |r| r.get(0)))
                .map_err(StoreError::sql("read recording start"))?;
            Some(ms(expires_at(view::from_ms(started)?, &settings)))
        } else {
            None
        };
        tx.prepare_cached(
            "UPDATE recordings SET state = ?2, state_reason = ?3, ended_at = COALESCE(?4, ended_at, ?5),
                 expires_at = COALESCE(?6, expires_at)
             WHERE seq = ?1",
        )
        .and_then(|mut s| {
            s.execute(params![
                seq,
                to.as_str(),
                reason,
                ended_at.map(ms),
                ms(now),
                expires
            ])
        })
        .map_err(StoreError::sql("end recording"))?;
        audit::append(
            &tx,
            &Event {
                at_ms: ms(now),
                site: Some(site),
                actor,
                action: &format!("recording.{}", to.as_str()),
                target: &format!("recording:{id}"),
                detail: &json!({"reason": reason}).to_string(),
            },
        )?;
        let rec = ReadView::new(&tx).recording(id, &Access::system(actor))?;
        tx.commit()
            .map_err(StoreError::sql("commit recording end"))?;
        Ok(rec)
    }

    // ---- recordings: people's side -----------------------------------------------------

    /// A recording with its segments and notes, for a person: writes a `recording.read`
    /// audit entry.
    pub fn read_recording(
        &mut self,
        id: &RecordingId,
        access: &Access,
    ) -> Result<RecordingDetail, StoreError> {
        let now = self.now();
        let tx = self.begin()?;
        let detail = recording_detail(&tx, id, access)?;
        let target = format!("recording:{id}");
        audit::append(&tx, &read_event(now, &detail, &target, access))?;
        tx.commit().map_err(StoreError::sql("commit read"))?;
        Ok(detail)
    }

    /// Many recordings with their segments and notes, for a person (an archive client
    /// reading a page of the change feed), in the order asked: one `recording.read` audit
    /// entry per recording returned, as [`Store::read_recording`] writes, all in one
    /// transaction. The ids `access` may not see, or that do not exist, come back apart, in
    /// the order asked; asking for nothing, or for more than [`MAX_BATCH_READ`], is refused.
    pub fn read_recordings(
        &mut self,
        ids: &[RecordingId],
        access: &Access,
    ) -> Result<(Vec<RecordingDetail>, Vec<RecordingId>), StoreError> {
        if ids.is_empty() || ids.len() > MAX_BATCH_READ {
            return Err(StoreError::invalid(
                "ids",
                ids.len().to_string(),
                format!("must name 1 to {MAX_BATCH_READ} recordings"),
            ));
        }
        let now = self.now();
        let tx = self.begin()?;
        let mut found = Vec::with_capacity(ids.len());
        let mut missing = Vec::new();
        for id in ids {
            match recording_detail(&tx, id, access) {
                Ok(d) => found.push(d),
                Err(e) if e.kind() == ErrorKind::NotFound => missing.push(id.clone()),
                Err(e) => return Err(e),
            }
        }
        let targets: Vec<String> = found
            .iter()
            .map(|d| format!("recording:{}", d.recording.id))
            .collect();
        let events: Vec<Event<'_>> = found
            .iter()
            .zip(&targets)
            .map(|(d, target)| read_event(now, d, target, access))
            .collect();
        audit::append_many(&tx, &events)?;
        drop(events);
        tx.commit().map_err(StoreError::sql("commit read"))?;
        Ok((found, missing))
    }

    /// The stored file of a recording, to play or download: writes an audit entry for
    /// `purpose`. Only `stored` and `failed` recordings have a file.
    pub fn open_file(
        &mut self,
        id: &RecordingId,
        access: &Access,
        purpose: FilePurpose,
    ) -> Result<StoredFile, StoreError> {
        self.open_file_judged(id, access, purpose, |_| ((), json!({})))
            .map(|(file, ())| file)
    }

    /// [`Store::open_file`], where `judge` decides what is done with the file (which bytes
    /// a player asked for, and the reply it gets) before the audit entry is written, and
    /// gives that entry's detail: an audit log that says a seek was a seek and a refused
    /// range was refused.
    pub fn open_file_judged<T>(
        &mut self,
        id: &RecordingId,
        access: &Access,
        purpose: FilePurpose,
        judge: impl FnOnce(&StoredFile) -> (T, serde_json::Value),
    ) -> Result<(StoredFile, T), StoreError> {
        let now = self.now();
        let tx = self.begin()?;
        let rec = ReadView::new(&tx).recording(id, access)?;
        let (store_path, sha256, size): (String, Option<String>, Option<i64>) = tx
            .prepare_cached("SELECT store_path, sha256, size_bytes FROM recordings WHERE id = ?1")
            .and_then(|mut s| s.query_row([id.as_str()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))))
            .map_err(StoreError::sql("read recording file"))?;
        let (Some(sha256), Some(size)) = (sha256, size) else {
            return Err(StoreError::WrongState {
                id: id.clone(),
                state: rec.state,
                op: "open its file",
            });
        };
        if !matches!(rec.state, RecordingState::Stored | RecordingState::Failed) {
            return Err(StoreError::WrongState {
                id: id.clone(),
                state: rec.state,
                op: "open its file",
            });
        }
        let file = StoredFile {
            id: id.clone(),
            path: self.paths.store_file(&store_path),
            sha256,
            size_bytes: u64::try_from(size).unwrap_or(0),
            format: rec.format,
            file_name: rec.file_name,
        };
        let (judged, detail) = judge(&file);
        audit::append(
            &tx,
            &Event {
                at_ms: ms(now),
                site: Some(rec.site_id),
                actor: &access.actor,
                action: purpose.action(),
                target: &format!("recording:{id}"),
                detail: &detail.to_string(),
            },
        )?;
        tx.commit().map_err(StoreError::sql("commit file read"))?;
        Ok((file, judged))
    }

    /// Add a note to a recording the caller may see.
    pub fn add_note(
        &mut self,
        id: &RecordingId,
        access: &Access,
        text: &str,
    ) -> Result<Note, StoreError> {
        let text = text.trim();
        if text.chars().any(|c| c.is_control() && !c.is_whitespace()) {
            return Err(StoreError::invalid(
                "note",
                text.chars()
                    .take(40)
                    .collect::<String>()
                    .escape_default()
                    .to_string(),
                "must not contain control characters",
            ));
        }
        if text.is_empty() || text.chars().count() > MAX_NOTE_CHARS {
            return Err(StoreError::invalid(
                "note",
                text.chars().take(40).collect::<String>(),
                format!("must be 1 to {MAX_NOTE_CHARS} characters"),
            ));
        }
        let now = self.now();
        let tx = self.begin()?;
        let rec = ReadView::new(&tx).recording(id, access)?;
        let seq = row_key(&tx, id)?.0;
        tx.prepare_cached(
            "INSERT INTO notes (recording_seq, author, at, text) VALUES (?1, ?2, ?3, ?4)",
        )
        .and_then(|mut s| s.execute(params![seq, access.actor, ms(now), text]))
        .map_err(StoreError::sql("insert note"))?;
        let note_id = tx.last_insert_rowid();
        tx.prepare_cached("UPDATE recordings SET note_count = note_count + 1 WHERE seq = ?1")
            .and_then(|mut s| s.execute([seq]))
            .map_err(StoreError::sql("count note"))?;
        audit::append(
            &tx,
            &Event {
                at_ms: ms(now),
                site: Some(rec.site_id),
                actor: &access.actor,
                action: "recording.note",
                target: &format!("recording:{id}"),
                detail: &json!({"note_id": note_id, "text": text}).to_string(),
            },
        )?;
        tx.commit().map_err(StoreError::sql("commit note"))?;
        Ok(Note {
            id: note_id,
            author: access.actor.clone(),
            at: view::from_ms(ms(now))?,
            text: text.to_owned(),
        })
    }

    /// Put a recording on litigation hold (kept past retention and quota) or release it.
    /// Admin only.
    pub fn set_hold(
        &mut self,
        id: &RecordingId,
        access: &Access,
        hold: bool,
    ) -> Result<Recording, StoreError> {
        access.require_admin("set a hold")?;
        let now = self.now();
        let tx = self.begin()?;
        let rec = ReadView::new(&tx).recording(id, access)?;
        if rec.state == RecordingState::Deleted {
            return Err(StoreError::WrongState {
                id: id.clone(),
                state: rec.state,
                op: "set a hold",
            });
        }
        if rec.hold != hold {
            tx.prepare_cached("UPDATE recordings SET hold = ?2 WHERE id = ?1")
                .and_then(|mut s| s.execute(params![id.as_str(), hold]))
                .map_err(StoreError::sql("set hold"))?;
            audit::append(
                &tx,
                &Event {
                    at_ms: ms(now),
                    site: Some(rec.site_id),
                    actor: &access.actor,
                    action: if hold {
                        "recording.hold"
                    } else {
                        "recording.release"
                    },
                    target: &format!("recording:{id}"),
                    detail: "{}",
                },
            )?;
        }
        let rec = ReadView::new(&tx).recording(id, access)?;
        tx.commit().map_err(StoreError::sql("commit hold"))?;
        Ok(rec)
    }

    /// Delete a recording now (admin). Refused with [`StoreError::OnHold`] while on hold, and
    /// with [`StoreError::UnderLegalHold`] while its site's legal hold keeps it.
    /// Leaves a tombstone row and an audit entry; the file is removed after the commit.
    pub fn delete_recording(
        &mut self,
        id: &RecordingId,
        access: &Access,
        reason: &str,
    ) -> Result<Recording, StoreError> {
        access.require_admin("delete a recording")?;
        let now = self.now();
        let tx = self.begin()?;
        let rec = ReadView::new(&tx).recording(id, access)?;
        if rec.hold {
            return Err(StoreError::OnHold(id.clone()));
        }
        if !matches!(rec.state, RecordingState::Stored | RecordingState::Failed) {
            return Err(StoreError::WrongState {
                id: id.clone(),
                state: rec.state,
                op: "delete it",
            });
        }
        // The legal hold keeps every recording of its site seven years (SPEC §1): no one
        // deletes one before then, as no sweep or quota does.
        let settings = ReadView::new(&tx).site_by_id(rec.site_id)?.settings;
        let until = expires_at(rec.started_at, &settings);
        if settings.legal_hold && until > now {
            return Err(StoreError::UnderLegalHold {
                id: id.clone(),
                site: rec.site.clone(),
                until,
            });
        }
        let why = format!("deleted by {}: {}", access.actor, reason.trim());
        let removals = crate::retention::tombstone(
            &tx,
            &self.paths,
            &[crate::retention::Victim::of(&tx, id)?],
            now,
            &access.actor,
            "recording.delete",
            &why,
        )?;
        let rec = ReadView::new(&tx).recording(id, access)?;
        tx.commit().map_err(StoreError::sql("commit deletion"))?;
        crate::retention::remove_files(self, &removals)?;
        Ok(rec)
    }

    // ---- tokens ------------------------------------------------------------------------

    /// Create an API token for a user the actor may act for. The secret is returned once and
    /// only its SHA-256 is kept.
    pub fn create_token(
        &mut self,
        user: UserId,
        label: &str,
        access: &Access,
    ) -> Result<NewToken, StoreError> {
        self.create_token_until(user, label, access, None)
    }

    /// [`Store::create_token`] for a token that stops working at `expires_at` (never, with
    /// `None`).
    pub fn create_token_until(
        &mut self,
        user: UserId,
        label: &str,
        access: &Access,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<NewToken, StoreError> {
        let now = self.now();
        let tx = self.begin()?;
        let u = ReadView::new(&tx).user_by_id(user)?;
        if !access.may_see(u.site_id, u.id) {
            return Err(StoreError::UnknownUserId(user));
        }
        let secret = new_secret();
        tx.prepare_cached(
            "INSERT INTO api_tokens (user_id, label, secret_sha256, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .and_then(|mut s| {
            s.execute(params![
                user.0,
                label,
                view::token_hash(&secret),
                ms(now),
                expires_at.map(ms)
            ])
        })
        .map_err(StoreError::sql("insert token"))?;
        let id = TokenId(tx.last_insert_rowid());
        audit::append(
            &tx,
            &Event {
                at_ms: ms(now),
                site: Some(u.site_id),
                actor: &access.actor,
                action: "token.create",
                target: &format!("token:{id}"),
                detail: &json!({"user": format!("{}/{}", u.site, u.extension), "label": label,
                    "expires_at": expires_at.map(|t| t.to_rfc3339())})
                .to_string(),
            },
        )?;
        tx.commit().map_err(StoreError::sql("commit token"))?;
        Ok(NewToken { id, secret })
    }

    /// Notes that a token was used now (not audited: the audit log has each request's own
    /// entry). The API calls it at most once a minute per token.
    pub fn touch_token(&mut self, id: TokenId) -> Result<(), StoreError> {
        let now = ms(self.now());
        self.conn
            .prepare_cached("UPDATE api_tokens SET last_used_at = ?2 WHERE id = ?1")
            .and_then(|mut s| s.execute(params![id.0, now]))
            .map_err(StoreError::sql("note a token's use"))?;
        Ok(())
    }

    /// Revoke a token. Revoking a revoked token changes nothing.
    pub fn revoke_token(&mut self, id: TokenId, access: &Access) -> Result<(), StoreError> {
        let now = self.now();
        let tx = self.begin()?;
        let row: Option<(i64, i64, Option<i64>)> = tx
            .prepare_cached(
                "SELECT t.user_id, u.site_id, t.revoked_at FROM api_tokens t
                 JOIN users u ON u.id = t.user_id WHERE t.id = ?1",
            )
            .and_then(|mut s| {
                s.query_row([id.0], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .optional()
            })
            .map_err(StoreError::sql("read token"))?;
        let Some((user, site, revoked)) = row else {
            return Err(StoreError::UnknownToken(id));
        };
        if !access.may_see(SiteId(site), UserId(user)) {
            return Err(StoreError::UnknownToken(id));
        }
        if revoked.is_some() {
            return Ok(());
        }
        tx.prepare_cached("UPDATE api_tokens SET revoked_at = ?2 WHERE id = ?1")
            .and_then(|mut s| s.execute(params![id.0, ms(now)]))
            .map_err(StoreError::sql("revoke token"))?;
        audit::append(
            &tx,
            &Event {
                at_ms: ms(now),
                site: Some(SiteId(site)),
                actor: &access.actor,
                action: "token.revoke",
                target: &format!("token:{id}"),
                detail: "{}",
            },
        )?;
        tx.commit()
            .map_err(StoreError::sql("commit token revocation"))
    }

    /// Append an entry to the audit log on its own (e.g. `verify` runs, config applied).
    pub fn record_event(
        &mut self,
        site: Option<SiteId>,
        actor: &str,
        action: &str,
        target: &str,
        detail: &serde_json::Value,
    ) -> Result<i64, StoreError> {
        let now = self.now();
        let tx = self.begin()?;
        let seq = audit::append(
            &tx,
            &Event {
                at_ms: ms(now),
                site,
                actor,
                action,
                target,
                detail: &detail.to_string(),
            },
        )?;
        tx.commit().map_err(StoreError::sql("commit audit entry"))?;
        Ok(seq)
    }
}

/// The internal key, site and state of a recording.
/// The most recordings [`Store::read_recordings`] reads at once.
pub const MAX_BATCH_READ: usize = 500;

/// A recording with its segments and notes, if `access` may see it.
fn recording_detail(
    conn: &Connection,
    id: &RecordingId,
    access: &Access,
) -> Result<RecordingDetail, StoreError> {
    let recording = ReadView::new(conn).recording(id, access)?;
    let seq = row_key(conn, id)?.0;
    let segments = conn
        .prepare_cached(
            "SELECT kind, at, source, actor FROM segments WHERE recording_seq = ?1 ORDER BY at, id",
        )
        .and_then(|mut s| {
            s.query_map([seq], |r| {
                Ok(Segment {
                    kind: view::parse_col(r, 0)?,
                    at: view::time_col(r, 1)?,
                    source: view::parse_col(r, 2)?,
                    actor: r.get(3)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(StoreError::sql("read segments"))?;
    let notes = conn
        .prepare_cached(
            "SELECT id, author, at, text FROM notes WHERE recording_seq = ?1 ORDER BY at, id",
        )
        .and_then(|mut s| {
            s.query_map([seq], |r| {
                Ok(Note {
                    id: r.get(0)?,
                    author: r.get(1)?,
                    at: view::time_col(r, 2)?,
                    text: r.get(3)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(StoreError::sql("read notes"))?;
    Ok(RecordingDetail {
        recording,
        segments,
        notes,
    })
}

/// The `recording.read` audit entry of one read of `detail` (`target`: `recording:<id>`).
fn read_event<'a>(
    now: DateTime<Utc>,
    detail: &RecordingDetail,
    target: &'a str,
    access: &'a Access,
) -> Event<'a> {
    Event {
        at_ms: ms(now),
        site: Some(detail.recording.site_id),
        actor: &access.actor,
        action: "recording.read",
        target,
        detail: "{}",
    }
}

pub(crate) fn row_key(
    conn: &Connection,
    id: &RecordingId,
) -> Result<(i64, SiteId, RecordingState), StoreError> {
    conn.prepare_cached("SELECT seq, site_id, state FROM recordings WHERE id = ?1")
        .and_then(|mut s| {
            s.query_row([id.as_str()], |r| {
                Ok((r.get(0)?, SiteId(r.get(1)?), view::parse_col(r, 2)?))
            })
            .optional()
        })
        .map_err(StoreError::sql("read recording"))?
        .ok_or_else(|| StoreError::UnknownRecording(id.clone()))
}

/// Refuses a change that would leave `site` without an admin: `admin` is its last one.
fn refuse_last_admin(tx: &Connection, site: &Site, admin: &User) -> Result<(), StoreError> {
    let others: i64 = tx
        .prepare_cached(
            "SELECT count(*) FROM users WHERE site_id = ?1 AND role = 'admin' AND id != ?2",
        )
        .and_then(|mut s| s.query_row(params![site.id.0, admin.id.0], |r| r.get(0)))
        .map_err(StoreError::sql("count admins"))?;
    if others == 0 {
        return Err(StoreError::LastAdmin {
            site: site.name.clone(),
            extension: admin.extension.clone(),
        });
    }
    Ok(())
}

fn write_site_settings(tx: &Connection, id: SiteId, s: &SiteSettings) -> Result<(), StoreError> {
    tx.prepare_cached(
        "UPDATE sites SET enabled = ?2, default_mode = ?3, retention_days = ?4, legal_hold = ?5,
             pause_behavior = ?6, min_seconds = ?7, timezone = ?8, country_code = ?9,
             national_prefix = ?10, quota_bytes = ?11, quota_policy = ?12,
             max_pause_seconds = ?13
         WHERE id = ?1",
    )
    .and_then(|mut st| {
        st.execute(params![
            id.0,
            s.enabled,
            s.default_mode.as_str(),
            s.retention_days,
            s.legal_hold,
            s.pause_behavior.as_str(),
            s.min_seconds,
            s.timezone.name(),
            s.country_code,
            s.national_prefix,
            i64::try_from(s.quota_bytes).unwrap_or(i64::MAX),
            s.quota_policy.as_str(),
            s.max_pause_seconds,
        ])
    })
    .map_err(StoreError::sql("write site settings"))?;
    Ok(())
}

/// Recompute `expires_at` of every recording of a site that still has (or may get) a file.
fn recompute_expiry(
    tx: &Connection,
    site: SiteId,
    settings: &SiteSettings,
) -> Result<(), StoreError> {
    if !settings.legal_hold {
        // Plain day arithmetic, the same as `expires_at` (saturating at the calendar's end as
        // it does): one statement, however many rows.
        let day_ms = 24 * 3600 * 1000i64;
        tx.prepare_cached(
            "UPDATE recordings SET expires_at = MIN(started_at + ?2, ?3)
             WHERE site_id = ?1 AND state IN ('recording', 'stored', 'failed')",
        )
        .and_then(|mut s| {
            s.execute(params![
                site.0,
                i64::from(settings.retention_days) * day_ms,
                ms(DateTime::<Utc>::MAX_UTC)
            ])
        })
        .map_err(StoreError::sql("recompute expiry"))?;
        return Ok(());
    }
    // Calendar years: computed here, row by row, so every path agrees to the day.
    let rows: Vec<(i64, i64)> = tx
        .prepare_cached(
            "SELECT seq, started_at FROM recordings
             WHERE site_id = ?1 AND state IN ('recording', 'stored', 'failed')",
        )
        .and_then(|mut s| {
            s.query_map([site.0], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect()
        })
        .map_err(StoreError::sql("list recordings for expiry"))?;
    let mut update = tx
        .prepare_cached("UPDATE recordings SET expires_at = ?2 WHERE seq = ?1")
        .map_err(StoreError::sql("recompute expiry"))?;
    for (seq, started) in rows {
        let expires = expires_at(view::from_ms(started)?, settings);
        update
            .execute(params![seq, ms(expires)])
            .map_err(StoreError::sql("recompute expiry"))?;
    }
    Ok(())
}

fn renormalise_user_numbers(
    tx: &Connection,
    site_row: &Site,
    plan: &NumberPlan,
) -> Result<(), StoreError> {
    let site = site_row.id;
    let rows: Vec<(i64, String, String)> = tx
        .prepare_cached("SELECT user_id, raw, normalised FROM user_numbers WHERE site_id = ?1")
        .and_then(|mut s| {
            s.query_map([site.0], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect()
        })
        .map_err(StoreError::sql("list user numbers"))?;
    // Two users whose numbers the new plan makes one: refuse the plan (the caller's
    // transaction rolls back). Keeping either would silently take the number from the other,
    // whose calls on it would stop being theirs, and stop being recorded.
    let mut owners: HashMap<String, i64> = HashMap::new();
    for (user, raw, _) in &rows {
        let normalised = numbers::normalise(raw, plan);
        match owners.get(&normalised) {
            Some(&first) if first != *user => {
                return Err(StoreError::DuplicateNumber {
                    site: site_row.name.clone(),
                    owner: ReadView::new(tx).user_by_id(UserId(first))?.extension,
                    number: normalised,
                });
            }
            _ => {
                owners.insert(normalised, *user);
            }
        }
    }
    tx.prepare_cached("DELETE FROM user_numbers WHERE site_id = ?1")
        .and_then(|mut s| s.execute([site.0]))
        .map_err(StoreError::sql("renormalise user numbers"))?;
    let mut insert = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO user_numbers (user_id, site_id, raw, normalised) VALUES (?1, ?2, ?3, ?4)",
        )
        .map_err(StoreError::sql("renormalise user numbers"))?;
    for (user, raw, _) in rows {
        insert
            .execute(params![user, site.0, raw, numbers::normalise(&raw, plan)])
            .map_err(StoreError::sql("renormalise user numbers"))?;
    }
    Ok(())
}

/// Insert a user's numbers, normalised with the site's plan, refusing ones that are not
/// numbers or that belong to someone else.
fn set_numbers(
    tx: &Connection,
    site: &Site,
    user: UserId,
    raw: &[String],
) -> Result<(), StoreError> {
    let plan = site.settings.number_plan();
    let mut seen = Vec::new();
    for raw in raw {
        let normalised = numbers::normalise(raw, &plan);
        if !normalised.bytes().any(|b| b.is_ascii_digit())
            || !normalised.bytes().all(|b| b.is_ascii_digit() || b == b'+')
        {
            return Err(StoreError::invalid("number", raw, "not a phone number"));
        }
        if seen.contains(&normalised) {
            continue;
        }
        let owner: Option<String> = tx
            .prepare_cached(
                "SELECT u.extension FROM user_numbers n JOIN users u ON u.id = n.user_id
                 WHERE n.site_id = ?1 AND n.normalised = ?2 AND n.user_id <> ?3",
            )
            .and_then(|mut s| {
                s.query_row(params![site.id.0, normalised, user.0], |r| r.get(0))
                    .optional()
            })
            .map_err(StoreError::sql("check number"))?;
        if let Some(owner) = owner {
            return Err(StoreError::DuplicateNumber {
                site: site.name.clone(),
                number: normalised,
                owner,
            });
        }
        tx.prepare_cached(
            "INSERT INTO user_numbers (user_id, site_id, raw, normalised) VALUES (?1, ?2, ?3, ?4)",
        )
        .and_then(|mut s| s.execute(params![user.0, site.id.0, raw.trim(), normalised]))
        .map_err(StoreError::sql("insert number"))?;
        seen.push(normalised);
    }
    Ok(())
}

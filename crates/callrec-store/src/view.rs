//! Reads of the index that change nothing: directory, recordings, usage, audit, tokens.
//!
//! A [`ReadView`] borrows a connection: the store's own (`Store::view`), a pooled read-only
//! connection of the async wrapper (`StoreHandle::read`), or a write transaction inside the
//! store. Reads of a recording that a person makes go through the audited `Store` methods
//! instead (`read_recording`, `open_file`); the unaudited ones here serve the daemon and the
//! store's own checks.

use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use rusqlite::types::Type;
use rusqlite::{Connection, OptionalExtension, Row, params};
use sha2::{Digest, Sha256};

use crate::error::StoreError;
use crate::records::{
    Access, AuditEntry, AuditPage, Caller, Directory, InProgress, Party, Recording, Scope, Site,
    SiteSettings, TokenInfo, User, UserNumber, UserUsage,
};
use callrec_model::{RecordingId, RecordingState};
use callrec_model::{SiteId, TokenId, UserId};

/// Read-only queries over one connection.
#[derive(Clone, Copy)]
pub struct ReadView<'c> {
    pub(crate) conn: &'c Connection,
}

impl std::fmt::Debug for ReadView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReadView")
    }
}

/// Milliseconds since the epoch: how times are kept in the index.
pub(crate) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// A time from the index.
pub(crate) fn from_ms(v: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(v)
        .ok_or_else(|| StoreError::Corrupt(format!("time {v} out of range")))
}

fn conversion_error(
    idx: usize,
    e: impl std::error::Error + Send + Sync + 'static,
) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, Box::new(e))
}

/// A column holding one of the model's spellings.
pub(crate) fn parse_col<T>(row: &Row<'_>, idx: usize) -> rusqlite::Result<T>
where
    T: FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    let s: String = row.get(idx)?;
    s.parse::<T>().map_err(|e| conversion_error(idx, e))
}

/// A column holding a time.
pub(crate) fn time_col(row: &Row<'_>, idx: usize) -> rusqlite::Result<DateTime<Utc>> {
    let v: i64 = row.get(idx)?;
    from_ms(v).map_err(|e| conversion_error(idx, e))
}

/// A column holding an optional time.
pub(crate) fn opt_time_col(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<DateTime<Utc>>> {
    let v: Option<i64> = row.get(idx)?;
    v.map(|v| from_ms(v).map_err(|e| conversion_error(idx, e)))
        .transpose()
}

fn u64_col(row: &Row<'_>, idx: usize) -> rusqlite::Result<u64> {
    let v: i64 = row.get(idx)?;
    u64::try_from(v).map_err(|e| conversion_error(idx, e))
}

fn opt_u64_col(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<u64>> {
    let v: Option<i64> = row.get(idx)?;
    v.map(|v| u64::try_from(v).map_err(|e| conversion_error(idx, e)))
        .transpose()
}

/// The columns [`recording_from_row`] reads, from `recordings r`, `users u`, `sites s`.
pub(crate) const RECORDING_COLUMNS: &str = "r.id, s.name, r.site_id, r.user_id, u.extension, \
     r.call_uuid, r.direction, r.from_raw, r.from_norm, r.to_raw, r.to_norm, r.started_at, \
     r.ended_at, r.duration_ms, r.paused_ms, r.size_bytes, r.sha256, r.format, r.file_name, \
     r.state, r.state_reason, r.expires_at, r.hold, r.note_count, r.deleted_at";

/// The joins that go with [`RECORDING_COLUMNS`].
///
/// `CROSS JOIN` is SQLite's way of fixing the join order: the recordings are always the outer
/// loop, so a search reads them in its index's order and stops after one page. With a plain
/// `JOIN` the planner may put `sites` (one row, but scanned, not looked up) outside, and then
/// sorts every match before it returns the first 50: seconds on a million rows for a filter
/// that matches most of them (`hold=false`, `direction=outbound`), depending on the
/// statistics `ANALYZE` left.
pub(crate) const RECORDING_FROM: &str = "recordings r CROSS JOIN users u ON u.id = r.user_id \
     CROSS JOIN sites s ON s.id = r.site_id";

pub(crate) fn recording_from_row(row: &Row<'_>) -> rusqlite::Result<Recording> {
    Ok(Recording {
        id: parse_col(row, 0)?,
        site: row.get(1)?,
        site_id: SiteId(row.get(2)?),
        user_id: UserId(row.get(3)?),
        user: row.get(4)?,
        call_uuid: row.get(5)?,
        direction: parse_col(row, 6)?,
        from: Party {
            raw: row.get(7)?,
            normalised: row.get(8)?,
        },
        to: Party {
            raw: row.get(9)?,
            normalised: row.get(10)?,
        },
        started_at: time_col(row, 11)?,
        ended_at: opt_time_col(row, 12)?,
        duration_ms: opt_u64_col(row, 13)?,
        paused_ms: u64_col(row, 14)?,
        size_bytes: opt_u64_col(row, 15)?,
        sha256: row.get(16)?,
        format: row.get(17)?,
        file_name: row.get(18)?,
        state: parse_col(row, 19)?,
        state_reason: row.get(20)?,
        expires_at: opt_time_col(row, 21)?,
        hold: row.get(22)?,
        note_count: row.get(23)?,
        deleted_at: opt_time_col(row, 24)?,
    })
}

const SITE_COLUMNS: &str = "id, name, enabled, default_mode, retention_days, legal_hold, \
     pause_behavior, min_seconds, timezone, country_code, national_prefix, quota_bytes, quota_policy, \
     max_pause_seconds";

fn site_from_row(row: &Row<'_>) -> rusqlite::Result<Site> {
    Ok(Site {
        id: SiteId(row.get(0)?),
        name: row.get(1)?,
        settings: SiteSettings {
            enabled: row.get(2)?,
            default_mode: parse_col(row, 3)?,
            retention_days: row.get(4)?,
            legal_hold: row.get(5)?,
            pause_behavior: parse_col(row, 6)?,
            min_seconds: row.get(7)?,
            timezone: parse_col(row, 8)?,
            country_code: row.get(9)?,
            national_prefix: row.get(10)?,
            quota_bytes: u64_col(row, 11)?,
            quota_policy: parse_col(row, 12)?,
            max_pause_seconds: row.get(13)?,
        },
    })
}

const USER_COLUMNS: &str = "u.id, u.site_id, s.name, u.extension, u.display_name, u.mode, \
     u.role, u.created_at";

fn user_from_row(row: &Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: UserId(row.get(0)?),
        site_id: SiteId(row.get(1)?),
        site: row.get(2)?,
        extension: row.get(3)?,
        display_name: row.get(4)?,
        mode: parse_col(row, 5)?,
        role: parse_col(row, 6)?,
        numbers: Vec::new(),
        created_at: time_col(row, 7)?,
    })
}

/// The SHA-256 of a token secret, as kept in the index.
pub(crate) fn token_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

impl<'c> ReadView<'c> {
    /// A view over `conn`.
    pub(crate) fn new(conn: &'c Connection) -> Self {
        ReadView { conn }
    }

    // ---- sites -------------------------------------------------------------------------

    /// Every site, by id.
    pub fn sites(&self) -> Result<Vec<Site>, StoreError> {
        let sql = format!("SELECT {SITE_COLUMNS} FROM sites ORDER BY id");
        self.conn
            .prepare_cached(&sql)
            .and_then(|mut s| s.query_map([], site_from_row)?.collect())
            .map_err(StoreError::sql("list sites"))
    }

    /// A site by name.
    pub fn site(&self, name: &str) -> Result<Site, StoreError> {
        let sql = format!("SELECT {SITE_COLUMNS} FROM sites WHERE name = ?1");
        self.conn
            .prepare_cached(&sql)
            .and_then(|mut s| s.query_row([name], site_from_row).optional())
            .map_err(StoreError::sql("read site"))?
            .ok_or_else(|| StoreError::UnknownSite(name.to_owned()))
    }

    /// A site by id.
    pub fn site_by_id(&self, id: SiteId) -> Result<Site, StoreError> {
        let sql = format!("SELECT {SITE_COLUMNS} FROM sites WHERE id = ?1");
        self.conn
            .prepare_cached(&sql)
            .and_then(|mut s| s.query_row([id.0], site_from_row).optional())
            .map_err(StoreError::sql("read site"))?
            .ok_or_else(|| StoreError::UnknownSite(format!("#{id}")))
    }

    // ---- users -------------------------------------------------------------------------

    fn numbers_of(&self, user: UserId) -> Result<Vec<UserNumber>, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT raw, normalised FROM user_numbers WHERE user_id = ?1 ORDER BY rowid",
            )
            .and_then(|mut s| {
                s.query_map([user.0], |r| {
                    Ok(UserNumber {
                        raw: r.get(0)?,
                        normalised: r.get(1)?,
                    })
                })?
                .collect()
            })
            .map_err(StoreError::sql("read user numbers"))
    }

    /// Every user of `site` (every site with `None`), by site then extension, with numbers.
    pub fn users(&self, site: Option<&str>) -> Result<Vec<User>, StoreError> {
        if let Some(name) = site {
            // An unknown site is an error, not an empty list.
            self.site(name)?;
        }
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM users u JOIN sites s ON s.id = u.site_id
             WHERE ?1 IS NULL OR s.name = ?1 ORDER BY s.id, u.extension"
        );
        let mut users: Vec<User> = self
            .conn
            .prepare_cached(&sql)
            .and_then(|mut s| s.query_map([site], user_from_row)?.collect())
            .map_err(StoreError::sql("list users"))?;
        let mut numbers: HashMap<i64, Vec<UserNumber>> = HashMap::new();
        self.conn
            .prepare_cached("SELECT user_id, raw, normalised FROM user_numbers ORDER BY rowid")
            .and_then(|mut s| {
                let rows = s.query_map([], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        UserNumber {
                            raw: r.get(1)?,
                            normalised: r.get(2)?,
                        },
                    ))
                })?;
                for row in rows {
                    let (user, number) = row?;
                    numbers.entry(user).or_default().push(number);
                }
                Ok(())
            })
            .map_err(StoreError::sql("list user numbers"))?;
        for user in &mut users {
            user.numbers = numbers.remove(&user.id.0).unwrap_or_default();
        }
        Ok(users)
    }

    /// A user by site and extension.
    pub fn user(&self, site: &str, extension: &str) -> Result<User, StoreError> {
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM users u JOIN sites s ON s.id = u.site_id
             WHERE s.name = ?1 AND u.extension = ?2"
        );
        let mut user = self
            .conn
            .prepare_cached(&sql)
            .and_then(|mut s| s.query_row([site, extension], user_from_row).optional())
            .map_err(StoreError::sql("read user"))?
            .ok_or_else(|| StoreError::UnknownUser {
                site: site.to_owned(),
                extension: extension.to_owned(),
            })?;
        user.numbers = self.numbers_of(user.id)?;
        Ok(user)
    }

    /// A user by id.
    pub fn user_by_id(&self, id: UserId) -> Result<User, StoreError> {
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM users u JOIN sites s ON s.id = u.site_id WHERE u.id = ?1"
        );
        let mut user = self
            .conn
            .prepare_cached(&sql)
            .and_then(|mut s| s.query_row([id.0], user_from_row).optional())
            .map_err(StoreError::sql("read user"))?
            .ok_or(StoreError::UnknownUserId(id))?;
        user.numbers = self.numbers_of(user.id)?;
        Ok(user)
    }

    /// A counter bumped by every change to sites, users and their numbers, by any process.
    /// Cheap: poll it and reload [`ReadView::directory`] when it moves.
    pub fn directory_version(&self) -> Result<u64, StoreError> {
        let v: i64 = self
            .conn
            .prepare_cached("SELECT value FROM meta WHERE key = 'directory_version'")
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .map_err(StoreError::sql("read directory version"))?;
        u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("directory version {v}")))
    }

    /// Every site and user, consistent with one version (run it inside a read transaction).
    pub fn directory(&self) -> Result<Directory, StoreError> {
        // One read transaction so version, sites and users agree. A nested call (inside a
        // write transaction) already has that guarantee.
        let own_tx = self.conn.is_autocommit();
        if own_tx {
            self.conn
                .execute_batch("BEGIN DEFERRED")
                .map_err(StoreError::sql("begin directory snapshot"))?;
        }
        let result = (|| {
            Ok(Directory {
                version: self.directory_version()?,
                sites: self.sites()?,
                users: self.users(None)?,
            })
        })();
        if own_tx {
            // A read transaction has nothing to lose; an error ending it is not interesting.
            let _ = self.conn.execute_batch("COMMIT");
        }
        result
    }

    // ---- recordings --------------------------------------------------------------------

    /// A recording's metadata, without an audit entry. For the daemon and the store's own
    /// checks; reads made for a person use `Store::read_recording`.
    pub fn recording(&self, id: &RecordingId, access: &Access) -> Result<Recording, StoreError> {
        let sql = format!("SELECT {RECORDING_COLUMNS} FROM {RECORDING_FROM} WHERE r.id = ?1");
        let rec = self
            .conn
            .prepare_cached(&sql)
            .and_then(|mut s| s.query_row([id.as_str()], recording_from_row).optional())
            .map_err(StoreError::sql("read recording"))?
            .ok_or_else(|| StoreError::UnknownRecording(id.clone()))?;
        if access.may_see(rec.site_id, rec.user_id) {
            Ok(rec)
        } else {
            Err(StoreError::UnknownRecording(id.clone()))
        }
    }

    /// Recordings still in state `recording`, oldest first: what the daemon reconciles
    /// against the switch at start and after a reconnect.
    pub fn recordings_in_progress(&self) -> Result<Vec<InProgress>, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT id, call_uuid, user_id, spool_path, started_at, ended_at,
                     (SELECT CASE WHEN kind = 'pause' THEN at END FROM segments
                      WHERE recording_seq = recordings.seq AND kind IN ('pause', 'resume')
                      ORDER BY at DESC, id DESC LIMIT 1)
                 FROM recordings WHERE state = 'recording' ORDER BY started_at, seq",
            )
            .and_then(|mut s| {
                s.query_map([], |r| {
                    Ok(InProgress {
                        id: parse_col(r, 0)?,
                        call_uuid: r.get(1)?,
                        user_id: UserId(r.get(2)?),
                        spool_path: PathBuf::from(r.get::<_, String>(3)?),
                        started_at: time_col(r, 4)?,
                        ended_at: opt_time_col(r, 5)?,
                        paused_since: opt_time_col(r, 6)?,
                    })
                })?
                .collect()
            })
            .map_err(StoreError::sql("list recordings in progress"))
    }

    /// How many recordings are in each state.
    pub fn state_counts(&self) -> Result<Vec<(RecordingState, u64)>, StoreError> {
        let rows: Vec<(RecordingState, i64)> = self
            .conn
            .prepare_cached("SELECT state, COUNT(*) FROM recordings GROUP BY state ORDER BY state")
            .and_then(|mut s| {
                s.query_map([], |r| Ok((parse_col(r, 0)?, r.get(1)?)))?
                    .collect()
            })
            .map_err(StoreError::sql("count recordings"))?;
        Ok(rows
            .into_iter()
            .map(|(s, n)| (s, u64::try_from(n).unwrap_or(0)))
            .collect())
    }

    // ---- usage -------------------------------------------------------------------------

    /// Storage used per user against the quota, for one site or all, by site then extension.
    /// Users with nothing stored are listed with zero.
    pub fn usage(&self, site: Option<SiteId>) -> Result<Vec<UserUsage>, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT u.id, s.name, u.extension, COALESCE(g.bytes, 0), COALESCE(g.files, 0),
                        s.quota_bytes, s.quota_policy
                 FROM users u JOIN sites s ON s.id = u.site_id
                 LEFT JOIN usage g ON g.user_id = u.id
                 WHERE ?1 IS NULL OR u.site_id = ?1
                 ORDER BY s.id, u.extension",
            )
            .and_then(|mut s| s.query_map([site.map(|s| s.0)], usage_from_row)?.collect())
            .map_err(StoreError::sql("read usage"))
    }

    /// One user's usage.
    pub fn user_usage(&self, user: UserId) -> Result<UserUsage, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT u.id, s.name, u.extension, COALESCE(g.bytes, 0), COALESCE(g.files, 0),
                        s.quota_bytes, s.quota_policy
                 FROM users u JOIN sites s ON s.id = u.site_id
                 LEFT JOIN usage g ON g.user_id = u.id
                 WHERE u.id = ?1",
            )
            .and_then(|mut s| s.query_row([user.0], usage_from_row).optional())
            .map_err(StoreError::sql("read usage"))?
            .ok_or(StoreError::UnknownUserId(user))
    }

    // ---- audit -------------------------------------------------------------------------

    /// A page of the audit log, newest first: entries of `site` (every site and the
    /// site-less entries with `None`) before sequence number `before`.
    pub fn audit(
        &self,
        site: Option<SiteId>,
        before: Option<i64>,
        limit: u32,
    ) -> Result<AuditPage, StoreError> {
        let limit = limit.clamp(1, 500);
        let before = before.unwrap_or(i64::MAX);
        let sql = if site.is_some() {
            "SELECT seq, at, site_id, actor, action, target, detail, hash FROM audit_log
             WHERE site_id = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3"
        } else {
            "SELECT seq, at, site_id, actor, action, target, detail, hash FROM audit_log
             WHERE ?1 IS NULL AND seq < ?2 ORDER BY seq DESC LIMIT ?3"
        };
        let entries: Vec<AuditEntry> = self
            .conn
            .prepare_cached(sql)
            .and_then(|mut s| {
                s.query_map(
                    params![site.map(|s| s.0), before, limit],
                    crate::audit::audit_entry_of,
                )?
                .collect()
            })
            .map_err(StoreError::sql("read the audit log"))?;
        Ok(AuditPage::of(entries, limit))
    }

    // ---- tokens ------------------------------------------------------------------------

    /// API tokens of one site (every site with `None`), newest first, without secrets.
    pub fn tokens(&self, site: Option<SiteId>) -> Result<Vec<TokenInfo>, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT t.id, t.user_id, s.name, u.extension, t.label, t.created_at, t.revoked_at,
                     t.expires_at, t.last_used_at
                 FROM api_tokens t JOIN users u ON u.id = t.user_id JOIN sites s ON s.id = u.site_id
                 WHERE ?1 IS NULL OR u.site_id = ?1 ORDER BY t.id DESC",
            )
            .and_then(|mut s| {
                s.query_map([site.map(|s| s.0)], |r| {
                    Ok(TokenInfo {
                        id: TokenId(r.get(0)?),
                        user_id: UserId(r.get(1)?),
                        site: r.get(2)?,
                        extension: r.get(3)?,
                        label: r.get(4)?,
                        created_at: time_col(r, 5)?,
                        revoked_at: opt_time_col(r, 6)?,
                        expires_at: opt_time_col(r, 7)?,
                        last_used_at: opt_time_col(r, 8)?,
                    })
                })?
                .collect()
            })
            .map_err(StoreError::sql("list tokens"))
    }

    /// Who a bearer secret stands for; `None` for an unknown, revoked or expired token
    /// (expiry is checked against the system clock).
    pub fn authenticate(&self, secret: &str) -> Result<Option<Caller>, StoreError> {
        let hash = token_hash(secret.trim());
        self.conn
            .prepare_cached(
                "SELECT t.id, u.id, s.id, s.name, u.extension, u.role
                 FROM api_tokens t JOIN users u ON u.id = t.user_id JOIN sites s ON s.id = u.site_id
                 WHERE t.secret_sha256 = ?1 AND t.revoked_at IS NULL
                   AND (t.expires_at IS NULL OR t.expires_at > CAST(strftime('%s', 'now') AS INTEGER) * 1000)",
            )
            .and_then(|mut s| {
                s.query_row([hash], |r| {
                    Ok(Caller {
                        token_id: TokenId(r.get(0)?),
                        user_id: UserId(r.get(1)?),
                        site_id: SiteId(r.get(2)?),
                        site: r.get(3)?,
                        extension: r.get(4)?,
                        role: parse_col(r, 5)?,
                    })
                })
                .optional()
            })
            .map_err(StoreError::sql("authenticate"))
    }

    /// The scope's site, when it has one.
    pub(crate) fn scope_site(scope: &Scope) -> Option<SiteId> {
        match *scope {
            Scope::All => None,
            Scope::Site(s) => Some(s),
            Scope::User { site, .. } => Some(site),
        }
    }
}

fn usage_from_row(r: &Row<'_>) -> rusqlite::Result<UserUsage> {
    let bytes = u64_col(r, 3)?;
    let quota_bytes = u64_col(r, 5)?;
    Ok(UserUsage {
        user_id: UserId(r.get(0)?),
        site: r.get(1)?,
        extension: r.get(2)?,
        bytes,
        files: u64_col(r, 4)?,
        quota_bytes,
        quota_policy: parse_col(r, 6)?,
        over_quota: bytes > quota_bytes,
    })
}

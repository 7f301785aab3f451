//! The hash-chained audit log (SPEC §4.5).
//!
//! Each entry's hash is `sha256(previous hash || canonical bytes of the entry)`, the first
//! entry chaining from 32 zero bytes. The canonical bytes are every field, length-prefixed, so
//! no two different entries encode alike. Entries are appended in the same transaction as the
//! change they record: a change and its audit entry commit together or not at all.
//! [`ReadView::audit_page`] lists a site's entries for the portal, narrowed by actor, action,
//! target and time.

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

use crate::error::StoreError;
use crate::records::{AuditEntry, AuditFilter, AuditPage};
use crate::view::{ReadView, ms, time_col};
use callrec_model::SiteId;

/// The `prev_hash` of the first entry.
pub(crate) const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An entry to append.
#[derive(Debug, Clone)]
pub(crate) struct Event<'a> {
    pub at_ms: i64,
    pub site: Option<SiteId>,
    pub actor: &'a str,
    pub action: &'a str,
    pub target: &'a str,
    pub detail: &'a str,
}

/// The chain hash of an entry.
pub(crate) fn entry_hash(prev_hash: &str, seq: i64, event: &Event<'_>) -> String {
    let mut h = Sha256::new();
    // A malformed stored prev_hash still hashes deterministically (as text), so verify
    // reports the break instead of failing.
    match hex::decode(prev_hash) {
        Ok(bytes) => h.update(bytes),
        Err(_) => h.update(prev_hash.as_bytes()),
    }
    let site = event.site.map(|s| s.0.to_string()).unwrap_or_default();
    for field in [
        seq.to_string().as_bytes(),
        event.at_ms.to_string().as_bytes(),
        site.as_bytes(),
        event.actor.as_bytes(),
        event.action.as_bytes(),
        event.target.as_bytes(),
        event.detail.as_bytes(),
    ] {
        h.update((field.len() as u64).to_be_bytes());
        h.update(field);
    }
    hex::encode(h.finalize())
}

/// Append an entry; call inside the transaction of the change it records.
pub(crate) fn append(conn: &Connection, event: &Event<'_>) -> Result<i64, StoreError> {
    let (seq, prev) = head(conn)?;
    insert(conn, seq, event, &prev)?;
    Ok(seq)
}

/// Append entries in order, reading the chain's head once (a sweep appends one per deletion,
/// a thousand at a time); call inside the transaction of the changes they record.
pub(crate) fn append_many(conn: &Connection, events: &[Event<'_>]) -> Result<(), StoreError> {
    let (mut seq, mut prev) = head(conn)?;
    for event in events {
        prev = insert(conn, seq, event, &prev)?;
        seq += 1;
    }
    Ok(())
}

/// The next entry's seq and the hash it chains from.
fn head(conn: &Connection) -> Result<(i64, String), StoreError> {
    let last: Option<(i64, String)> = conn
        .prepare_cached("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        .and_then(|mut s| s.query_row([], |r| Ok((r.get(0)?, r.get(1)?))).optional())
        .map_err(StoreError::sql("read the audit log head"))?;
    Ok(match last {
        Some((seq, hash)) => (seq + 1, hash),
        None => (1, GENESIS.to_owned()),
    })
}

/// Insert entry `seq` chained from `prev`; returns its hash.
fn insert(
    conn: &Connection,
    seq: i64,
    event: &Event<'_>,
    prev: &str,
) -> Result<String, StoreError> {
    let hash = entry_hash(prev, seq, event);
    conn.prepare_cached(
        "INSERT INTO audit_log (seq, at, site_id, actor, action, target, detail, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )
    .and_then(|mut s| {
        s.execute(params![
            seq,
            event.at_ms,
            event.site.map(|s| s.0),
            event.actor,
            event.action,
            event.target,
            event.detail,
            prev,
            hash
        ])
    })
    .map_err(StoreError::sql("append to the audit log"))?;
    Ok(hash)
}

/// The newest entry of the log: its seq and chain hash. Saved away from the index (a file
/// on another machine, syslog), it lets `verify` find entries cut from the end of the log,
/// which leave an intact, shorter chain.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ChainHead {
    /// The entry's seq.
    pub seq: i64,
    /// Its chain hash (hex).
    pub hash: String,
}

impl std::fmt::Display for ChainHead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.seq, self.hash)
    }
}

impl std::str::FromStr for ChainHead {
    type Err = String;

    /// `SEQ HASH`, as [`ChainHead`]'s `Display` writes it (`callrec audit head`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!(
                "`{}` is not a chain head (`SEQ HASH`, as `callrec audit head` prints)",
                callrec_model::names::excerpt(s.trim())
            )
        };
        let (seq, hash) = s.trim().split_once(char::is_whitespace).ok_or_else(bad)?;
        let seq: i64 = seq.parse().map_err(|_| bad())?;
        let hash = hash.trim();
        if seq < 1 || hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        Ok(ChainHead {
            seq,
            hash: hash.to_ascii_lowercase(),
        })
    }
}

/// The log's newest entry, if it has one.
pub(crate) fn chain_head(conn: &Connection) -> Result<Option<ChainHead>, StoreError> {
    conn.prepare_cached("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        .and_then(|mut s| {
            s.query_row([], |r| {
                Ok(ChainHead {
                    seq: r.get(0)?,
                    hash: r.get(1)?,
                })
            })
            .optional()
        })
        .map_err(StoreError::sql("read the audit log head"))
}

/// Whether the log still holds a head saved earlier: the entry at its seq, with its hash.
pub(crate) fn check_saved_head(
    conn: &Connection,
    saved: &ChainHead,
) -> Result<Option<ChainBreak>, StoreError> {
    let hash: Option<String> = conn
        .prepare_cached("SELECT hash FROM audit_log WHERE seq = ?1")
        .and_then(|mut s| s.query_row([saved.seq], |r| r.get(0)).optional())
        .map_err(StoreError::sql("read the audit log"))?;
    Ok(match hash {
        Some(h) if h == saved.hash => None,
        Some(_) => Some(ChainBreak {
            seq: saved.seq,
            problem: format!(
                "entry {} is not the one the saved chain head names ({}): the log was rewritten",
                saved.seq, saved.hash
            ),
        }),
        None => Some(ChainBreak {
            seq: saved.seq,
            problem: format!(
                "the saved chain head names entry {}, which the log no longer has: entries \
                 were cut from its end",
                saved.seq
            ),
        }),
    })
}

/// A break in the audit chain.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ChainBreak {
    /// The entry where the chain breaks.
    pub seq: i64,
    /// What is wrong with it.
    pub problem: String,
}

/// Walk the whole chain; returns the number of entries and every break found.
pub(crate) fn verify_chain(conn: &Connection) -> Result<(u64, Vec<ChainBreak>), StoreError> {
    let mut stmt = conn
        .prepare(
            "SELECT seq, at, site_id, actor, action, target, detail, prev_hash, hash
             FROM audit_log ORDER BY seq",
        )
        .map_err(StoreError::sql("read the audit log"))?;
    let mut rows = stmt
        .query([])
        .map_err(StoreError::sql("read the audit log"))?;
    let mut expected_prev = GENESIS.to_owned();
    let mut expected_seq = 1i64;
    let mut count = 0u64;
    let mut breaks = Vec::new();
    while let Some(row) = rows.next().map_err(StoreError::sql("read the audit log"))? {
        let read = |row: &rusqlite::Row<'_>| -> rusqlite::Result<_> {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, Option<i64>>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, String>(4)?,
                row.get::<_, String>(5)?,
                row.get::<_, String>(6)?,
                row.get::<_, String>(7)?,
                row.get::<_, String>(8)?,
            ))
        };
        let (seq, at_ms, site, actor, action, target, detail, prev_hash, hash) = match read(row) {
            Ok(v) => v,
            Err(e) => {
                breaks.push(ChainBreak {
                    seq: expected_seq,
                    problem: format!("unreadable entry: {e}"),
                });
                expected_seq += 1;
                continue;
            }
        };
        count += 1;
        if seq != expected_seq {
            breaks.push(ChainBreak {
                seq,
                problem: format!("entries {expected_seq}..{} are missing", seq - 1),
            });
        }
        if prev_hash != expected_prev {
            breaks.push(ChainBreak {
                seq,
                problem: "previous-hash link does not match the entry before it".to_owned(),
            });
        }
        let event = Event {
            at_ms,
            site: site.map(SiteId),
            actor: &actor,
            action: &action,
            target: &target,
            detail: &detail,
        };
        if entry_hash(&prev_hash, seq, &event) != hash {
            breaks.push(ChainBreak {
                seq,
                problem: format!("entry was altered (action {action}, target {target})"),
            });
        }
        expected_prev = hash;
        expected_seq = seq + 1;
    }
    Ok((count, breaks))
}

impl ReadView<'_> {
    /// A page of one site's audit log, newest first, narrowed by `filter`, before sequence
    /// number `before` (the previous page's `next_before`). Each filter has an index of
    /// migration 0008 (the target's is the schema's own), so a rare actor or action does
    /// not walk the site's log.
    pub fn audit_page(
        &self,
        site: SiteId,
        filter: &AuditFilter,
        before: Option<i64>,
        limit: u32,
    ) -> Result<AuditPage, StoreError> {
        let (sql, values) = audit_page_sql(site, filter, before, limit);
        let limit = limit.clamp(1, 500);
        let entries: Vec<AuditEntry> = self
            .conn
            .prepare_cached(&sql)
            .and_then(|mut s| {
                s.query_map(
                    rusqlite::params_from_iter(values.iter()),
                    crate::audit::audit_entry_of,
                )?
                .collect()
            })
            .map_err(StoreError::sql("read the audit log"))?;
        Ok(AuditPage::of(entries, limit))
    }

    /// `EXPLAIN QUERY PLAN` of [`ReadView::audit_page`], one line per step (for tests).
    pub fn audit_page_plan(
        &self,
        site: SiteId,
        filter: &AuditFilter,
    ) -> Result<Vec<String>, StoreError> {
        let (sql, values) = audit_page_sql(site, filter, None, 50);
        self.conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .and_then(|mut s| {
                s.query_map(rusqlite::params_from_iter(values.iter()), |r| {
                    r.get::<_, String>(3)
                })?
                .collect()
            })
            .map_err(StoreError::sql("explain the audit query"))
    }
}

/// The SQL of [`ReadView::audit_page`] and its parameters, in order. The index is named:
/// the one of the most selective filter given (a target, then an actor, then an action,
/// then the time range), so the plan does not hang on statistics the planner may lack.
/// The first three keep entries in `seq` order, so a page stops after `limit` rows; a time
/// range alone sorts the entries of its range.
fn audit_page_sql(
    site: SiteId,
    filter: &AuditFilter,
    before: Option<i64>,
    limit: u32,
) -> (String, Vec<Value>) {
    let index = if filter.target.is_some() {
        "audit_log_target"
    } else if filter.actor.is_some() {
        "audit_log_site_actor"
    } else if filter.action.is_some() {
        "audit_log_site_action"
    } else if filter.since.is_some() || filter.until.is_some() {
        "audit_log_site_at"
    } else {
        "audit_log_site"
    };
    let mut sql = format!(
        "SELECT seq, at, site_id, actor, action, target, detail, hash FROM audit_log
         INDEXED BY {index} WHERE site_id = ?1 AND seq < ?2"
    );
    let mut values = vec![
        Value::Integer(site.0),
        Value::Integer(before.unwrap_or(i64::MAX)),
    ];
    let param = |values: &mut Vec<Value>, v: Value| {
        values.push(v);
        format!("?{}", values.len())
    };
    for (column, value) in [
        ("actor", &filter.actor),
        ("action", &filter.action),
        ("target", &filter.target),
    ] {
        if let Some(v) = value {
            let p = param(&mut values, Value::Text(v.clone()));
            sql.push_str(&format!(" AND {column} = {p}"));
        }
    }
    if let Some(since) = filter.since {
        let p = param(&mut values, Value::Integer(ms(since)));
        sql.push_str(&format!(" AND at >= {p}"));
    }
    if let Some(until) = filter.until {
        let p = param(&mut values, Value::Integer(ms(until)));
        sql.push_str(&format!(" AND at < {p}"));
    }
    let p = param(&mut values, Value::Integer(i64::from(limit.clamp(1, 500))));
    sql.push_str(&format!(" ORDER BY seq DESC LIMIT {p}"));
    (sql, values)
}

/// An `audit_log` row of columns `seq, at, site_id, actor, action, target, detail, hash`.
pub(crate) fn audit_entry_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuditEntry> {
    Ok(AuditEntry {
        seq: r.get(0)?,
        at: time_col(r, 1)?,
        site_id: r.get::<_, Option<i64>>(2)?.map(SiteId),
        actor: r.get(3)?,
        action: r.get(4)?,
        target: r.get(5)?,
        detail: r.get(6)?,
        hash: r.get(7)?,
    })
}

impl AuditPage {
    /// A page of `entries` asked for with `limit`: a full page may have older entries.
    pub(crate) fn of(entries: Vec<AuditEntry>, limit: u32) -> AuditPage {
        let next_before = if entries.len() == limit as usize {
            entries.last().map(|e| e.seq)
        } else {
            None
        };
        AuditPage {
            entries,
            next_before,
        }
    }
}

//! Search (SPEC §5 `GET /recordings`): every filter served by an index, newest first, keyset
//! pagination.
//!
//! The query is built from the filters, and the index that drives it is chosen here rather
//! than left to the planner's guess (`INDEXED BY`, and the recordings always the outer loop of
//! the join), most selective filter first: a number (two index walks, one per party, merged),
//! a party, text in few notes (the trigram index, the matches fetched by key and sorted), the
//! user, text in many notes (the notes' partial index), a minimum duration few recordings
//! reach (the duration index, its matches sorted), the hold and notes partial indexes, the
//! direction, and otherwise the site's time index, which also serves the date range and a
//! minimum duration many reach. "Few" is counted in the index first, reading no further than
//! the bound. The other indexes end in `started_at` (and the implicit rowid `seq`), so their
//! first page is read in order with no sort, and the cursor `(started_at, seq)` resumes exactly
//! where the previous page ended. `tests/search.rs` checks the plans with `EXPLAIN QUERY
//! PLAN`; the portal benchmark times every filter over a million recordings.

use chrono::{DateTime, Utc};
use rusqlite::types::Value;
use rusqlite::{OptionalExtension, params_from_iter};

use crate::error::StoreError;
use crate::records::{Access, Recording, Scope};
use crate::view::{RECORDING_COLUMNS, RECORDING_FROM, ReadView, ms, recording_from_row};
use callrec_model::{Direction, RecordingState, SiteId};
use callrec_numbers::{self as numbers, NumberPlan};

/// Page size when none is asked for.
pub const DEFAULT_LIMIT: u32 = 50;
/// The largest page.
pub const MAX_LIMIT: u32 = 500;

/// A minimum duration that at most this many recordings of the site reach is served by the
/// duration index: its matches are read and sorted, so a first page costs at most this many
/// rows whatever the time span (a duration nobody reaches costs nothing). One that more reach
/// is served by walking the time index newest first and testing each row, which fills a page
/// after about `50 × recordings ÷ FEW_AS_LONG` rows when the long calls are spread over time:
/// about 10,000 rows for a million recordings, the same order as sorting this many.
const FEW_AS_LONG: i64 = 5_000;

/// Text in at most this many notes is served by fetching their recordings by key and sorting
/// them (a few milliseconds at most). Text in more is served by walking the notes' partial
/// index (or the user's) newest first, testing each entry's rowid against the matches: that
/// costs a fraction of a microsecond an entry, and more matches mean a shorter walk.
const MANY_NOTES: i64 = 1_000;

/// The filters of a search. All are optional and combine with AND.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchQuery {
    /// Either party, in any form (`01234567890`, `+441234567890`, `(01234) 567890`, `1001`).
    pub number: Option<String>,
    /// The calling party, any form.
    pub from: Option<String>,
    /// The called party, any form.
    pub to: Option<String>,
    /// The owner's extension.
    pub user: Option<String>,
    /// Started at or after.
    pub since: Option<DateTime<Utc>>,
    /// Started before (exclusive; an API taking a date passes the next midnight).
    pub until: Option<DateTime<Utc>>,
    /// Direction.
    pub direction: Option<Direction>,
    /// At least this long, in milliseconds.
    pub min_duration_ms: Option<u64>,
    /// With (true) or without (false) notes.
    pub has_notes: Option<bool>,
    /// On hold (true) or not (false).
    pub hold: Option<bool>,
    /// Text in a note: a case-insensitive substring.
    pub text: Option<String>,
    /// Only this state; by default `stored` and `failed` (the recordings that have a file).
    pub state: Option<RecordingState>,
    /// Page size, 1 to [`MAX_LIMIT`]; default [`DEFAULT_LIMIT`].
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// One page of results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchPage {
    /// The recordings, newest first.
    pub items: Vec<Recording>,
    /// Pass as `cursor` for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// A cursor: the position of the last item of a page.
fn encode_cursor(started_at: i64, seq: i64) -> String {
    hex::encode(format!("{started_at}:{seq}"))
}

fn decode_cursor(cursor: &str) -> Result<(i64, i64), StoreError> {
    let bad = || StoreError::BadCursor(cursor.chars().take(64).collect());
    let bytes = hex::decode(cursor).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (a, b) = text.split_once(':').ok_or_else(bad)?;
    Ok((a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?))
}

/// The parts of a built query, kept apart so tests can explain them.
#[derive(Debug, Clone)]
pub(crate) struct BuiltQuery {
    pub sql: String,
    pub args: Vec<Value>,
}

struct Args(Vec<Value>);

impl Args {
    fn push(&mut self, v: impl Into<Value>) -> String {
        self.0.push(v.into());
        format!("?{}", self.0.len())
    }
}

/// Text for an FTS5 MATCH that means "this exact substring" (a quoted phrase).
fn fts_phrase(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

fn like_pattern(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

impl ReadView<'_> {
    /// Search the recordings `access` may see, newest first (SPEC §5 `GET /recordings`).
    ///
    /// Every filter is served by an index (the first page is read in index order, no sort):
    /// a number (normalised like stored numbers, either party), a party, text in notes
    /// (trigram index, case-insensitive substring of 3 characters or more), the user, a
    /// minimum duration few reach (the duration index), hold, notes, direction, otherwise the
    /// time index, which also serves the date range and a minimum duration many reach. `next_cursor` is opaque; pass it back as `cursor` for the next page.
    /// A user outside the caller's scope gives an empty page, not an error.
    pub fn search(&self, access: &Access, query: &SearchQuery) -> Result<SearchPage, StoreError> {
        let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(StoreError::invalid(
                "limit",
                limit.to_string(),
                format!("must be between 1 and {MAX_LIMIT}"),
            ));
        }
        let Some(built) = self.build_search(access, query, limit)? else {
            return Ok(SearchPage {
                items: Vec::new(),
                next_cursor: None,
            });
        };
        let mut rows: Vec<(Recording, i64)> = self
            .conn
            .prepare_cached(&built.sql)
            .and_then(|mut s| {
                s.query_map(params_from_iter(built.args.iter()), |r| {
                    Ok((recording_from_row(r)?, r.get(25)?))
                })?
                .collect()
            })
            .map_err(StoreError::sql("search recordings"))?;
        let next_cursor = if rows.len() > limit as usize {
            rows.truncate(limit as usize);
            rows.last()
                .map(|(rec, seq)| encode_cursor(ms(rec.started_at), *seq))
        } else {
            None
        };
        Ok(SearchPage {
            items: rows.into_iter().map(|(r, _)| r).collect(),
            next_cursor,
        })
    }

    fn plan_for(&self, scope: &Scope) -> Result<NumberPlan, StoreError> {
        match ReadView::scope_site(scope) {
            Some(site) => Ok(self.site_by_id(site)?.settings.number_plan()),
            None => Ok(self
                .sites()?
                .first()
                .map(|s| s.settings.number_plan())
                .unwrap_or_default()),
        }
    }

    /// The SQL and arguments of a search; `None` when it can match nothing (an unknown user,
    /// or one outside the caller's scope).
    pub(crate) fn build_search(
        &self,
        access: &Access,
        q: &SearchQuery,
        limit: u32,
    ) -> Result<Option<BuiltQuery>, StoreError> {
        let scope = access.scope;
        let site = ReadView::scope_site(&scope);
        let plan = self.plan_for(&scope)?;
        let mut args = Args(Vec::new());
        let mut conds: Vec<String> = Vec::new();

        match q.state {
            Some(state) => {
                let p = args.push(state.as_str().to_owned());
                conds.push(format!("r.state = {p}"));
            }
            None => conds.push("r.state IN ('stored', 'failed')".to_owned()),
        }

        let mut user = match scope {
            Scope::User { user, .. } => Some(user.0),
            _ => None,
        };
        if let Some(ext) = q.user.as_deref().map(str::trim).filter(|e| !e.is_empty()) {
            let found: Option<i64> = self
                .conn
                .prepare_cached(
                    "SELECT id FROM users WHERE extension = ?1 AND (?2 IS NULL OR site_id = ?2)
                     ORDER BY site_id LIMIT 1",
                )
                .and_then(|mut s| {
                    s.query_row(rusqlite::params![ext, site.map(|s| s.0)], |r| r.get(0))
                        .optional()
                })
                .map_err(StoreError::sql("look up user"))?;
            match (found, user) {
                (None, _) => return Ok(None),
                (Some(f), Some(u)) if f != u => return Ok(None),
                (Some(f), _) => user = Some(f),
            }
        }
        if let Some(u) = user {
            let p = args.push(u);
            conds.push(format!("r.user_id = {p}"));
        }
        if let Some(since) = q.since {
            let p = args.push(ms(since));
            conds.push(format!("r.started_at >= {p}"));
        }
        if let Some(until) = q.until {
            let p = args.push(ms(until));
            conds.push(format!("r.started_at < {p}"));
        }
        if let Some(d) = q.direction {
            let p = args.push(d.as_str().to_owned());
            conds.push(format!("r.direction = {p}"));
        }
        if let Some(min) = q.min_duration_ms {
            let p = args.push(i64::try_from(min).unwrap_or(i64::MAX));
            conds.push(format!("r.duration_ms >= {p}"));
        }
        match q.has_notes {
            Some(true) => conds.push("r.note_count > 0".to_owned()),
            Some(false) => conds.push("r.note_count = 0".to_owned()),
            None => {}
        }
        match q.hold {
            Some(true) => conds.push("r.hold = 1".to_owned()),
            Some(false) => conds.push("r.hold = 0".to_owned()),
            None => {}
        }
        let text = q.text.as_deref().map(str::trim).filter(|t| !t.is_empty());
        if let Some(t) = text
            && t.chars().any(|c| c.is_control() && !c.is_whitespace())
        {
            // A NUL ends an FTS query early; no note holds control characters anyway.
            return Err(StoreError::invalid(
                "q",
                t.escape_default().to_string(),
                "must not contain control characters",
            ));
        }
        // Whether the text is in so many notes that a page of them is found sooner by walking
        // an index in time order than by fetching and sorting every match.
        let mut many_notes = false;
        if let Some(text) = text {
            if text.chars().count() >= 3 {
                let phrase = fts_phrase(text);
                many_notes = self.many_notes_match(&phrase)?;
                let p = args.push(phrase);
                // `note_count > 0` lets the notes' partial index drive the walk.
                conds.push(format!(
                    "r.note_count > 0 AND r.seq IN (SELECT n.recording_seq FROM notes n \
                     WHERE n.id IN (SELECT rowid FROM notes_text WHERE notes_text MATCH {p}))"
                ));
            } else {
                // Too short for trigrams: scan the notes (only recordings with notes).
                let p = args.push(like_pattern(text));
                conds.push(format!(
                    "r.note_count > 0 AND r.seq IN \
                     (SELECT recording_seq FROM notes WHERE text LIKE {p} ESCAPE '\\')"
                ));
            }
        }
        if let Some(cursor) = &q.cursor {
            let (at, seq) = decode_cursor(cursor)?;
            let a = args.push(at);
            let b = args.push(seq);
            // The first term is an index range; the second only trims the ties at `at`.
            conds.push(format!(
                "r.started_at <= {a} AND (r.started_at < {a} OR r.seq < {b})"
            ));
        }
        let norm = |s: &Option<String>| {
            s.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| numbers::normalise(s, &plan))
        };
        let (number, from, to) = (norm(&q.number), norm(&q.from), norm(&q.to));
        if let Some(f) = &from {
            let p = args.push(f.clone());
            conds.push(format!("r.from_norm = {p}"));
        }
        if let Some(t) = &to {
            let p = args.push(t.clone());
            conds.push(format!("r.to_norm = {p}"));
        }

        let fetch = args.push(i64::from(limit) + 1);
        let order = format!("ORDER BY r.started_at DESC, r.seq DESC LIMIT {fetch}");
        let site_cond = |args: &mut Args, indexable: bool| {
            site.map(|s| {
                let p = args.push(s.0);
                // A unary `+` keeps the planner from driving by the site when a narrower
                // index (the user's) is meant to.
                if indexable {
                    format!("r.site_id = {p}")
                } else {
                    format!("+r.site_id = {p}")
                }
            })
        };

        if let Some(number) = number {
            let n = args.push(number);
            let mut branch_conds = conds.clone();
            branch_conds.extend(site_cond(&mut args, true));
            let (from_idx, to_idx) = if site.is_some() {
                (
                    "INDEXED BY recordings_from_started",
                    "INDEXED BY recordings_to_started",
                )
            } else {
                ("", "")
            };
            let w = branch_conds.join(" AND ");
            let sql = format!(
                "SELECT {RECORDING_COLUMNS}, r.seq FROM {RECORDING_FROM} WHERE r.seq IN (
                   SELECT seq FROM (SELECT r.seq AS seq FROM recordings r {from_idx}
                                    WHERE {w} AND r.from_norm = {n} {order})
                   UNION
                   SELECT seq FROM (SELECT r.seq AS seq FROM recordings r {to_idx}
                                    WHERE {w} AND r.to_norm = {n} {order}))
                 {order}"
            );
            return Ok(Some(BuiltQuery { sql, args: args.0 }));
        }

        let few_as_long = match (site, q.min_duration_ms) {
            (Some(site), Some(min))
                if from.is_none() && to.is_none() && text.is_none() && user.is_none() =>
            {
                self.few_as_long(site, min)?
            }
            _ => false,
        };
        let driving: Option<&str> = if site.is_none() {
            user.map(|_| "recordings_user_started")
        } else if from.is_some() {
            Some("recordings_from_started")
        } else if to.is_some() {
            Some("recordings_to_started")
        } else if text.is_some() && !many_notes {
            None
        } else if user.is_some() {
            Some("recordings_user_started")
        } else if many_notes {
            Some("recordings_notes_started")
        } else if few_as_long {
            Some("recordings_site_duration")
        } else if q.hold == Some(true) {
            Some("recordings_hold_started")
        } else if q.has_notes == Some(true) {
            Some("recordings_notes_started")
        } else if q.direction.is_some() {
            Some("recordings_direction_started")
        } else {
            Some("recordings_site_started")
        };
        conds.extend(site_cond(
            &mut args,
            driving != Some("recordings_user_started"),
        ));
        // Text in few notes: fetch their recordings by primary key and sort them, rather than
        // walk a time index and test each row (`NOT INDEXED` still allows rowid lookups). Text
        // in many notes walks the user's or the notes' index instead, newest first, testing
        // each entry's rowid against the matches before its row is read.
        let indexed = match driving {
            Some(i) => format!("INDEXED BY {i}"),
            None if text.is_some() => "NOT INDEXED".to_owned(),
            None => String::new(),
        };
        let from_clause =
            RECORDING_FROM.replacen("recordings r", &format!("recordings r {indexed}"), 1);
        let sql = format!(
            "SELECT {RECORDING_COLUMNS}, r.seq FROM {from_clause} WHERE {} {order}",
            conds.join(" AND ")
        );
        Ok(Some(BuiltQuery { sql, args: args.0 }))
    }

    /// Whether at most [`FEW_AS_LONG`] recordings of `site` last `min_ms` or longer: counted
    /// in the duration index, reading no more than that many of its entries.
    fn few_as_long(&self, site: SiteId, min_ms: u64) -> Result<bool, StoreError> {
        let min = i64::try_from(min_ms).unwrap_or(i64::MAX);
        let n: i64 = self
            .conn
            .prepare_cached(
                "SELECT COUNT(*) FROM (SELECT 1 FROM recordings INDEXED BY recordings_site_duration
                 WHERE site_id = ?1 AND duration_ms >= ?2 LIMIT ?3)",
            )
            .and_then(|mut s| {
                s.query_row(rusqlite::params![site.0, min, FEW_AS_LONG + 1], |r| {
                    r.get(0)
                })
            })
            .map_err(StoreError::sql("count recordings by duration"))?;
        Ok(n <= FEW_AS_LONG)
    }

    /// Whether more than [`MANY_NOTES`] notes (of any site) hold `phrase`: counted in the
    /// trigram index, reading no more than that many of its matches.
    fn many_notes_match(&self, phrase: &str) -> Result<bool, StoreError> {
        let n: i64 = self
            .conn
            .prepare_cached(
                "SELECT COUNT(*) FROM (SELECT 1 FROM notes_text WHERE notes_text MATCH ?1 LIMIT ?2)",
            )
            .and_then(|mut s| {
                s.query_row(rusqlite::params![phrase, MANY_NOTES + 1], |r| r.get(0))
            })
            .map_err(StoreError::sql("count notes matching text"))?;
        Ok(n > MANY_NOTES)
    }

    /// The SQL and arguments a search runs (`None` when it can match nothing), for
    /// inspection and for benchmarks that time the bare SQL beside [`ReadView::search`].
    pub fn search_sql(
        &self,
        access: &Access,
        query: &SearchQuery,
    ) -> Result<Option<(String, Vec<Value>)>, StoreError> {
        let limit = query.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
        Ok(self
            .build_search(access, query, limit)?
            .map(|b| (b.sql, b.args)))
    }

    /// `EXPLAIN QUERY PLAN` of a search, one line per step (for tests and tuning).
    pub fn explain_search(
        &self,
        access: &Access,
        query: &SearchQuery,
    ) -> Result<Vec<String>, StoreError> {
        let limit = query.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
        let Some(built) = self.build_search(access, query, limit)? else {
            return Ok(Vec::new());
        };
        self.conn
            .prepare(&format!("EXPLAIN QUERY PLAN {}", built.sql))
            .and_then(|mut s| {
                s.query_map(params_from_iter(built.args.iter()), |r| {
                    r.get::<_, String>(3)
                })?
                .collect()
            })
            .map_err(StoreError::sql("explain search"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let c = encode_cursor(1_700_000_000_000, 42);
        assert_eq!(decode_cursor(&c).unwrap(), (1_700_000_000_000, 42));
        for bad in [
            "",
            "zz",
            "00",
            &hex::encode("1:x"),
            &hex::encode("no colon"),
        ] {
            assert!(
                matches!(decode_cursor(bad), Err(StoreError::BadCursor(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn text_is_quoted_for_fts_and_escaped_for_like() {
        assert_eq!(fts_phrase(r#"say "hi""#), r#""say ""hi""""#);
        assert_eq!(like_pattern("5%_"), r"%5\%\_%");
    }
}

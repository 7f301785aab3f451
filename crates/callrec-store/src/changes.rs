//! The change feed (SPEC §5.3, issue 11): what happened to recordings, in a strictly
//! increasing sequence, for archive clients to follow (`GET /api/v1/changes?after=`). The
//! entries are written by triggers (migration `0002-changes.sql`) in the same transaction as
//! the change; a page is one index range scan whatever the archive's size.

use rusqlite::params;
use serde::Serialize;

use crate::error::StoreError;
use crate::records::{Access, Scope};
use crate::view::{ReadView, parse_col};
use callrec_model::RecordingId;

/// The most entries one page returns.
pub const MAX_CHANGES: u32 = 1000;

/// One change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// Its place in the feed: strictly increasing, never reused.
    pub seq: i64,
    /// `stored`, `failed`, `deleted`, `hold`, `release` or `note`.
    pub kind: String,
    /// The recording it happened to.
    pub recording_id: RecordingId,
}

/// A page of the feed, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangesPage {
    /// The changes after the one asked for.
    pub changes: Vec<Change>,
    /// Pass as `after` for the next page: the last change returned, or the `after` asked
    /// for when there was none.
    pub last_seq: i64,
}

impl ReadView<'_> {
    /// The changes after `after` that `access` may see (a user: their own recordings; an
    /// admin: their site's), at most `limit` (1 to [`MAX_CHANGES`]).
    pub fn changes(
        &self,
        access: &Access,
        after: i64,
        limit: u32,
    ) -> Result<ChangesPage, StoreError> {
        if !(1..=MAX_CHANGES).contains(&limit) {
            return Err(StoreError::invalid(
                "limit",
                limit.to_string(),
                format!("must be between 1 and {MAX_CHANGES}"),
            ));
        }
        let (filter, key) = match access.scope {
            Scope::All => ("?3 IS NULL", None),
            Scope::Site(site) => ("c.site_id = ?3", Some(site.0)),
            Scope::User { user, .. } => ("c.user_id = ?3", Some(user.0)),
        };
        let sql = format!(
            "SELECT c.seq, c.kind, r.id FROM changes c JOIN recordings r ON r.seq = c.recording_seq
             WHERE {filter} AND c.seq > ?1 ORDER BY c.seq LIMIT ?2"
        );
        let changes: Vec<Change> = self
            .conn
            .prepare_cached(&sql)
            .and_then(|mut s| {
                s.query_map(params![after, limit, key], |r| {
                    Ok(Change {
                        seq: r.get(0)?,
                        kind: r.get(1)?,
                        recording_id: parse_col(r, 2)?,
                    })
                })?
                .collect()
            })
            .map_err(StoreError::sql("read the change feed"))?;
        let last_seq = changes.last().map_or(after, |c| c.seq);
        Ok(ChangesPage { changes, last_seq })
    }
}

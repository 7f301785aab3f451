//! Creating and upgrading the index schema, the way cargo's SQLite layer does it.
//!
//! `schema.sql` at the repository root is migration 0. Later migrations are appended to
//! [`MIGRATIONS`] and never edited. `PRAGMA user_version` records how many have been applied;
//! every pending one runs in one exclusive transaction, so an interrupted upgrade leaves the
//! index as it was.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use crate::error::StoreError;

/// Every migration, oldest first. Append only.
pub(crate) const MIGRATIONS: &[&str] = &[
    include_str!("../../../schema.sql"),
    include_str!("../migrations/0001-max-pause.sql"),
    include_str!("../migrations/0002-changes.sql"),
    include_str!("../migrations/0003-token-expiry.sql"),
    include_str!("../migrations/0004-webhooks.sql"),
    include_str!("../migrations/0005-archive-runs.sql"),
    include_str!("../migrations/0006-token-last-used.sql"),
    include_str!("../migrations/0007-portal.sql"),
    include_str!("../migrations/0008-audit-filters.sql"),
    include_str!("../migrations/0009-recordings-duration-index.sql"),
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// What opening the index did to its schema: the schema version before and after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migration {
    /// The version found (0 for a new index).
    pub from: u32,
    /// The version now.
    pub to: u32,
}

/// Bring the index up to [`SCHEMA_VERSION`].
pub(crate) fn migrate(conn: &mut Connection, path: &Path) -> Result<Migration, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Exclusive)
        .map_err(StoreError::sql("begin migration"))?;
    let found: u32 = tx
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(StoreError::sql("read schema version"))?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            path: path.to_path_buf(),
            found,
            known: SCHEMA_VERSION,
        });
    }
    for sql in &MIGRATIONS[found as usize..] {
        tx.execute_batch(sql)
            .map_err(StoreError::sql("apply schema migration"))?;
    }
    if found < SCHEMA_VERSION {
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(StoreError::sql("write schema version"))?;
    }
    tx.commit().map_err(StoreError::sql("commit migration"))?;
    Ok(Migration {
        from: found,
        to: SCHEMA_VERSION,
    })
}

//! Portal sessions (SPEC §5.1): created by a sign-in ([`crate::passwords`]), found by the
//! cookie's secret, kept alive by use, and ended by idling, by age, by sign-out, by a
//! password change and by revocation.
//!
//! The cookie holds a random secret; the index keeps only its SHA-256, as for API tokens.
//! Whether a session still lives is a plain function of its times ([`liveness`]); the rows
//! of sessions that are over, and of failed sign-ins the throttle no longer counts, are
//! deleted by [`Store::purge_portal_rows`], which the daemon runs with its retention sweep.

use chrono::{DateTime, TimeDelta, Utc};
use rand::RngCore;
use rusqlite::{Connection, OptionalExtension, params};

use crate::audit::{self, Event};
use crate::error::StoreError;
use crate::records::{Access, Scope};
use crate::store::Store;
use crate::view::{self, ReadView, ms, parse_col, time_col, token_hash};
use callrec_model::{Role, SiteId, UserId};

/// The portal's rules for sessions and sign-in throttling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalPolicy {
    /// A session unused this long is over.
    pub idle_timeout: TimeDelta,
    /// A session this old is over however much it is used.
    pub absolute_timeout: TimeDelta,
    /// A used session's `last_seen_at` is written at most this often (each write is a
    /// transaction; a page with a player makes several requests).
    pub touch_every: TimeDelta,
    /// The throttle counts failures over this window.
    pub throttle_window: TimeDelta,
    /// Failures allowed per account in the window.
    pub max_failures_per_account: u32,
    /// Failures allowed per client address in the window: more than per account, since one
    /// office behind one NAT address shares it.
    pub max_failures_per_address: u32,
}

impl Default for PortalPolicy {
    fn default() -> Self {
        PortalPolicy {
            idle_timeout: TimeDelta::minutes(30),
            absolute_timeout: TimeDelta::hours(12),
            touch_every: TimeDelta::minutes(1),
            throttle_window: TimeDelta::minutes(15),
            max_failures_per_account: 5,
            max_failures_per_address: 20,
        }
    }
}

/// The person a live session stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionUser {
    /// The session's id: the SHA-256 of the cookie's secret (not itself a secret).
    pub session_id: String,
    /// The user.
    pub user_id: UserId,
    /// The user's site.
    pub site_id: SiteId,
    /// The site's name.
    pub site: String,
    /// The user's extension.
    pub extension: String,
    /// The user's name, if known.
    pub display_name: Option<String>,
    /// The user's role.
    pub role: Role,
    /// The token every form of this session must carry.
    pub csrf_token: String,
    /// When the session was created.
    pub created_at: DateTime<Utc>,
}

impl SessionUser {
    /// The name written to the audit log: the same as the user's API token's.
    pub fn actor(&self) -> String {
        format!("{}@{}", self.extension, self.site)
    }

    /// What this person may see: their own recordings, or their site for an admin.
    pub fn access(&self) -> Access {
        let scope = match self.role {
            Role::Admin => Scope::Site(self.site_id),
            Role::User => Scope::User {
                site: self.site_id,
                user: self.user_id,
            },
        };
        Access {
            actor: self.actor(),
            scope,
        }
    }

    /// Whether `token` is this session's CSRF token (compared in constant time).
    pub fn csrf_matches(&self, token: &str) -> bool {
        constant_time_eq(self.csrf_token.as_bytes(), token.as_bytes())
    }
}

/// A session just created: the secret for the cookie (shown once) and who it is.
#[derive(Clone)]
pub struct NewSession {
    /// The cookie's value.
    pub secret: String,
    /// The person.
    pub user: SessionUser,
}

impl std::fmt::Debug for NewSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewSession")
            .field("secret", &"<redacted>")
            .field("user", &self.user)
            .finish()
    }
}

/// Whether a session is still alive at `now`, and whether its use should be written down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Alive; `touch` when `last_seen_at` is older than the policy's `touch_every`.
    Live {
        /// Write `last_seen_at = now`.
        touch: bool,
    },
    /// Unused for longer than the idle timeout.
    Idle,
    /// Older than the absolute timeout.
    TooOld,
}

/// Decide a session's [`Liveness`] from its times.
pub fn liveness(
    created_at: DateTime<Utc>,
    last_seen_at: DateTime<Utc>,
    now: DateTime<Utc>,
    policy: &PortalPolicy,
) -> Liveness {
    if now - created_at >= policy.absolute_timeout {
        Liveness::TooOld
    } else if now - last_seen_at >= policy.idle_timeout {
        Liveness::Idle
    } else {
        Liveness::Live {
            touch: now - last_seen_at >= policy.touch_every,
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Whether `secret` has the shape of a cookie this store issued (64 hex digits), checked
/// before it is hashed and looked up.
pub fn well_formed_secret(secret: &str) -> bool {
    secret.len() == 64 && secret.bytes().all(|b| b.is_ascii_hexdigit())
}

const SESSION_COLUMNS: &str = "se.id, u.id, s.id, s.name, u.extension, u.display_name, u.role, \
                               se.csrf_token, se.created_at, se.last_seen_at, se.revoked_at";

/// A session row: the person, when it was last used, when it was revoked.
type SessionRow = (SessionUser, DateTime<Utc>, Option<i64>);

fn session_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SessionRow> {
    Ok((
        SessionUser {
            session_id: r.get(0)?,
            user_id: UserId(r.get(1)?),
            site_id: SiteId(r.get(2)?),
            site: r.get(3)?,
            extension: r.get(4)?,
            display_name: r.get(5)?,
            role: parse_col(r, 6)?,
            csrf_token: r.get(7)?,
            created_at: time_col(r, 8)?,
        },
        time_col(r, 9)?,
        r.get(10)?,
    ))
}

fn by_id(conn: &Connection, id: &str) -> Result<Option<SessionRow>, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {SESSION_COLUMNS} FROM sessions se JOIN users u ON u.id = se.user_id
         JOIN sites s ON s.id = u.site_id WHERE se.id = ?1"
    ))
    .and_then(|mut s| s.query_row([id], session_from_row).optional())
    .map_err(StoreError::sql("read session"))
}

/// Open a session for `user` inside the caller's transaction.
pub(crate) fn create(
    tx: &Connection,
    user: UserId,
    address: &str,
    now: DateTime<Utc>,
) -> Result<NewSession, StoreError> {
    let secret = random_hex();
    let id = token_hash(&secret);
    tx.prepare_cached(
        "INSERT INTO sessions (id, user_id, created_at, last_seen_at, csrf_token, address)
         VALUES (?1, ?2, ?3, ?3, ?4, ?5)",
    )
    .and_then(|mut s| s.execute(params![id, user.0, ms(now), random_hex(), address]))
    .map_err(StoreError::sql("insert session"))?;
    let (user, _, _) = by_id(tx, &id)?
        .ok_or_else(|| StoreError::Corrupt("a session just inserted is not there".into()))?;
    Ok(NewSession { secret, user })
}

/// End every live session of `user` inside the caller's transaction; how many there were.
pub(crate) fn revoke_all(
    tx: &Connection,
    user: UserId,
    now: DateTime<Utc>,
    reason: &str,
) -> Result<usize, StoreError> {
    tx.prepare_cached(
        "UPDATE sessions SET revoked_at = ?2, revoked_reason = ?3
         WHERE user_id = ?1 AND revoked_at IS NULL",
    )
    .and_then(|mut s| s.execute(params![user.0, ms(now), reason]))
    .map_err(StoreError::sql("revoke sessions"))
}

/// How long past the throttle's window a failed sign-in is kept before
/// [`Store::purge_portal_rows`] deletes it: the throttle reads only the window, and the
/// margin keeps that true even for a caller whose window is somewhat longer than the
/// purging daemon's.
pub const SIGNIN_FAILURES_MARGIN: TimeDelta = TimeDelta::hours(1);

/// What [`Store::purge_portal_rows`] deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortalPurge {
    /// Sessions that were over: idle too long, too old, or ended (signed out, revoked).
    pub sessions: usize,
    /// Failed sign-ins older than the throttle's window and its margin.
    pub signin_failures: usize,
}

impl ReadView<'_> {
    /// The person behind a session cookie at `now`, if the session lives, and whether its
    /// use should be written down ([`Liveness::Live`]'s `touch`). Reads only, so a page
    /// view waits for no writer unless its session is due a touch.
    pub fn session_at(
        &self,
        secret: &str,
        now: DateTime<Utc>,
        policy: &PortalPolicy,
    ) -> Result<Option<(SessionUser, bool)>, StoreError> {
        if !well_formed_secret(secret) {
            return Ok(None);
        }
        let Some((user, last_seen, revoked)) = by_id(self.conn, &token_hash(secret))? else {
            return Ok(None);
        };
        if revoked.is_some() {
            return Ok(None);
        }
        Ok(match liveness(user.created_at, last_seen, now, policy) {
            Liveness::Idle | Liveness::TooOld => None,
            Liveness::Live { touch } => Some((user, touch)),
        })
    }
}

impl Store {
    /// The person behind a session cookie, if the session lives (not revoked, not idle, not
    /// too old); its use is written down at most once per `touch_every`.
    pub fn session(
        &mut self,
        secret: &str,
        policy: &PortalPolicy,
    ) -> Result<Option<SessionUser>, StoreError> {
        let now = self.now();
        let Some((user, touch)) = self.view().session_at(secret, now, policy)? else {
            return Ok(None);
        };
        if touch {
            self.conn
                .prepare_cached(
                    "UPDATE sessions SET last_seen_at = ?2 WHERE id = ?1 AND last_seen_at < ?2",
                )
                .and_then(|mut s| s.execute(params![user.session_id, ms(now)]))
                .map_err(StoreError::sql("touch session"))?;
        }
        Ok(Some(user))
    }

    /// End the session behind `secret` (sign-out). Audited as `session.signout`. Signing
    /// out of a session that is already over changes nothing and says so (`false`).
    pub fn sign_out(&mut self, secret: &str) -> Result<bool, StoreError> {
        if !well_formed_secret(secret) {
            return Ok(false);
        }
        let now = self.now();
        let id = token_hash(secret);
        let tx = self.begin()?;
        let Some((user, _, revoked)) = by_id(&tx, &id)? else {
            return Ok(false);
        };
        if revoked.is_some() {
            return Ok(false);
        }
        tx.prepare_cached(
            "UPDATE sessions SET revoked_at = ?2, revoked_reason = 'signed out' WHERE id = ?1",
        )
        .and_then(|mut s| s.execute(params![id, ms(now)]))
        .map_err(StoreError::sql("end session"))?;
        audit::append(
            &tx,
            &Event {
                at_ms: ms(now),
                site: Some(user.site_id),
                actor: &user.actor(),
                action: "session.signout",
                target: &format!("session:{}", &id[..12]),
                detail: "{}",
            },
        )?;
        tx.commit().map_err(StoreError::sql("commit sign-out"))?;
        Ok(true)
    }

    /// How many live (not revoked, not expired) sessions `user` has.
    pub fn live_sessions(&self, user: UserId, policy: &PortalPolicy) -> Result<usize, StoreError> {
        let now = self.now();
        let rows: Vec<(i64, i64)> = self
            .conn
            .prepare_cached(
                "SELECT created_at, last_seen_at FROM sessions
                 WHERE user_id = ?1 AND revoked_at IS NULL",
            )
            .and_then(|mut s| {
                s.query_map([user.0], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(StoreError::sql("count sessions"))?;
        let mut live = 0;
        for (created, seen) in rows {
            let state = liveness(view::from_ms(created)?, view::from_ms(seen)?, now, policy);
            if matches!(state, Liveness::Live { .. }) {
                live += 1;
            }
        }
        Ok(live)
    }

    /// Delete the portal's rows that can no longer matter, at the store's clock: sessions
    /// that are over (by [`liveness`]'s rules: unused for the idle timeout, or as old as the
    /// absolute one; or ended at sign-out, a password change or a revocation), and failed
    /// sign-ins older than the throttle's window plus [`SIGNIN_FAILURES_MARGIN`]. A session
    /// still alive and a failure the throttle still counts are kept. Not audited: the
    /// sign-ins, sign-outs and revocations themselves are in the audit log; this only
    /// tidies the tables the daemon purges periodically.
    pub fn purge_portal_rows(&mut self, policy: &PortalPolicy) -> Result<PortalPurge, StoreError> {
        let now = self.now();
        let tx = self.begin()?;
        let sessions = tx
            .prepare_cached(
                "DELETE FROM sessions
                 WHERE revoked_at IS NOT NULL OR created_at <= ?1 OR last_seen_at <= ?2",
            )
            .and_then(|mut s| {
                s.execute(params![
                    ms(now - policy.absolute_timeout),
                    ms(now - policy.idle_timeout)
                ])
            })
            .map_err(StoreError::sql("purge sessions"))?;
        let signin_failures = tx
            .prepare_cached("DELETE FROM signin_failures WHERE at <= ?1")
            .and_then(|mut s| {
                s.execute([ms(now - policy.throttle_window - SIGNIN_FAILURES_MARGIN)])
            })
            .map_err(StoreError::sql("purge sign-in failures"))?;
        tx.commit()
            .map_err(StoreError::sql("commit portal purge"))?;
        Ok(PortalPurge {
            sessions,
            signin_failures,
        })
    }

    /// Record a portal request's own audit entry (a page that lists or shows settings).
    pub fn record_portal_event(
        &mut self,
        user: &SessionUser,
        action: &str,
        target: &str,
        detail: &serde_json::Value,
    ) -> Result<i64, StoreError> {
        self.record_event(Some(user.site_id), &user.actor(), action, target, detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(min: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap() + TimeDelta::minutes(min)
    }

    #[test]
    fn a_session_lives_until_it_idles_thirty_minutes() {
        let p = PortalPolicy::default();
        assert_eq!(
            liveness(at(0), at(0), at(0), &p),
            Liveness::Live { touch: false }
        );
        assert_eq!(
            liveness(at(0), at(0), at(29), &p),
            Liveness::Live { touch: true }
        );
        assert_eq!(liveness(at(0), at(0), at(30), &p), Liveness::Idle);
        assert_eq!(
            liveness(at(0), at(29), at(58), &p),
            Liveness::Live { touch: true }
        );
    }

    #[test]
    fn a_used_session_still_ends_after_twelve_hours() {
        let p = PortalPolicy::default();
        assert_eq!(liveness(at(0), at(719), at(720), &p), Liveness::TooOld);
        assert!(matches!(
            liveness(at(0), at(718), at(719), &p),
            Liveness::Live { .. }
        ));
    }

    #[test]
    fn csrf_tokens_compare_whole() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"", b"a"));
    }

    #[test]
    fn only_64_hex_digit_secrets_are_looked_up() {
        assert!(well_formed_secret(&"a1".repeat(32)));
        assert!(!well_formed_secret(&"a1".repeat(31)));
        assert!(!well_formed_secret(&"zz".repeat(32)));
    }
}

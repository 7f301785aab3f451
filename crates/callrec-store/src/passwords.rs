//! Portal passwords and sign-in (SPEC §5.1): Argon2id hashes, the sign-in throttle, and the
//! one place that turns a correct password into a session.
//!
//! Checking a password is slow on purpose (tens of milliseconds), so in the daemon it never
//! runs under the store's write lock: [`crate::StoreHandle::sign_in`] asks
//! [`Store::sign_in_check`] (account, throttle, hash), verifies on the blocking pool, then
//! hands the verdict to [`Store::finish_sign_in`]. [`Store::sign_in`] does the same three
//! steps in a row for a caller that owns the store. The throttle's decision is a plain
//! function of failure times ([`throttle`]).

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use chrono::{DateTime, TimeDelta, Utc};
use rand::RngCore;
use rusqlite::{OptionalExtension, params};
use serde_json::json;

use crate::audit::{self, Event};
use crate::error::StoreError;
use crate::records::{Access, User};
use crate::sessions::{self, NewSession, PortalPolicy};
use crate::store::Store;
use crate::view::{ReadView, ms};
use callrec_model::{SiteId, UserId};

/// The shortest password accepted, in characters.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// The longest password accepted, in characters (hashing a megabyte is a denial of service).
pub const MAX_PASSWORD_CHARS: usize = 256;

/// Argon2id with the parameters OWASP recommends as a minimum (19 MiB, 2 passes, 1 lane).
/// They are written into every hash, so raising them later still verifies old hashes.
fn argon2() -> Argon2<'static> {
    // The parameters are constants known to be valid; `Params::DEFAULT` is the same set.
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or(Params::DEFAULT);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Whether `password` is acceptable as a new portal password. The value is never repeated
/// in the error.
pub fn check_new_password(password: &str) -> Result<(), StoreError> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(StoreError::invalid(
            "password",
            "(hidden)",
            format!("must be at least {MIN_PASSWORD_CHARS} characters (got {chars})"),
        ));
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(StoreError::invalid(
            "password",
            "(hidden)",
            format!("must be at most {MAX_PASSWORD_CHARS} characters"),
        ));
    }
    if password.chars().any(char::is_control) {
        return Err(StoreError::invalid(
            "password",
            "(hidden)",
            "must not contain control characters (a pasted newline?)",
        ));
    }
    Ok(())
}

/// The Argon2id PHC string of `password` under a fresh random salt.
pub fn hash_password(password: &str) -> Result<String, StoreError> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt)
        .map_err(|e| StoreError::Corrupt(format!("cannot encode a password salt: {e}")))?;
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| StoreError::Corrupt(format!("cannot hash a password: {e}")))
}

/// A hash of a password no one knows, checked when the account does not exist or has no
/// password, so that a wrong account takes as long to refuse as a wrong password.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        hash_password(&hex::encode(secret)).unwrap_or_default()
    })
}

/// Whether `password` matches `hash` (Argon2 compares in constant time). `None` (no such
/// account, or no password set) verifies against a decoy and is always false. A hash that
/// does not parse is logged and false: the user cannot sign in until a password is set again.
pub fn verify_password(hash: Option<&str>, password: &str) -> bool {
    let (stored, real) = match hash {
        Some(h) => (h, true),
        None => (decoy_hash(), false),
    };
    let parsed = match PasswordHash::new(stored) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "a stored password hash does not parse");
            return false;
        }
    };
    let ok = argon2()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok();
    ok && real
}

/// A sign-in as typed on the form.
#[derive(Clone)]
pub struct SignInAttempt {
    /// `extension` or `extension@site`.
    pub account: String,
    /// The password.
    pub password: String,
    /// The client's address (for the throttle and the audit log).
    pub address: String,
}

impl std::fmt::Debug for SignInAttempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignInAttempt")
            .field("account", &self.account)
            .field("password", &"<redacted>")
            .field("address", &self.address)
            .finish()
    }
}

/// How a sign-in ended.
#[derive(Debug)]
pub enum SignIn {
    /// Signed in: the new session (its secret goes into the cookie).
    Granted(NewSession),
    /// Wrong account or password (the two are not told apart).
    Refused,
    /// Too many recent failures for this account or address: try again after `retry_after`.
    Throttled {
        /// How long until an attempt is considered again.
        retry_after: TimeDelta,
    },
}

/// What the store knows before the password is checked.
#[derive(Debug, Clone)]
pub struct SignInCheck {
    /// The throttle's key for the account: the user's id when the account exists, else the
    /// text typed (so `1001` and `1001@default` share one budget).
    account_key: String,
    user: Option<(UserId, SiteId)>,
    /// The stored hash, when the user exists and has a password.
    pub hash: Option<String>,
    /// Refused by the throttle before any password is checked.
    pub throttled: Option<TimeDelta>,
}

/// When the throttle lets the next attempt through, from the failure times (ms, any order)
/// in the window for the account and for the address: `None` when it may go ahead now.
/// With `max` failures allowed per window, an attempt waits until the oldest failure that
/// keeps the count at `max` leaves the window.
pub fn throttle(
    account_failures: &[i64],
    address_failures: &[i64],
    now: DateTime<Utc>,
    policy: &PortalPolicy,
) -> Option<TimeDelta> {
    let window = policy.throttle_window.num_milliseconds();
    let now = ms(now);
    let wait = |failures: &[i64], max: u32| -> Option<i64> {
        let mut recent: Vec<i64> = failures
            .iter()
            .copied()
            .filter(|t| *t > now - window)
            .collect();
        let max = max as usize;
        if recent.len() < max {
            return None;
        }
        recent.sort_unstable();
        // Dropping below `max` takes the first (len - max + 1) failures leaving the window.
        Some(recent[recent.len() - max] + window - now)
    };
    let a = wait(account_failures, policy.max_failures_per_account);
    let b = wait(address_failures, policy.max_failures_per_address);
    a.max(b).map(|ms| TimeDelta::milliseconds(ms.max(1)))
}

/// `extension` or `extension@site`, split.
fn parse_account(account: &str) -> (&str, Option<&str>) {
    match account.trim().rsplit_once('@') {
        Some((ext, site)) => (ext.trim(), Some(site.trim())),
        None => (account.trim(), None),
    }
}

impl Store {
    /// Set (or replace) a user's portal password, revoking every session they have: a
    /// password changed because it leaked must lock the holder of the old one out at once.
    /// Audited as `user.password` (never with the password).
    pub fn set_password(
        &mut self,
        site: &str,
        extension: &str,
        password: &str,
        actor: &str,
    ) -> Result<User, StoreError> {
        check_new_password(password)?;
        let hash = hash_password(password)?;
        self.set_password_hash(site, extension, &hash, actor)
    }

    /// [`Store::set_password`] with the password already checked and hashed, so that a
    /// caller sharing the store ([`crate::StoreHandle::set_password`]) hashes without
    /// holding it.
    pub(crate) fn set_password_hash(
        &mut self,
        site: &str,
        extension: &str,
        hash: &str,
        actor: &str,
    ) -> Result<User, StoreError> {
        let now = self.now();
        let tx = self.begin()?;
        let user = ReadView::new(&tx).user(site, extension)?;
        tx.prepare_cached("UPDATE users SET password_hash = ?2 WHERE id = ?1")
            .and_then(|mut s| s.execute(params![user.id.0, hash]))
            .map_err(StoreError::sql("set password"))?;
        let revoked = sessions::revoke_all(&tx, user.id, now, "password changed")?;
        audit::append(
            &tx,
            &Event {
                at_ms: ms(now),
                site: Some(user.site_id),
                actor,
                action: "user.password",
                target: &format!("user:{site}/{extension}"),
                detail: &json!({"sessions_revoked": revoked}).to_string(),
            },
        )?;
        tx.commit().map_err(StoreError::sql("commit password"))?;
        Ok(user)
    }

    /// Whether `user` has a portal password.
    pub fn has_password(&self, user: UserId) -> Result<bool, StoreError> {
        self.conn
            .prepare_cached("SELECT password_hash IS NOT NULL FROM users WHERE id = ?1")
            .and_then(|mut s| s.query_row([user.0], |r| r.get(0)).optional())
            .map_err(StoreError::sql("read password state"))?
            .ok_or(StoreError::UnknownUserId(user))
    }

    /// The first step of a sign-in: find the account and its hash, and ask the throttle.
    /// Reads only.
    pub fn sign_in_check(
        &self,
        account: &str,
        address: &str,
        policy: &PortalPolicy,
    ) -> Result<SignInCheck, StoreError> {
        let now = self.now();
        let (extension, site) = parse_account(account);
        let found: Option<(i64, i64, Option<String>)> = match site {
            Some(site) => self
                .conn
                .prepare_cached(
                    "SELECT u.id, u.site_id, u.password_hash FROM users u
                     JOIN sites s ON s.id = u.site_id WHERE s.name = ?1 AND u.extension = ?2",
                )
                .and_then(|mut s| {
                    s.query_row([site, extension], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                        .optional()
                })
                .map_err(StoreError::sql("find account"))?,
            None => {
                // Without a site the extension must name one user across all sites; an
                // extension that several sites have needs `@site`.
                let rows = self
                    .conn
                    .prepare_cached(
                        "SELECT id, site_id, password_hash FROM users WHERE extension = ?1 LIMIT 2",
                    )
                    .and_then(|mut s| {
                        s.query_map([extension], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                            .collect::<rusqlite::Result<Vec<_>>>()
                    })
                    .map_err(StoreError::sql("find account"))?;
                match <[_; 1]>::try_from(rows) {
                    Ok([one]) => Some(one),
                    Err(_) => None,
                }
            }
        };
        let account_key = match &found {
            Some((id, _, _)) => format!("user:{id}"),
            None => format!("typed:{}", account.trim().to_lowercase()),
        };
        let since = ms(now) - policy.throttle_window.num_milliseconds();
        let times = |sql: &str, key: &str| -> Result<Vec<i64>, StoreError> {
            self.conn
                .prepare_cached(sql)
                .and_then(|mut s| {
                    s.query_map(params![key, since], |r| r.get(0))?
                        .collect::<rusqlite::Result<Vec<i64>>>()
                })
                .map_err(StoreError::sql("count sign-in failures"))
        };
        let by_account = times(
            "SELECT at FROM signin_failures WHERE account = ?1 AND at > ?2",
            &account_key,
        )?;
        let by_address = times(
            "SELECT at FROM signin_failures WHERE address = ?1 AND at > ?2",
            address,
        )?;
        Ok(SignInCheck {
            account_key,
            user: found.as_ref().map(|(u, s, _)| (UserId(*u), SiteId(*s))),
            hash: found.and_then(|(_, _, h)| h),
            throttled: throttle(&by_account, &by_address, now, policy),
        })
    }

    /// The last step of a sign-in: record a failure (audited `session.signin_failed`) or
    /// open a session (audited `session.signin`). `verified` is what [`verify_password`]
    /// said of the hash in `check`. A success is checked against the throttle again, so
    /// attempts racing in parallel cannot get a correct guess past its limit.
    pub fn finish_sign_in(
        &mut self,
        account: &str,
        address: &str,
        check: SignInCheck,
        verified: bool,
        policy: &PortalPolicy,
    ) -> Result<SignIn, StoreError> {
        let now = self.now();
        let site = check.user.map(|(_, s)| s);
        let failed = |store: &mut Store, reason: &str, record: bool| -> Result<(), StoreError> {
            let tx = store.begin()?;
            if record {
                tx.prepare_cached(
                    "INSERT INTO signin_failures (at, account, address) VALUES (?1, ?2, ?3)",
                )
                .and_then(|mut s| s.execute(params![ms(now), check.account_key, address]))
                .map_err(StoreError::sql("record sign-in failure"))?;
                tx.prepare_cached("DELETE FROM signin_failures WHERE at <= ?1")
                    .and_then(|mut s| {
                        s.execute([ms(now) - policy.throttle_window.num_milliseconds()])
                    })
                    .map_err(StoreError::sql("prune sign-in failures"))?;
            }
            audit::append(
                &tx,
                &Event {
                    at_ms: ms(now),
                    site,
                    actor: &format!("portal:{address}"),
                    action: "session.signin_failed",
                    target: &format!("account:{}", callrec_model::names::excerpt(account)),
                    detail: &json!({"reason": reason, "address": address}).to_string(),
                },
            )?;
            tx.commit()
                .map_err(StoreError::sql("commit sign-in failure"))
        };
        if let Some(retry_after) = check.throttled {
            // Not counted again: the window ends a fixed time after the failures that filled it.
            failed(self, "throttled", false)?;
            return Ok(SignIn::Throttled { retry_after });
        }
        let user = match check.user {
            Some((user, _)) if verified => user,
            Some(_) => {
                failed(self, "wrong password", true)?;
                return Ok(SignIn::Refused);
            }
            None => {
                failed(self, "unknown account", true)?;
                return Ok(SignIn::Refused);
            }
        };
        let recheck = self.sign_in_check(account, address, policy)?;
        if let Some(retry_after) = recheck.throttled {
            failed(self, "throttled", false)?;
            return Ok(SignIn::Throttled { retry_after });
        }
        let tx = self.begin()?;
        tx.prepare_cached("DELETE FROM signin_failures WHERE account = ?1")
            .and_then(|mut s| s.execute([&check.account_key]))
            .map_err(StoreError::sql("clear sign-in failures"))?;
        let session = sessions::create(&tx, user, address, now)?;
        audit::append(
            &tx,
            &Event {
                at_ms: ms(now),
                site,
                actor: &session.user.actor(),
                action: "session.signin",
                target: &format!("session:{}", &session.user.session_id[..12]),
                detail: &json!({"address": address}).to_string(),
            },
        )?;
        tx.commit().map_err(StoreError::sql("commit sign-in"))?;
        Ok(SignIn::Granted(session))
    }

    /// A whole sign-in, for a caller that owns the store (the CLI, tests). The daemon uses
    /// [`crate::StoreHandle::sign_in`], which checks the password outside the write lock.
    pub fn sign_in(
        &mut self,
        attempt: &SignInAttempt,
        policy: &PortalPolicy,
    ) -> Result<SignIn, StoreError> {
        let check = self.sign_in_check(&attempt.account, &attempt.address, policy)?;
        let verified =
            check.throttled.is_none() && verify_password(check.hash.as_deref(), &attempt.password);
        self.finish_sign_in(&attempt.account, &attempt.address, check, verified, policy)
    }

    /// Revoke every session of a user the actor may act for (an admin, or the user
    /// themselves). Returns how many were live. Audited as `session.revoke_all`.
    pub fn revoke_sessions(&mut self, user: UserId, access: &Access) -> Result<usize, StoreError> {
        let now = self.now();
        let tx = self.begin()?;
        let u = ReadView::new(&tx).user_by_id(user)?;
        if !access.may_see(u.site_id, u.id) {
            return Err(StoreError::UnknownUserId(user));
        }
        let n = sessions::revoke_all(&tx, user, now, "revoked")?;
        audit::append(
            &tx,
            &Event {
                at_ms: ms(now),
                site: Some(u.site_id),
                actor: &access.actor,
                action: "session.revoke_all",
                target: &format!("user:{}/{}", u.site, u.extension),
                detail: &json!({"sessions_revoked": n}).to_string(),
            },
        )?;
        tx.commit()
            .map_err(StoreError::sql("commit session revocation"))?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    fn t(s: i64) -> i64 {
        ms(at(s))
    }

    #[test]
    fn four_failures_are_not_throttled_and_the_fifth_is_until_the_first_leaves_the_window() {
        let policy = PortalPolicy::default();
        let four: Vec<i64> = (0..4).map(|i| t(i * 60)).collect();
        assert_eq!(throttle(&four, &[], at(300), &policy), None);
        let five: Vec<i64> = (0..5).map(|i| t(i * 60)).collect();
        // The first failure (t=0) leaves the 15-minute window at t=900.
        assert_eq!(
            throttle(&five, &[], at(300), &policy),
            Some(TimeDelta::seconds(600))
        );
        assert_eq!(throttle(&five, &[], at(900), &policy), None);
    }

    #[test]
    fn an_address_is_throttled_on_its_own_budget() {
        let policy = PortalPolicy::default();
        let many: Vec<i64> = (0..policy.max_failures_per_address as i64).map(t).collect();
        let wait = throttle(&[], &many, at(100), &policy).expect("throttled");
        assert_eq!(wait, TimeDelta::seconds(900 - 100));
        assert_eq!(throttle(&[], &many[1..], at(100), &policy), None);
    }

    #[test]
    fn the_longer_of_the_two_waits_wins() {
        let policy = PortalPolicy::default();
        let account: Vec<i64> = (0..5).map(|i| t(100 + i)).collect();
        let address: Vec<i64> = (0..20).map(t).collect();
        assert_eq!(
            throttle(&account, &address, at(200), &policy),
            Some(TimeDelta::seconds(900 + 100 - 200))
        );
    }

    #[test]
    fn a_password_verifies_against_its_own_hash_only() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(verify_password(Some(&hash), "correct horse battery"));
        assert!(!verify_password(Some(&hash), "correct horse battery "));
        assert!(!verify_password(None, "correct horse battery"));
        assert!(!verify_password(
            Some("not a hash"),
            "correct horse battery"
        ));
        // Two hashes of one password differ (fresh salt).
        assert_ne!(hash, hash_password("correct horse battery").unwrap());
    }

    #[test]
    fn short_long_and_control_character_passwords_are_refused_without_echoing_them() {
        for bad in ["short", "elevenchars", &"x".repeat(257), "twelve chars\n"] {
            let e = check_new_password(bad).unwrap_err().to_string();
            assert!(!e.contains(bad.trim()), "{e}");
        }
        check_new_password("twelve chars").unwrap();
    }

    #[test]
    fn accounts_split_at_the_last_at_sign() {
        assert_eq!(parse_account(" 1001 "), ("1001", None));
        assert_eq!(parse_account("1001@default"), ("1001", Some("default")));
    }
}

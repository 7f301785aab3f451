-- The portal (issue 10, SPEC §5.1): passwords, server-side sessions and sign-in throttling.

-- A user's portal password as an Argon2id PHC string (salt and parameters inside it). NULL:
-- no password set, so the user cannot sign in to the portal (API tokens still work).
ALTER TABLE users ADD COLUMN password_hash TEXT;

-- Portal sessions. Only the SHA-256 of the cookie's secret is kept (hex, as `id`), like API
-- tokens: a copy of the index signs no one in. A session ends when it idles too long, when it
-- is too old (both decided by the store with its clock), at sign-out, at a password change and
-- at revocation (`revoked_at` set).
CREATE TABLE sessions (
    id             TEXT PRIMARY KEY,
    user_id        INTEGER NOT NULL REFERENCES users (id),
    created_at     INTEGER NOT NULL,
    last_seen_at   INTEGER NOT NULL,
    -- Sent back in every form the session posts (CSRF, SPEC §5.1).
    csrf_token     TEXT NOT NULL,
    -- The client's address at sign-in, for the audit log and the user's own list.
    address        TEXT NOT NULL,
    revoked_at     INTEGER,
    revoked_reason TEXT
);
CREATE INDEX sessions_user_live ON sessions (user_id) WHERE revoked_at IS NULL;

-- Failed sign-ins in the throttle's window, per account and per address. Rows older than
-- the window are pruned as new ones are written; the audit log keeps the history.
CREATE TABLE signin_failures (
    id      INTEGER PRIMARY KEY,
    at      INTEGER NOT NULL,
    account TEXT NOT NULL,
    address TEXT NOT NULL
);
CREATE INDEX signin_failures_account ON signin_failures (account, at);
CREATE INDEX signin_failures_address ON signin_failures (address, at);

-- callrec index schema: migration 0.
--
-- This file is the one definition of the schema (SPEC §4.2). `callrec-store` embeds it with
-- `include_str!` and applies it, with any later migrations (append-only, in
-- `crates/callrec-store/src/migrate.rs`), in one exclusive transaction tracked by
-- `PRAGMA user_version`. Never edit it once released: add a migration instead.
--
-- Conventions:
-- * Every time is an INTEGER: milliseconds since the Unix epoch, UTC. It sorts, compares and
--   indexes cheaply and means the same thing in SQLite and PostgreSQL (SPEC §10).
-- * Enumerations are stored as their one spelling (`model.rs`), checked here.
-- * `recordings.seq` is the internal row number that segments, notes and the search indexes
--   point at; `recordings.id` (a UUIDv7) is the public id.

-- Small key/value facts about the index itself.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);

-- Bumped by every change to sites, users or their numbers (triggers below), so a daemon
-- holding a directory snapshot learns cheaply that it must reload, whoever made the change
-- (the API, or `callrec user add` from another process).
INSERT INTO meta (key, value) VALUES ('directory_version', 1);

CREATE TABLE sites (
    id              INTEGER PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    enabled         INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    default_mode    TEXT NOT NULL DEFAULT 'always_pausable'
                    CHECK (default_mode IN ('never', 'always', 'always_pausable', 'on_demand')),
    retention_days  INTEGER NOT NULL DEFAULT 180 CHECK (retention_days >= 1),
    legal_hold      INTEGER NOT NULL DEFAULT 0 CHECK (legal_hold IN (0, 1)),
    pause_behavior  TEXT NOT NULL DEFAULT 'silence' CHECK (pause_behavior IN ('silence', 'skip')),
    min_seconds     INTEGER NOT NULL DEFAULT 3 CHECK (min_seconds >= 0),
    timezone        TEXT NOT NULL DEFAULT 'UTC',
    country_code    INTEGER NOT NULL DEFAULT 44,
    national_prefix TEXT NOT NULL DEFAULT '0',
    quota_bytes     INTEGER NOT NULL DEFAULT 1073741824 CHECK (quota_bytes >= 1),
    quota_policy    TEXT NOT NULL DEFAULT 'alert' CHECK (quota_policy IN ('alert', 'evict_oldest'))
);

-- The site every installation has out of the box (SPEC §1).
INSERT INTO sites (name) VALUES ('default');

CREATE TABLE users (
    id           INTEGER PRIMARY KEY,
    site_id      INTEGER NOT NULL REFERENCES sites (id),
    extension    TEXT NOT NULL,
    display_name TEXT,
    mode         TEXT NOT NULL CHECK (mode IN ('never', 'always', 'always_pausable', 'on_demand')),
    role         TEXT NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    created_at   INTEGER NOT NULL,
    UNIQUE (site_id, extension)
);

-- Extra numbers (DIDs) of a user, raw as typed and normalised (SPEC §1.1). A number belongs to
-- at most one user of a site.
CREATE TABLE user_numbers (
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    site_id    INTEGER NOT NULL REFERENCES sites (id),
    raw        TEXT NOT NULL,
    normalised TEXT NOT NULL,
    PRIMARY KEY (user_id, normalised),
    UNIQUE (site_id, normalised)
);

CREATE TRIGGER sites_bump_directory_insert AFTER INSERT ON sites BEGIN
    UPDATE meta SET value = value + 1 WHERE key = 'directory_version';
END;
CREATE TRIGGER sites_bump_directory_update AFTER UPDATE ON sites BEGIN
    UPDATE meta SET value = value + 1 WHERE key = 'directory_version';
END;
CREATE TRIGGER users_bump_directory_insert AFTER INSERT ON users BEGIN
    UPDATE meta SET value = value + 1 WHERE key = 'directory_version';
END;
CREATE TRIGGER users_bump_directory_update AFTER UPDATE ON users BEGIN
    UPDATE meta SET value = value + 1 WHERE key = 'directory_version';
END;
CREATE TRIGGER users_bump_directory_delete AFTER DELETE ON users BEGIN
    UPDATE meta SET value = value + 1 WHERE key = 'directory_version';
END;
CREATE TRIGGER user_numbers_bump_directory_insert AFTER INSERT ON user_numbers BEGIN
    UPDATE meta SET value = value + 1 WHERE key = 'directory_version';
END;
CREATE TRIGGER user_numbers_bump_directory_delete AFTER DELETE ON user_numbers BEGIN
    UPDATE meta SET value = value + 1 WHERE key = 'directory_version';
END;

CREATE TABLE recordings (
    seq          INTEGER PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    site_id      INTEGER NOT NULL REFERENCES sites (id),
    user_id      INTEGER NOT NULL REFERENCES users (id),
    call_uuid    TEXT NOT NULL,
    direction    TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound', 'internal')),
    from_raw     TEXT NOT NULL,
    from_norm    TEXT NOT NULL,
    to_raw       TEXT NOT NULL,
    to_norm      TEXT NOT NULL,
    started_at   INTEGER NOT NULL,
    -- Set when the switch closed the file (RECORD_STOP, or found closed by reconciliation).
    -- A row still `recording` with `ended_at` set is an ingest under way: the reconcile pass
    -- finishes it after a crash.
    ended_at     INTEGER,
    duration_ms  INTEGER,
    paused_ms    INTEGER NOT NULL DEFAULT 0,
    size_bytes   INTEGER,
    sha256       TEXT,
    format       TEXT NOT NULL,
    -- Where the switch writes the file (absolute).
    spool_path   TEXT NOT NULL,
    -- Where the file lives in the store, relative to `<data_dir>/store/`, fixed when the row is
    -- created so a crash between the rename and the commit is recoverable from the row alone.
    store_path   TEXT NOT NULL UNIQUE,
    file_name    TEXT NOT NULL,
    state        TEXT NOT NULL
                 CHECK (state IN ('recording', 'stored', 'discarded', 'failed', 'deleted')),
    -- Why a recording was discarded, failed or deleted.
    state_reason TEXT,
    expires_at   INTEGER,
    hold         INTEGER NOT NULL DEFAULT 0 CHECK (hold IN (0, 1)),
    note_count   INTEGER NOT NULL DEFAULT 0,
    deleted_at   INTEGER
);

-- Search (SPEC §5): newest first with keyset pagination on (started_at, seq). Every index ends
-- in started_at so the first page of any filter is read in order, without a sort; SQLite
-- appends seq (the rowid) to every index, which breaks ties.
CREATE INDEX recordings_site_started ON recordings (site_id, started_at);
CREATE INDEX recordings_user_started ON recordings (user_id, started_at);
CREATE INDEX recordings_from_started ON recordings (site_id, from_norm, started_at);
CREATE INDEX recordings_to_started ON recordings (site_id, to_norm, started_at);
CREATE INDEX recordings_direction_started ON recordings (site_id, direction, started_at);
CREATE INDEX recordings_duration_started ON recordings (site_id, started_at, duration_ms);
CREATE INDEX recordings_notes_started ON recordings (site_id, started_at) WHERE note_count > 0;
CREATE INDEX recordings_hold_started ON recordings (site_id, started_at) WHERE hold = 1;
-- Retention (SPEC §4.3): the sweeper's victims, oldest expiry first.
CREATE INDEX recordings_expiry ON recordings (expires_at)
    WHERE state IN ('stored', 'failed') AND hold = 0;
-- Quota eviction (SPEC §4.4): a user's oldest deletable recordings.
CREATE INDEX recordings_user_evictable ON recordings (user_id, started_at)
    WHERE state IN ('stored', 'failed') AND hold = 0;
-- Reconciliation: rows the switch may still be writing.
CREATE INDEX recordings_in_progress ON recordings (started_at) WHERE state = 'recording';
CREATE INDEX recordings_call ON recordings (call_uuid);
CREATE INDEX recordings_spool ON recordings (spool_path);

CREATE TABLE segments (
    id            INTEGER PRIMARY KEY,
    recording_seq INTEGER NOT NULL REFERENCES recordings (seq),
    kind          TEXT NOT NULL CHECK (kind IN ('start', 'pause', 'resume', 'stop')),
    at            INTEGER NOT NULL,
    source        TEXT NOT NULL CHECK (source IN ('handset', 'api', 'policy')),
    actor         TEXT NOT NULL
);
CREATE INDEX segments_recording ON segments (recording_seq, at);

CREATE TABLE notes (
    id            INTEGER PRIMARY KEY,
    recording_seq INTEGER NOT NULL REFERENCES recordings (seq),
    author        TEXT NOT NULL,
    at            INTEGER NOT NULL,
    text          TEXT NOT NULL
);
CREATE INDEX notes_recording ON notes (recording_seq, at);

-- Text in notes (`q`): a trigram index matches any substring of three characters or more,
-- case-insensitively, which is what someone typing part of a note expects.
CREATE VIRTUAL TABLE notes_text USING fts5 (
    text, content = 'notes', content_rowid = 'id', tokenize = 'trigram'
);
CREATE TRIGGER notes_text_insert AFTER INSERT ON notes BEGIN
    INSERT INTO notes_text (rowid, text) VALUES (new.id, new.text);
END;
CREATE TRIGGER notes_text_delete AFTER DELETE ON notes BEGIN
    INSERT INTO notes_text (notes_text, rowid, text) VALUES ('delete', old.id, old.text);
END;

-- Files to remove once their deletion committed: a store file of a recording just deleted,
-- or a spool file copied into the store from another filesystem. The removal is recorded in
-- the transaction that makes it safe, done after the commit, and then forgotten; a crash in
-- between leaves the entry for the reconcile pass to finish.
CREATE TABLE pending_removals (
    path   TEXT PRIMARY KEY,
    reason TEXT NOT NULL
);

-- Bytes and files held per user (SPEC §4.4), kept in step with `recordings` by the store in
-- the same transaction as every ingest and deletion, so reading usage never scans recordings.
CREATE TABLE usage (
    user_id INTEGER PRIMARY KEY REFERENCES users (id),
    bytes   INTEGER NOT NULL DEFAULT 0,
    files   INTEGER NOT NULL DEFAULT 0
);

-- API tokens: only the SHA-256 of the secret is kept; the secret is shown once.
CREATE TABLE api_tokens (
    id            INTEGER PRIMARY KEY,
    user_id       INTEGER NOT NULL REFERENCES users (id),
    label         TEXT NOT NULL DEFAULT '',
    secret_sha256 TEXT NOT NULL UNIQUE,
    created_at    INTEGER NOT NULL,
    revoked_at    INTEGER
);

-- The append-only, hash-chained audit log (SPEC §4.5). hash = sha256(prev_hash || canonical
-- bytes of the entry); `callrec verify` walks the chain. The triggers stop the product itself
-- from ever rewriting history; the chain catches anyone who goes around them.
CREATE TABLE audit_log (
    seq       INTEGER PRIMARY KEY,
    at        INTEGER NOT NULL,
    site_id   INTEGER,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    target    TEXT NOT NULL,
    detail    TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);
CREATE INDEX audit_log_site ON audit_log (site_id, seq);
CREATE INDEX audit_log_target ON audit_log (target, seq);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;

-- Webhooks (issue 13, SPEC §5.2): a persistent outbox. An event is written by a trigger in the
-- same transaction as the recording's change, with one delivery per endpoint that wants it, so
-- no code path can change a recording without its events and a restart loses none. The
-- delivery worker (crate callrec-webhooks) sends them; nothing here waits for it.

-- Where events go. `source = 'config'` rows mirror `[webhooks] urls` (kept in step at start;
-- their secret is the config's and is not stored here); `source = 'api'` rows are created by
-- an admin for their site and keep their own secret, which signing needs in the clear.
CREATE TABLE webhook_endpoints (
    id              INTEGER PRIMARY KEY,
    url             TEXT NOT NULL,
    source          TEXT NOT NULL CHECK (source IN ('config', 'api')),
    -- NULL: every site's events (config endpoints).
    site_id         INTEGER REFERENCES sites (id),
    secret          TEXT,
    enabled         INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    created_at      INTEGER NOT NULL,
    created_by      TEXT NOT NULL,
    -- Delivery state, per endpoint: consecutive failures drive its backoff.
    failures        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL DEFAULT 0,
    last_success_at INTEGER,
    last_failure_at INTEGER,
    last_error      TEXT,
    UNIQUE (url, source, site_id)
);

-- One row per thing that happened. The body is composed when it is sent, from the recording
-- as it is then (an erased number is not sent on afterwards); `id` is what receivers
-- de-duplicate on, since delivery is at least once.
CREATE TABLE webhook_events (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    id            TEXT NOT NULL UNIQUE,
    kind          TEXT NOT NULL CHECK (kind IN ('recording.stored', 'recording.failed',
                  'recording.discarded', 'recording.deleted', 'call.not_recorded')),
    recording_seq INTEGER NOT NULL REFERENCES recordings (seq),
    site_id       INTEGER NOT NULL,
    at            INTEGER NOT NULL
);

CREATE TABLE webhook_deliveries (
    event_seq    INTEGER NOT NULL REFERENCES webhook_events (seq),
    endpoint_id  INTEGER NOT NULL REFERENCES webhook_endpoints (id),
    state        TEXT NOT NULL DEFAULT 'pending'
                 CHECK (state IN ('pending', 'delivered', 'expired', 'cancelled')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_status  INTEGER,
    last_error   TEXT,
    done_at      INTEGER,
    PRIMARY KEY (endpoint_id, event_seq)
) WITHOUT ROWID;
-- The worker's queue: an endpoint's pending deliveries, oldest first.
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (endpoint_id, event_seq)
    WHERE state = 'pending';

-- Only while some endpoint wants the site's events: without one (the default) a retention
-- sweep's deletions cost nothing more, and an endpoint added later gets what happens from then
-- on. The times are the clock of the transaction that writes them (unixepoch('subsec') is SQLite's
-- own; the store's clock is the system's too).
CREATE TRIGGER webhook_events_state AFTER UPDATE OF state ON recordings
WHEN new.state <> old.state AND new.state IN ('stored', 'failed', 'discarded', 'deleted')
BEGIN
    INSERT INTO webhook_events (id, kind, recording_seq, site_id, at)
    SELECT lower(hex(randomblob(16))), 'recording.' || new.state, new.seq, new.site_id,
           CAST(unixepoch('subsec') * 1000 AS INTEGER)
    WHERE EXISTS (SELECT 1 FROM webhook_endpoints e WHERE e.enabled = 1
                  AND (e.site_id IS NULL OR e.site_id = new.site_id));
    -- A failed recording of a user whose mode says every call is recorded: a call that
    -- should have been recorded and was not (MiFID II, FCA).
    INSERT INTO webhook_events (id, kind, recording_seq, site_id, at)
    SELECT lower(hex(randomblob(16))), 'call.not_recorded', new.seq, new.site_id,
           CAST(unixepoch('subsec') * 1000 AS INTEGER)
    FROM users u
    WHERE new.state = 'failed' AND u.id = new.user_id
      AND u.mode IN ('always', 'always_pausable')
      AND EXISTS (SELECT 1 FROM webhook_endpoints e WHERE e.enabled = 1
                  AND (e.site_id IS NULL OR e.site_id = new.site_id));
END;

CREATE TRIGGER webhook_deliveries_fan_out AFTER INSERT ON webhook_events
BEGIN
    INSERT INTO webhook_deliveries (event_seq, endpoint_id)
    SELECT new.seq, e.id FROM webhook_endpoints e
    WHERE e.enabled = 1 AND (e.site_id IS NULL OR e.site_id = new.site_id);
END;

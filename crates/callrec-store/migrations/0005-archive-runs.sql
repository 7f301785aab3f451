-- Archive clients' run reports (issue 11): each `callrec archive` run tells the server what it
-- did (counts, bytes, errors, the last change it followed), so a site's admins see which
-- clients archive it and whether their last runs went well. Keyed by site, client name and
-- user: several clients (different tokens or machines) may archive one site.
CREATE TABLE archive_runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    site_id     INTEGER NOT NULL REFERENCES sites (id),
    -- No foreign key: a user removed later keeps their runs' history, named by `actor`.
    user_id     INTEGER NOT NULL,
    actor       TEXT NOT NULL,
    token_id    INTEGER NOT NULL,
    client      TEXT NOT NULL,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER NOT NULL,
    reported_at INTEGER NOT NULL,
    downloaded  INTEGER NOT NULL CHECK (downloaded >= 0),
    skipped     INTEGER NOT NULL CHECK (skipped >= 0),
    failed      INTEGER NOT NULL CHECK (failed >= 0),
    bytes       INTEGER NOT NULL CHECK (bytes >= 0),
    last_seq    INTEGER NOT NULL CHECK (last_seq >= 0),
    dry_run     INTEGER NOT NULL DEFAULT 0,
    errors      TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX archive_runs_client ON archive_runs (site_id, client, user_id, id);

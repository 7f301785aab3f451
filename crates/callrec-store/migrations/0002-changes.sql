-- The change feed (issue 11, SPEC §5.3): every change to a recording an archive client cares
-- about, in a strictly increasing sequence, written by triggers in the same transaction as
-- the change itself, so no code path can change a recording without its entry. Site and user
-- are copied in so a scoped follower reads its own changes from an index, at any archive
-- size.
CREATE TABLE changes (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    kind          TEXT NOT NULL
                  CHECK (kind IN ('stored', 'failed', 'deleted', 'hold', 'release', 'note')),
    recording_seq INTEGER NOT NULL REFERENCES recordings (seq),
    site_id       INTEGER NOT NULL,
    user_id       INTEGER NOT NULL
);
CREATE INDEX changes_site ON changes (site_id, seq);
CREATE INDEX changes_user ON changes (user_id, seq);

CREATE TRIGGER changes_state AFTER UPDATE OF state ON recordings
WHEN new.state <> old.state AND new.state IN ('stored', 'failed', 'deleted')
BEGIN
    INSERT INTO changes (kind, recording_seq, site_id, user_id)
    VALUES (new.state, new.seq, new.site_id, new.user_id);
END;

CREATE TRIGGER changes_hold AFTER UPDATE OF hold ON recordings
WHEN new.hold <> old.hold
BEGIN
    INSERT INTO changes (kind, recording_seq, site_id, user_id)
    VALUES (CASE WHEN new.hold = 1 THEN 'hold' ELSE 'release' END, new.seq, new.site_id,
            new.user_id);
END;

CREATE TRIGGER changes_note AFTER INSERT ON notes
BEGIN
    INSERT INTO changes (kind, recording_seq, site_id, user_id)
    SELECT 'note', r.seq, r.site_id, r.user_id FROM recordings r WHERE r.seq = new.recording_seq;
END;

-- What an index that predates the feed already holds: one entry per recording, in the order
-- the recordings were created.
INSERT INTO changes (kind, recording_seq, site_id, user_id)
SELECT state, seq, site_id, user_id FROM recordings
WHERE state IN ('stored', 'failed', 'deleted')
ORDER BY seq;

-- Auto-resume (issue 13): a paused recording resumes by itself after this many seconds; 0 is
-- off (the default), so a site keeps its behaviour until an admin sets it.
ALTER TABLE sites ADD COLUMN max_pause_seconds INTEGER NOT NULL DEFAULT 0
    CHECK (max_pause_seconds >= 0);

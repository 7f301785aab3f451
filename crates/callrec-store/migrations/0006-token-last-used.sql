-- When a token was last used (issue 12): ms since the epoch, written at most once a minute per
-- token by the API (a write per request would cost every request the index's write lock);
-- NULL: never used since this version.
ALTER TABLE api_tokens ADD COLUMN last_used_at INTEGER;

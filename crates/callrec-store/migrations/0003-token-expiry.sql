-- Tokens that expire (issue 12): after `expires_at` (ms since the epoch) a token no longer
-- authenticates; NULL never expires (the tokens made before this version).
ALTER TABLE api_tokens ADD COLUMN expires_at INTEGER;

-- The refresh digest a rotation replaced: presenting that one again is reuse of a token that was
-- really issued (revoke the session); any other wrong secret is just invalid.
ALTER TABLE sessions ADD COLUMN previous_refresh_hash bytea;

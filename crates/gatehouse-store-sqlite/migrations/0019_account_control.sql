-- An operator can disable an account (issue 26, ASVS 7.4.5): while `disabled_at` is set the
-- account cannot sign in, refresh, or have its API keys used. Re-enabling clears it.
ALTER TABLE users ADD COLUMN disabled_at INTEGER;

-- An operator can disable an account (issue 26, ASVS 7.4.5): while `disabled_at` is set the
-- account cannot sign in, refresh, or have its API keys used. Re-enabling clears it.
ALTER TABLE users ADD COLUMN disabled_at INTEGER;

-- When an admin last ended the member's sessions in the organisation (ASVS 7.4.2): a session the
-- member opened before then, in another organisation, cannot switch into this one.
ALTER TABLE memberships ADD COLUMN sessions_ended_at INTEGER;

-- An operator can disable an account (issue 26, ASVS 7.4.5): while `disabled_at` is set the
-- account cannot sign in, refresh, or have its API keys used. Re-enabling clears it. The users
-- table already has row-level security (0011): the column is read and written under the
-- named_subject and email_lookup policies, like the rest of the row.
ALTER TABLE users ADD COLUMN disabled_at timestamptz;

-- When an admin last ended the member's sessions in the organisation (ASVS 7.4.2): a session the
-- member opened before then, in another organisation, cannot switch into this one. Written and
-- read under the memberships table's existing policies (0011).
ALTER TABLE memberships ADD COLUMN sessions_ended_at timestamptz;

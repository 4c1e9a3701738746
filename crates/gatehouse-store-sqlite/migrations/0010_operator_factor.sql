-- An operator's TOTP factor lives on the operator's row: one factor, stored only once confirmed
-- (the CLI checks a first code before it writes), so envelope and confirmation are set together.
ALTER TABLE operators ADD COLUMN totp_envelope BLOB;
ALTER TABLE operators ADD COLUMN totp_confirmed_at INTEGER;
ALTER TABLE operators ADD COLUMN totp_last_step INTEGER NOT NULL DEFAULT 0 CHECK (totp_last_step >= 0);

-- Ending an operator's sessions ends the impersonations they started, found by this index.
CREATE INDEX sessions_by_impersonator ON sessions (impersonator_id) WHERE impersonator_id IS NOT NULL;

-- Second factors, one-time tokens, the platform data key and the mail outbox. All are platform
-- rows (no org_id): a user's factor, tokens and mail are theirs, not any one organisation's.

-- A random key for platform-owned sealed values, stored only wrapped under the master key.
CREATE TABLE platform_keys (
    version     INTEGER NOT NULL PRIMARY KEY,
    wrapped     BLOB    NOT NULL,
    kek_version INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;

ALTER TABLE users ADD COLUMN email_verified_at INTEGER;

-- When the password (auth_at) and a second factor (mfa_at) were last checked for the session.
-- SQLite cannot add a NOT NULL column without a default: existing rows then take their
-- created_at, and every insert names auth_at.
ALTER TABLE sessions ADD COLUMN auth_at INTEGER NOT NULL DEFAULT 0;
UPDATE sessions SET auth_at = created_at;
ALTER TABLE sessions ADD COLUMN mfa_at INTEGER;

-- A user's TOTP factor: the seed sealed under the platform key; unconfirmed until a first code.
-- last_step is the last time step a code was accepted for (only later ones are).
CREATE TABLE totp_factors (
    user_id      BLOB    NOT NULL PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    envelope     BLOB    NOT NULL,
    created_at   INTEGER NOT NULL,
    confirmed_at INTEGER,
    last_step    INTEGER NOT NULL DEFAULT 0 CHECK (last_step >= 0)
) STRICT;

-- Only the digest of a recovery code is stored.
CREATE TABLE recovery_codes (
    digest     BLOB    NOT NULL PRIMARY KEY,
    user_id    BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    used_at    INTEGER
) STRICT;
CREATE INDEX recovery_codes_by_user ON recovery_codes (user_id);

-- Single-use tokens (sign-in challenges, password resets, email verification), by digest.
CREATE TABLE one_time_tokens (
    digest     BLOB    NOT NULL PRIMARY KEY,
    purpose    TEXT    NOT NULL
        CHECK (purpose IN ('sign_in_challenge', 'password_reset', 'email_verification')),
    subject_id BLOB    NOT NULL,
    detail     TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
) STRICT;
CREATE INDEX one_time_tokens_by_subject ON one_time_tokens (subject_id, purpose);

-- Queued mail: the whole message is one sealed envelope, emptied once delivered. A worker leases
-- a message by moving next_attempt_at past now.
CREATE TABLE mail_outbox (
    id              BLOB    NOT NULL PRIMARY KEY,
    envelope        BLOB    NOT NULL,
    created_at      INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at INTEGER NOT NULL,
    sent_at         INTEGER,
    last_error      TEXT
) STRICT;
CREATE INDEX mail_outbox_due ON mail_outbox (next_attempt_at, created_at) WHERE sent_at IS NULL;

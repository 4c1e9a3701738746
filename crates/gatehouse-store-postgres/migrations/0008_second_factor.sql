-- Second factors, one-time tokens, the platform data key and the mail outbox. All are platform
-- rows (no org_id, so no row-level security): a user's factor, tokens and mail are theirs, not
-- any one organisation's.

-- A random key for platform-owned sealed values, stored only wrapped under the master key.
CREATE TABLE platform_keys (
    version     integer     NOT NULL PRIMARY KEY,
    wrapped     bytea       NOT NULL,
    kek_version integer     NOT NULL,
    created_at  timestamptz NOT NULL
);

ALTER TABLE users ADD COLUMN email_verified_at timestamptz;

-- When the password (auth_at) and a second factor (mfa_at) were last checked for the session;
-- existing sessions were authenticated when they were created.
ALTER TABLE sessions ADD COLUMN auth_at timestamptz;
UPDATE sessions SET auth_at = created_at;
ALTER TABLE sessions ALTER COLUMN auth_at SET NOT NULL;
ALTER TABLE sessions ADD COLUMN mfa_at timestamptz;

-- A user's TOTP factor: the seed sealed under the platform key; unconfirmed until a first code.
-- last_step is the last time step a code was accepted for (only later ones are).
CREATE TABLE totp_factors (
    user_id      uuid        NOT NULL PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    envelope     bytea       NOT NULL,
    created_at   timestamptz NOT NULL,
    confirmed_at timestamptz,
    last_step    bigint      NOT NULL DEFAULT 0 CHECK (last_step >= 0)
);

-- Only the digest of a recovery code is stored.
CREATE TABLE recovery_codes (
    digest     bytea       NOT NULL PRIMARY KEY,
    user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL,
    used_at    timestamptz
);
CREATE INDEX recovery_codes_by_user ON recovery_codes (user_id);

-- Single-use tokens (sign-in challenges, password resets, email verification), by digest.
CREATE TABLE one_time_tokens (
    digest     bytea       NOT NULL PRIMARY KEY,
    purpose    text        NOT NULL
        CHECK (purpose IN ('sign_in_challenge', 'password_reset', 'email_verification')),
    subject_id uuid        NOT NULL,
    detail     text        NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);
CREATE INDEX one_time_tokens_by_subject ON one_time_tokens (subject_id, purpose);

-- Queued mail: the whole message is one sealed envelope, emptied once delivered. A worker leases
-- a message by moving next_attempt_at past now (claimed with FOR UPDATE SKIP LOCKED).
CREATE TABLE mail_outbox (
    id              uuid        NOT NULL PRIMARY KEY,
    envelope        bytea       NOT NULL,
    created_at      timestamptz NOT NULL,
    attempts        integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz NOT NULL,
    sent_at         timestamptz,
    last_error      text
);
CREATE INDEX mail_outbox_due ON mail_outbox (next_attempt_at, created_at) WHERE sent_at IS NULL;

-- Keys are added and rewrapped, never deleted; tokens and mail are spent or marked, never
-- deleted; a factor and its recovery codes are removed together.
GRANT SELECT, INSERT, UPDATE ON platform_keys, one_time_tokens, mail_outbox TO gatehouse_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON totp_factors, recovery_codes TO gatehouse_app;

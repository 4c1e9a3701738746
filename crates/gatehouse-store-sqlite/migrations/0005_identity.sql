-- Identity: custom roles, invitations, platform operators and sessions; signing keys gain a
-- purpose (audit checkpoints or access tokens) so one rewrap path covers both.

-- Memberships may name a custom role: the built-in CHECK is replaced by a name pattern check.
CREATE TABLE memberships_v2 (
    org_id     BLOB    NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_id    BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       TEXT    NOT NULL CHECK (length(role) BETWEEN 1 AND 40),
    created_at INTEGER NOT NULL,
    PRIMARY KEY (org_id, user_id)
) STRICT;
INSERT INTO memberships_v2 SELECT org_id, user_id, role, created_at FROM memberships;
DROP TABLE memberships;
ALTER TABLE memberships_v2 RENAME TO memberships;
CREATE INDEX memberships_page ON memberships (org_id, created_at, user_id);
CREATE INDEX memberships_by_user ON memberships (user_id);

CREATE TABLE roles (
    org_id      BLOB    NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name        TEXT    NOT NULL,
    permissions TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (org_id, name)
) STRICT;

CREATE TABLE invitations (
    id          BLOB    NOT NULL PRIMARY KEY,
    org_id      BLOB    NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    email       TEXT    NOT NULL,
    role        TEXT    NOT NULL,
    token_hash  BLOB    NOT NULL UNIQUE,
    invited_by  BLOB    NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    accepted_at INTEGER
) STRICT;
CREATE INDEX invitations_by_org ON invitations (org_id, created_at);

CREATE TABLE operators (
    id            BLOB    NOT NULL PRIMARY KEY,
    email         TEXT    NOT NULL UNIQUE,
    name          TEXT    NOT NULL,
    password_hash TEXT    NOT NULL,
    created_at    INTEGER NOT NULL
) STRICT;

-- A session is one device's sign-in. subject_id is a user, or an operator for the operator tier.
-- For impersonation it is the impersonated user and impersonator_id the operator.
CREATE TABLE sessions (
    id              BLOB    NOT NULL PRIMARY KEY,
    subject_id      BLOB    NOT NULL,
    tier            TEXT    NOT NULL CHECK (tier IN ('customer', 'operator', 'impersonation')),
    org_id          BLOB,
    impersonator_id BLOB,
    reason          TEXT,
    device_name     TEXT    NOT NULL,
    user_agent      TEXT,
    ip              TEXT,
    refresh_hash    BLOB    NOT NULL,
    created_at      INTEGER NOT NULL,
    last_seen_at    INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    revoked_at      INTEGER
) STRICT;
CREATE INDEX sessions_by_subject ON sessions (subject_id, created_at);

ALTER TABLE signing_keys ADD COLUMN purpose TEXT NOT NULL DEFAULT 'audit'
    CHECK (purpose IN ('audit', 'token'));

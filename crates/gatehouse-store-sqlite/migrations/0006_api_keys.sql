-- API keys: only the SHA-256 of a key is stored. The platform index maps a digest to its
-- organisation and key (no secret), so a presented key finds its tenant scope.

CREATE TABLE api_keys (
    id           BLOB    NOT NULL PRIMARY KEY,
    org_id       BLOB    NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name         TEXT    NOT NULL,
    prefix       TEXT    NOT NULL,
    last4        TEXT    NOT NULL,
    digest       BLOB    NOT NULL UNIQUE,
    permissions  TEXT    NOT NULL,
    namespace    TEXT,
    rate_limit   INTEGER,
    created_by   TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    revoked_at   INTEGER,
    last_used_at INTEGER
) STRICT;
CREATE INDEX api_keys_page ON api_keys (org_id, created_at, id);

CREATE TABLE api_key_index (
    digest BLOB NOT NULL PRIMARY KEY,
    org_id BLOB NOT NULL,
    key_id BLOB NOT NULL
) STRICT;

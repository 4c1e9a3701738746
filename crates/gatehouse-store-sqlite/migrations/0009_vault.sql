-- The shared-secrets vault and transit settings. Only metadata is here: each version's value is a
-- sealed field. Secrets are deleted softly (deleted_at), so a name is unique among the live ones.

CREATE TABLE secrets (
    org_id          BLOB    NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    id              BLOB    NOT NULL,
    name            TEXT    NOT NULL,
    description     TEXT,
    current_version INTEGER NOT NULL CHECK (current_version >= 1),
    created_by      TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    expires_at      INTEGER,
    deleted_at      INTEGER,
    PRIMARY KEY (org_id, id)
) STRICT;
CREATE UNIQUE INDEX secrets_live_name ON secrets (org_id, name) WHERE deleted_at IS NULL;
CREATE INDEX secrets_page ON secrets (org_id, created_at, id);

CREATE TABLE secret_versions (
    org_id     BLOB    NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    secret_id  BLOB    NOT NULL,
    version    INTEGER NOT NULL CHECK (version >= 1),
    created_by TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (org_id, secret_id, version),
    FOREIGN KEY (org_id, secret_id) REFERENCES secrets (org_id, id) ON DELETE CASCADE
) STRICT;

-- The lowest data-key version transit ciphertexts may use; no row until transit is first used.
CREATE TABLE transit_settings (
    org_id      BLOB    NOT NULL PRIMARY KEY REFERENCES organizations (id) ON DELETE CASCADE,
    min_version INTEGER NOT NULL CHECK (min_version >= 0)
) STRICT;

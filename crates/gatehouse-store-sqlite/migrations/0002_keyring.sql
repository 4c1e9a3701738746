-- The keyring: master-key (KEK) versions, per-organisation data keys (DEKs) stored only wrapped,
-- and every sealed field in one table so that re-encryption can walk them.

CREATE TABLE kek_versions (
    version     INTEGER NOT NULL PRIMARY KEY,
    check_value BLOB    NOT NULL UNIQUE,
    state       TEXT    NOT NULL CHECK (state IN ('active', 'retired')),
    created_at  INTEGER NOT NULL
) STRICT;

ALTER TABLE organizations ADD COLUMN keys_shredded_at INTEGER;

CREATE TABLE org_keys (
    org_id      BLOB    NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    version     INTEGER NOT NULL,
    wrapped     BLOB    NOT NULL,
    kek_version INTEGER NOT NULL REFERENCES kek_versions (version),
    state       TEXT    NOT NULL CHECK (state IN ('active', 'retired')),
    encryptions INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (org_id, version)
) STRICT;

CREATE TABLE sealed_fields (
    org_id      BLOB    NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    kind        TEXT    NOT NULL,
    record_id   TEXT    NOT NULL,
    field       TEXT    NOT NULL,
    dek_version INTEGER NOT NULL,
    envelope    BLOB    NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (org_id, kind, record_id, field)
) STRICT;
CREATE INDEX sealed_fields_by_version ON sealed_fields (org_id, dek_version);

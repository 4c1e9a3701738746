-- Signed checkpoints over audit chain heads, and the Ed25519 keys that sign them (the seed stored
-- only wrapped under the master key).

CREATE TABLE signing_keys (
    version     INTEGER NOT NULL PRIMARY KEY,
    public_key  BLOB    NOT NULL,
    wrapped     BLOB    NOT NULL,
    kek_version INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE audit_checkpoints (
    org_id      BLOB    NOT NULL,
    seq         INTEGER NOT NULL,
    hash        BLOB    NOT NULL,
    at          INTEGER NOT NULL,
    key_version INTEGER NOT NULL,
    signature   BLOB    NOT NULL,
    PRIMARY KEY (org_id, seq)
) STRICT;

CREATE TABLE operator_audit_checkpoints (
    seq         INTEGER NOT NULL PRIMARY KEY,
    hash        BLOB    NOT NULL,
    at          INTEGER NOT NULL,
    key_version INTEGER NOT NULL,
    signature   BLOB    NOT NULL
) STRICT;

CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;
CREATE TRIGGER operator_audit_checkpoints_no_update BEFORE UPDATE ON operator_audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;
CREATE TRIGGER operator_audit_checkpoints_no_delete BEFORE DELETE ON operator_audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;

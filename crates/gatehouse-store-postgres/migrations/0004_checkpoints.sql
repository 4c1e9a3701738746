-- Signed checkpoints over audit chain heads, and the Ed25519 keys that sign them (the seed stored
-- only wrapped under the master key).

CREATE TABLE signing_keys (
    version     integer     NOT NULL PRIMARY KEY,
    public_key  bytea       NOT NULL,
    wrapped     bytea       NOT NULL,
    kek_version integer     NOT NULL,
    created_at  timestamptz NOT NULL
);

CREATE TABLE audit_checkpoints (
    org_id      uuid        NOT NULL,
    seq         bigint      NOT NULL,
    hash        bytea       NOT NULL,
    at          timestamptz NOT NULL,
    key_version integer     NOT NULL,
    signature   bytea       NOT NULL,
    PRIMARY KEY (org_id, seq)
);

CREATE TABLE operator_audit_checkpoints (
    seq         bigint      NOT NULL PRIMARY KEY,
    hash        bytea       NOT NULL,
    at          timestamptz NOT NULL,
    key_version integer     NOT NULL,
    signature   bytea       NOT NULL
);

ALTER TABLE audit_checkpoints ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_checkpoints FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_checkpoints
    USING (org_id = gatehouse_current_org())
    WITH CHECK (org_id = gatehouse_current_org());

GRANT SELECT, INSERT, UPDATE ON signing_keys TO gatehouse_app;
GRANT SELECT, INSERT ON audit_checkpoints, operator_audit_checkpoints TO gatehouse_app;

CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION gatehouse_audit_append_only();
CREATE TRIGGER operator_audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON operator_audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION gatehouse_audit_append_only();

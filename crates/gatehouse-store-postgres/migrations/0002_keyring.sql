-- The keyring: master-key (KEK) versions (platform), per-organisation data keys stored only
-- wrapped, and every sealed field in one table (both tenant tables, under forced RLS).

CREATE TABLE kek_versions (
    version     integer     NOT NULL PRIMARY KEY,
    check_value bytea       NOT NULL UNIQUE,
    state       text        NOT NULL CHECK (state IN ('active', 'retired')),
    created_at  timestamptz NOT NULL
);

ALTER TABLE organizations ADD COLUMN keys_shredded_at timestamptz;

CREATE TABLE org_keys (
    org_id      uuid        NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    version     integer     NOT NULL,
    wrapped     bytea       NOT NULL,
    kek_version integer     NOT NULL REFERENCES kek_versions (version),
    state       text        NOT NULL CHECK (state IN ('active', 'retired')),
    encryptions bigint      NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (org_id, version)
);

CREATE TABLE sealed_fields (
    org_id      uuid        NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    kind        text        NOT NULL,
    record_id   text        NOT NULL,
    field       text        NOT NULL,
    dek_version integer     NOT NULL,
    envelope    bytea       NOT NULL,
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (org_id, kind, record_id, field)
);
CREATE INDEX sealed_fields_by_version ON sealed_fields (org_id, dek_version);

ALTER TABLE org_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE org_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON org_keys
    USING (org_id = gatehouse_current_org())
    WITH CHECK (org_id = gatehouse_current_org());

ALTER TABLE sealed_fields ENABLE ROW LEVEL SECURITY;
ALTER TABLE sealed_fields FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON sealed_fields
    USING (org_id = gatehouse_current_org())
    WITH CHECK (org_id = gatehouse_current_org());

GRANT SELECT, INSERT, UPDATE ON kek_versions TO gatehouse_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON org_keys, sealed_fields TO gatehouse_app;

-- The shared-secrets vault and transit settings. Only metadata is here: each version's value is a
-- sealed field. Secrets are deleted softly (deleted_at), so a name is unique among the live ones.
-- All three are tenant tables under forced row-level security.

CREATE TABLE secrets (
    org_id          uuid        NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    id              uuid        NOT NULL,
    name            text        NOT NULL,
    description     text,
    current_version integer     NOT NULL CHECK (current_version >= 1),
    created_by      text        NOT NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    expires_at      timestamptz,
    deleted_at      timestamptz,
    PRIMARY KEY (org_id, id)
);
CREATE UNIQUE INDEX secrets_live_name ON secrets (org_id, name) WHERE deleted_at IS NULL;
CREATE INDEX secrets_page ON secrets (org_id, created_at, id);

CREATE TABLE secret_versions (
    org_id     uuid        NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    secret_id  uuid        NOT NULL,
    version    integer     NOT NULL CHECK (version >= 1),
    created_by text        NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (org_id, secret_id, version),
    FOREIGN KEY (org_id, secret_id) REFERENCES secrets (org_id, id) ON DELETE CASCADE
);

-- The lowest data-key version transit ciphertexts may use; no row until transit is first used.
CREATE TABLE transit_settings (
    org_id      uuid    NOT NULL PRIMARY KEY REFERENCES organizations (id) ON DELETE CASCADE,
    min_version integer NOT NULL CHECK (min_version >= 0)
);

ALTER TABLE secrets ENABLE ROW LEVEL SECURITY;
ALTER TABLE secrets FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON secrets
    USING (org_id = gatehouse_current_org())
    WITH CHECK (org_id = gatehouse_current_org());
ALTER TABLE secret_versions ENABLE ROW LEVEL SECURITY;
ALTER TABLE secret_versions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON secret_versions
    USING (org_id = gatehouse_current_org())
    WITH CHECK (org_id = gatehouse_current_org());
ALTER TABLE transit_settings ENABLE ROW LEVEL SECURITY;
ALTER TABLE transit_settings FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON transit_settings
    USING (org_id = gatehouse_current_org())
    WITH CHECK (org_id = gatehouse_current_org());

-- Nothing here is deleted by the application: a secret is marked deleted, its versions stay, and
-- the transit floor is only set. Versions are written once.
GRANT SELECT, INSERT, UPDATE ON secrets, transit_settings TO gatehouse_app;
GRANT SELECT, INSERT ON secret_versions TO gatehouse_app;

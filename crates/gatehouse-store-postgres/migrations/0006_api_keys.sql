-- API keys: only the SHA-256 of a key is stored. The platform index maps a digest to its
-- organisation and key (no secret), so a presented key finds its tenant scope.

CREATE TABLE api_keys (
    id           uuid        NOT NULL PRIMARY KEY,
    org_id       uuid        NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name         text        NOT NULL,
    prefix       text        NOT NULL,
    last4        text        NOT NULL,
    digest       bytea       NOT NULL UNIQUE,
    permissions  text        NOT NULL,
    namespace    text,
    rate_limit   integer,
    created_by   text        NOT NULL,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz,
    revoked_at   timestamptz,
    last_used_at timestamptz
);
CREATE INDEX api_keys_page ON api_keys (org_id, created_at, id);

ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON api_keys
    USING (org_id = gatehouse_current_org())
    WITH CHECK (org_id = gatehouse_current_org());

CREATE TABLE api_key_index (
    digest bytea NOT NULL PRIMARY KEY,
    org_id uuid  NOT NULL,
    key_id uuid  NOT NULL
);

GRANT SELECT, INSERT, UPDATE ON api_keys TO gatehouse_app;
GRANT SELECT, INSERT ON api_key_index TO gatehouse_app;

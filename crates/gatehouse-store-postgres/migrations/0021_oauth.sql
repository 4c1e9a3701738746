-- OAuth (issue 24): the states of authorizations sent to providers, organisations' own
-- providers, and connectors (B3): a person's account at a provider, whose tokens are sealed
-- fields (kind `connector_token`) under the organisation's data key, never columns here.

-- One row per authorization started, found by the SHA-256 of the state's nonce and spent once.
-- The PKCE verifier and the OpenID nonce are sealed under the platform key. A sign-in through a
-- provider may not know its organisation yet, so `org_id` may be empty. Under forced row-level
-- security: a statement sees the state whose digest it declares (gatehouse.digest), the rows of
-- the organisation whose scope it is in, or, for the pruning job, every row.
CREATE TABLE oauth_states (
    digest          bytea       NOT NULL PRIMARY KEY,
    purpose         text        NOT NULL CHECK (purpose IN ('connector', 'sso')),
    org_id          uuid        REFERENCES organizations (id) ON DELETE CASCADE,
    user_id         uuid,
    provider        text        NOT NULL,
    verifier_sealed bytea       NOT NULL,
    nonce_sealed    bytea       NOT NULL,
    created_at      timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,
    spent_at        timestamptz
);
CREATE INDEX oauth_states_expiry ON oauth_states (expires_at);
ALTER TABLE oauth_states ENABLE ROW LEVEL SECURITY;
ALTER TABLE oauth_states FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON oauth_states
    USING (org_id = gatehouse_current_org())
    WITH CHECK (org_id = gatehouse_current_org());
CREATE POLICY digest_lookup ON oauth_states
    USING (digest = gatehouse_named_digest())
    WITH CHECK (digest = gatehouse_named_digest());
CREATE POLICY pruning ON oauth_states FOR DELETE
    USING (gatehouse_current_job() = 'prune');
CREATE POLICY pruning_read ON oauth_states FOR SELECT
    USING (gatehouse_current_job() = 'prune');
GRANT SELECT, INSERT, UPDATE, DELETE ON oauth_states TO gatehouse_app;

-- An organisation's own providers; the client secret is a sealed field (`oauth_client_secret`).
CREATE TABLE oauth_providers (
    org_id            uuid        NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    id                uuid        NOT NULL,
    name              text        NOT NULL,
    issuer            text,
    authorization_url text,
    token_url         text,
    revocation_url    text,
    userinfo_url      text,
    jwks_url          text,
    client_id         text        NOT NULL,
    client_auth       text        NOT NULL,
    scopes            text        NOT NULL,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    PRIMARY KEY (org_id, id),
    CONSTRAINT oauth_providers_name_key UNIQUE (org_id, name)
);
ALTER TABLE oauth_providers ENABLE ROW LEVEL SECURITY;
ALTER TABLE oauth_providers FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON oauth_providers
    USING (org_id = gatehouse_current_org())
    WITH CHECK (org_id = gatehouse_current_org());
GRANT SELECT, INSERT, UPDATE, DELETE ON oauth_providers TO gatehouse_app;

CREATE TABLE connectors (
    org_id         uuid        NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    id             uuid        NOT NULL,
    user_id        uuid        NOT NULL,
    provider       text        NOT NULL,
    status         text        NOT NULL CHECK (status IN ('active', 'needs_reauth')),
    scopes         text        NOT NULL,
    expires_at     timestamptz,
    refresh_due_at timestamptz,
    failures       integer     NOT NULL DEFAULT 0 CHECK (failures >= 0),
    last_error     text,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    PRIMARY KEY (org_id, id)
);
CREATE INDEX connectors_page ON connectors (org_id, created_at, id);
CREATE INDEX connectors_due ON connectors (refresh_due_at) WHERE refresh_due_at IS NOT NULL;
ALTER TABLE connectors ENABLE ROW LEVEL SECURITY;
ALTER TABLE connectors FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON connectors
    USING (org_id = gatehouse_current_org())
    WITH CHECK (org_id = gatehouse_current_org());
-- The refresh job (gatehouse.job = 'connectors') finds the connectors due across organisations
-- (ids only); it refreshes each inside its organisation's scope.
CREATE POLICY refresh_due ON connectors FOR SELECT
    USING (gatehouse_current_job() = 'connectors');
GRANT SELECT, INSERT, UPDATE, DELETE ON connectors TO gatehouse_app;

-- OAuth (issue 24): the states of authorizations sent to providers, organisations' own
-- providers, and connectors (B3): a person's account at a provider, whose tokens are sealed
-- fields (kind `connector_token`) under the organisation's data key, never columns here.

-- One row per authorization started, found by the SHA-256 of the state's nonce and spent once.
-- The PKCE verifier and the OpenID nonce are sealed under the platform key. A sign-in through a
-- provider may not know its organisation yet, so `org_id` may be empty.
CREATE TABLE oauth_states (
    digest          BLOB    NOT NULL PRIMARY KEY,
    purpose         TEXT    NOT NULL CHECK (purpose IN ('connector', 'sso')),
    org_id          BLOB    REFERENCES organizations (id) ON DELETE CASCADE,
    user_id         BLOB,
    provider        TEXT    NOT NULL,
    verifier_sealed BLOB    NOT NULL,
    nonce_sealed    BLOB    NOT NULL,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    spent_at        INTEGER
) STRICT;
CREATE INDEX oauth_states_expiry ON oauth_states (expires_at);

-- An organisation's own providers; the client secret is a sealed field (`oauth_client_secret`).
CREATE TABLE oauth_providers (
    org_id            BLOB    NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    id                BLOB    NOT NULL,
    name              TEXT    NOT NULL,
    issuer            TEXT,
    authorization_url TEXT,
    token_url         TEXT,
    revocation_url    TEXT,
    userinfo_url      TEXT,
    jwks_url          TEXT,
    client_id         TEXT    NOT NULL,
    client_auth       TEXT    NOT NULL,
    scopes            TEXT    NOT NULL,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    PRIMARY KEY (org_id, id),
    CONSTRAINT oauth_providers_name_key UNIQUE (org_id, name)
) STRICT;

CREATE TABLE connectors (
    org_id         BLOB    NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    id             BLOB    NOT NULL,
    user_id        BLOB    NOT NULL,
    provider       TEXT    NOT NULL,
    status         TEXT    NOT NULL CHECK (status IN ('active', 'needs_reauth')),
    scopes         TEXT    NOT NULL,
    expires_at     INTEGER,
    refresh_due_at INTEGER,
    failures       INTEGER NOT NULL DEFAULT 0 CHECK (failures >= 0),
    last_error     TEXT,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    PRIMARY KEY (org_id, id)
) STRICT;
CREATE INDEX connectors_page ON connectors (org_id, created_at, id);
CREATE INDEX connectors_due ON connectors (refresh_due_at) WHERE refresh_due_at IS NOT NULL;

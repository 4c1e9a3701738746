-- Identity: custom roles, invitations, platform operators and sessions; signing keys gain a
-- purpose (audit checkpoints or access tokens) so one rewrap path covers both.

ALTER TABLE memberships DROP CONSTRAINT memberships_role_check;
ALTER TABLE memberships ADD CONSTRAINT memberships_role_check
    CHECK (length(role) BETWEEN 1 AND 40);

-- A user may read their own memberships across organisations (sign-in picks one) when the
-- transaction names them in gatehouse.user_id; every other tenant row stays behind the org scope.
CREATE FUNCTION gatehouse_current_user() RETURNS uuid
    LANGUAGE sql STABLE
    AS $$ SELECT NULLIF(current_setting('gatehouse.user_id', true), '')::uuid $$;
GRANT EXECUTE ON FUNCTION gatehouse_current_user() TO gatehouse_app;
CREATE POLICY own_memberships ON memberships FOR SELECT
    USING (user_id = gatehouse_current_user());

CREATE TABLE roles (
    org_id      uuid        NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name        text        NOT NULL,
    permissions text        NOT NULL,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (org_id, name)
);

CREATE TABLE invitations (
    id          uuid        NOT NULL PRIMARY KEY,
    org_id      uuid        NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    email       text        NOT NULL,
    role        text        NOT NULL,
    token_hash  bytea       NOT NULL UNIQUE,
    invited_by  uuid        NOT NULL,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    accepted_at timestamptz
);
CREATE INDEX invitations_by_org ON invitations (org_id, created_at);

ALTER TABLE roles ENABLE ROW LEVEL SECURITY;
ALTER TABLE roles FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON roles
    USING (org_id = gatehouse_current_org())
    WITH CHECK (org_id = gatehouse_current_org());
ALTER TABLE invitations ENABLE ROW LEVEL SECURITY;
ALTER TABLE invitations FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON invitations
    USING (org_id = gatehouse_current_org())
    WITH CHECK (org_id = gatehouse_current_org());

CREATE TABLE operators (
    id            uuid        NOT NULL PRIMARY KEY,
    email         text        NOT NULL UNIQUE,
    name          text        NOT NULL,
    password_hash text        NOT NULL,
    created_at    timestamptz NOT NULL
);

-- A session is one device's sign-in. subject_id is a user, or an operator for the operator tier.
-- For impersonation it is the impersonated user and impersonator_id the operator.
CREATE TABLE sessions (
    id              uuid        NOT NULL PRIMARY KEY,
    subject_id      uuid        NOT NULL,
    tier            text        NOT NULL CHECK (tier IN ('customer', 'operator', 'impersonation')),
    org_id          uuid,
    impersonator_id uuid,
    reason          text,
    device_name     text        NOT NULL,
    user_agent      text,
    ip              text,
    refresh_hash    bytea       NOT NULL,
    created_at      timestamptz NOT NULL,
    last_seen_at    timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,
    revoked_at      timestamptz
);
CREATE INDEX sessions_by_subject ON sessions (subject_id, created_at);

ALTER TABLE signing_keys ADD COLUMN purpose text NOT NULL DEFAULT 'audit'
    CHECK (purpose IN ('audit', 'token'));

GRANT SELECT, INSERT, UPDATE, DELETE ON roles, invitations, operators, sessions TO gatehouse_app;

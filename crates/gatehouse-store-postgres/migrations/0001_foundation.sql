-- Runs as the role that owns the schema. The server connects as gatehouse_app (or a login role
-- that is a member of it): it owns no table, cannot bypass row-level security, and only gets the
-- privileges granted below.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gatehouse_app') THEN
        CREATE ROLE gatehouse_app NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL; -- another database in the cluster created it at the same moment
END
$$;

-- The organisation a transaction is scoped to, from SET LOCAL / set_config(..., true). NULL when
-- unset, so a query without a scope matches no tenant row. A malformed value fails the query.
CREATE FUNCTION gatehouse_current_org() RETURNS uuid
    LANGUAGE sql STABLE
    AS $$ SELECT NULLIF(current_setting('gatehouse.org_id', true), '')::uuid $$;

-- Platform tables.
CREATE TABLE organizations (
    id         uuid        NOT NULL PRIMARY KEY,
    name       text        NOT NULL,
    created_at timestamptz NOT NULL
);

CREATE TABLE users (
    id            uuid        NOT NULL PRIMARY KEY,
    email         text        NOT NULL,
    name          text        NOT NULL,
    password_hash text        NOT NULL,
    created_at    timestamptz NOT NULL,
    CONSTRAINT users_email_key UNIQUE (email)
);

-- Tenant tables: every row carries org_id; row-level security is enabled and forced.
CREATE TABLE memberships (
    org_id     uuid        NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       text        NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
    created_at timestamptz NOT NULL,
    PRIMARY KEY (org_id, user_id)
);
CREATE INDEX memberships_page ON memberships (org_id, created_at, user_id);
CREATE INDEX memberships_by_user ON memberships (user_id);

ALTER TABLE memberships ENABLE ROW LEVEL SECURITY;
ALTER TABLE memberships FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON memberships
    USING (org_id = gatehouse_current_org())
    WITH CHECK (org_id = gatehouse_current_org());

GRANT USAGE ON SCHEMA public TO gatehouse_app;
GRANT EXECUTE ON FUNCTION gatehouse_current_org() TO gatehouse_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON organizations, users, memberships TO gatehouse_app;

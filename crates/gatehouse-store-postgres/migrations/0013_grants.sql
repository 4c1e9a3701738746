-- Grants between organisations (C4): org_id grants grantee_org_id access to its records that are
-- not private, limited to types and namespaces when those lists are not empty (',a,b,' lists).
-- A grant is live until revoked_at or expires_at, judged against gatehouse.now, which the store
-- sets from the injected clock in every transaction that reads granted records.
CREATE TABLE grants (
    org_id         uuid        NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    id             uuid        NOT NULL,
    grantee_org_id uuid        NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    types          text        NOT NULL DEFAULT '',
    namespaces     text        NOT NULL DEFAULT '',
    access         text        NOT NULL CHECK (access IN ('read', 'read_write')),
    created_by     text        NOT NULL,
    created_at     timestamptz NOT NULL,
    expires_at     timestamptz,
    revoked_at     timestamptz,
    PRIMARY KEY (org_id, id),
    CHECK (grantee_org_id <> org_id)
);
CREATE INDEX grants_incoming ON grants (grantee_org_id, org_id);

-- The time the transaction judges expiry by. NULL when unset: then no grant with an expiry is
-- live, so a transaction that forgot to set it sees less, never more.
CREATE FUNCTION gatehouse_now() RETURNS timestamptz
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, public
    AS $$ SELECT NULLIF(current_setting('gatehouse.now', true), '')::timestamptz $$;
GRANT EXECUTE ON FUNCTION gatehouse_now() TO gatehouse_app;

-- Whether a live grant from org to the current organisation covers a record of type and
-- namespace (a namespace holding a comma, accepted before 0013, is covered only by a grant of
-- every namespace). SECURITY INVOKER: it reads grants under grants' own policies. Its search path is
-- fixed, so a temporary table named grants cannot stand in for the real one.
CREATE FUNCTION gatehouse_granted(org uuid, rtype text, rnamespace text) RETURNS boolean
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, public
    AS $$
        SELECT EXISTS (
            SELECT 1 FROM public.grants g
            WHERE g.org_id = org
              AND g.grantee_org_id = gatehouse_current_org()
              AND g.revoked_at IS NULL
              AND (g.expires_at IS NULL OR g.expires_at > gatehouse_now())
              AND (g.types = '' OR strpos(g.types, ',' || rtype || ',') > 0)
              AND (g.namespaces = ''
                   OR (rnamespace IS NOT NULL AND strpos(rnamespace, ',') = 0
                       AND strpos(g.namespaces, ',' || rnamespace || ',') > 0)))
    $$;
GRANT EXECUTE ON FUNCTION gatehouse_granted(uuid, text, text) TO gatehouse_app;

ALTER TABLE grants ENABLE ROW LEVEL SECURITY;
ALTER TABLE grants FORCE ROW LEVEL SECURITY;
-- The granting organisation manages its grants; the grantee reads the ones made to it.
CREATE POLICY tenant_isolation ON grants
    USING (org_id = gatehouse_current_org())
    WITH CHECK (org_id = gatehouse_current_org());
CREATE POLICY grantee_reads ON grants FOR SELECT
    USING (grantee_org_id = gatehouse_current_org());

-- A second, permissive policy on records: another organisation's record that is neither private
-- nor expired is visible, for reading only, where a live grant to the current organisation
-- covers it (without gatehouse.now, a record with an expiry is not).
CREATE POLICY granted_read ON records FOR SELECT
    USING (level <> 'private'
           AND (expires_at IS NULL OR expires_at > gatehouse_now())
           AND gatehouse_granted(org_id, type, namespace));

GRANT SELECT, INSERT, UPDATE, DELETE ON grants TO gatehouse_app;

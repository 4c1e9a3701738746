-- Grants between organisations (C4): org_id grants grantee_org_id access to its records that are
-- not private, limited to types and namespaces when those lists are not empty (',a,b,' lists).
-- A grant is live until revoked_at or expires_at, judged against the injected clock's time,
-- which every query passes.
CREATE TABLE grants (
    org_id         BLOB    NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    id             BLOB    NOT NULL,
    grantee_org_id BLOB    NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    types          TEXT    NOT NULL DEFAULT '',
    namespaces     TEXT    NOT NULL DEFAULT '',
    access         TEXT    NOT NULL CHECK (access IN ('read', 'read_write')),
    created_by     TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER,
    revoked_at     INTEGER,
    PRIMARY KEY (org_id, id),
    CHECK (grantee_org_id <> org_id)
) STRICT;
CREATE INDEX grants_incoming ON grants (grantee_org_id, org_id);

-- The product's records (C3): typed, owned, at an access level, under forced row-level security.
-- The content, when there is one, is a sealed field (kind 'record') under the organisation's
-- data key. allowed and tags are ',a,b,' lists so a ',x,' search matches whole entries.
CREATE TABLE records (
    org_id      uuid        NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    id          uuid        NOT NULL,
    type        text        NOT NULL,
    external_id text        NOT NULL,
    namespace   text,
    owner       text        NOT NULL,
    level       text        NOT NULL CHECK (level IN ('private', 'organization', 'public')),
    allowed     text        NOT NULL DEFAULT '',
    tags        text        NOT NULL DEFAULT '',
    has_content boolean     NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    expires_at  timestamptz,
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, type, external_id)
);
CREATE INDEX records_page ON records (org_id, created_at, id);

ALTER TABLE records ENABLE ROW LEVEL SECURITY;
ALTER TABLE records FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON records
    USING (org_id = gatehouse_current_org())
    WITH CHECK (org_id = gatehouse_current_org());

GRANT SELECT, INSERT, UPDATE, DELETE ON records TO gatehouse_app;

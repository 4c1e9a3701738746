-- The product's records (C3): typed, owned, at an access level. The content, when there is one,
-- is a sealed field (kind 'record') under the organisation's data key. allowed and tags are
-- ',a,b,' lists so a ',x,' search matches whole entries.
CREATE TABLE records (
    org_id      BLOB    NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    id          BLOB    NOT NULL,
    type        TEXT    NOT NULL,
    external_id TEXT    NOT NULL,
    namespace   TEXT,
    owner       TEXT    NOT NULL,
    level       TEXT    NOT NULL CHECK (level IN ('private', 'organization', 'public')),
    allowed     TEXT    NOT NULL DEFAULT '',
    tags        TEXT    NOT NULL DEFAULT '',
    has_content INTEGER NOT NULL CHECK (has_content IN (0, 1)),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    expires_at  INTEGER,
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, type, external_id)
) STRICT;
CREATE INDEX records_page ON records (org_id, created_at, id);

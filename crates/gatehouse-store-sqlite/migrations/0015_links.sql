-- Links and messaging (F1, F2, issue 21).

-- HMAC keys for links Gatehouse recognises without a row per link (share viewer passes,
-- unsubscribe links): random, stored only wrapped under the master key, like platform_keys.
CREATE TABLE link_keys (
    version     INTEGER NOT NULL PRIMARY KEY,
    wrapped     BLOB    NOT NULL,
    kek_version INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;

-- Share links (F1): only the SHA-256 of a link's token is stored; a password only as an
-- Argon2id hash. generation moves when the password changes, ending viewer passes issued before.
CREATE TABLE share_links (
    org_id        BLOB    NOT NULL,
    id            BLOB    NOT NULL,
    record_id     BLOB    NOT NULL,
    digest        BLOB    NOT NULL UNIQUE,
    password_hash TEXT,
    generation    INTEGER NOT NULL DEFAULT 0 CHECK (generation >= 0),
    expires_at    INTEGER NOT NULL,
    max_views     INTEGER CHECK (max_views IS NULL OR max_views > 0),
    views         INTEGER NOT NULL DEFAULT 0 CHECK (views >= 0),
    created_by    TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    revoked_at    INTEGER,
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, record_id) REFERENCES records (org_id, id) ON DELETE CASCADE
) STRICT;
CREATE INDEX share_links_of_record ON share_links (org_id, record_id, created_at, id);

-- An organisation's opt-out list (F2): recipients by the SHA-256 of their lower-cased address,
-- per list. Consulted before every send of the organisation's product mail.
CREATE TABLE mail_opt_outs (
    org_id     BLOB    NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    recipient  BLOB    NOT NULL,
    list       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (org_id, recipient, list)
) STRICT;

-- Product mail names its organisation and list, so delivery can consult the opt-out list.
-- Gatehouse's own security mail (resets, verification) has neither and is never suppressed.
ALTER TABLE mail_outbox ADD COLUMN org_id BLOB;
ALTER TABLE mail_outbox ADD COLUMN list TEXT;

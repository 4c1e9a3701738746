-- Links and messaging (F1, F2, issue 21).

-- HMAC keys for links Gatehouse recognises without a row per link (share viewer passes,
-- unsubscribe links): random, stored only wrapped under the master key, like platform_keys
-- (and, like it, platform key material without row-level security).
CREATE TABLE link_keys (
    version     integer     NOT NULL PRIMARY KEY,
    wrapped     bytea       NOT NULL,
    kek_version integer     NOT NULL,
    created_at  timestamptz NOT NULL
);
GRANT SELECT, INSERT, UPDATE ON link_keys TO gatehouse_app;

-- Share links (F1): only the SHA-256 of a link's token is stored; a password only as an
-- Argon2id hash. generation moves when the password changes, ending viewer passes issued before.
CREATE TABLE share_links (
    org_id        uuid        NOT NULL,
    id            uuid        NOT NULL,
    record_id     uuid        NOT NULL,
    digest        bytea       NOT NULL UNIQUE,
    password_hash text,
    generation    integer     NOT NULL DEFAULT 0 CHECK (generation >= 0),
    expires_at    timestamptz NOT NULL,
    max_views     integer     CHECK (max_views IS NULL OR max_views > 0),
    views         integer     NOT NULL DEFAULT 0 CHECK (views >= 0),
    created_by    text        NOT NULL,
    created_at    timestamptz NOT NULL,
    revoked_at    timestamptz,
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, record_id) REFERENCES records (org_id, id) ON DELETE CASCADE
);
CREATE INDEX share_links_of_record ON share_links (org_id, record_id, created_at, id);
ALTER TABLE share_links ENABLE ROW LEVEL SECURITY;
ALTER TABLE share_links FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON share_links
    USING (org_id = gatehouse_current_org())
    WITH CHECK (org_id = gatehouse_current_org());
-- Opening a link finds its organisation by the presented token's digest, and nothing else.
CREATE POLICY digest_lookup ON share_links FOR SELECT
    USING (digest = gatehouse_named_digest());
GRANT SELECT, INSERT, UPDATE, DELETE ON share_links TO gatehouse_app;

-- An organisation's opt-out list (F2): recipients by the SHA-256 of their lower-cased address,
-- per list. Consulted before every send of the organisation's product mail.
CREATE TABLE mail_opt_outs (
    org_id     uuid        NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    recipient  bytea       NOT NULL,
    list       text        NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (org_id, recipient, list)
);
ALTER TABLE mail_opt_outs ENABLE ROW LEVEL SECURITY;
ALTER TABLE mail_opt_outs FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON mail_opt_outs
    USING (org_id = gatehouse_current_org())
    WITH CHECK (org_id = gatehouse_current_org());
-- The delivery worker reads the list before each send; it never changes it.
CREATE POLICY delivery_check ON mail_opt_outs FOR SELECT
    USING (gatehouse_current_job() = 'mail');
GRANT SELECT, INSERT, DELETE ON mail_opt_outs TO gatehouse_app;

-- Product mail names its organisation and list, so delivery can consult the opt-out list.
-- Gatehouse's own security mail (resets, verification) has neither and is never suppressed.
ALTER TABLE mail_outbox ADD COLUMN org_id uuid;
ALTER TABLE mail_outbox ADD COLUMN list text;
-- Erasing an organisation deletes its product mail. A DELETE reaches only rows a SELECT policy
-- lets it see, so the scope may read its own product mail's rows (bookkeeping and bodies sealed
-- under the platform key; Gatehouse's own mail, with no organisation, stays out of every scope).
CREATE POLICY organization_mail ON mail_outbox FOR SELECT
    USING (org_id = gatehouse_current_org());
CREATE POLICY organization_mail_erasure ON mail_outbox FOR DELETE
    USING (org_id = gatehouse_current_org());

-- Single sign-on per organisation (issue 24): an organisation's OpenID provider, the email
-- domains it proved with a DNS TXT record, the external identities linked to accounts, and how
-- each session began (enforced single sign-on admits only sessions that began through it).

-- A domain another organisation verified is found before any scope exists (claiming a domain,
-- starting a sign-in by domain): the statement declares the one domain it asks about.
CREATE FUNCTION gatehouse_named_domain() RETURNS text
    LANGUAGE sql STABLE
    AS $$ SELECT NULLIF(current_setting('gatehouse.domain', true), '') $$;
GRANT EXECUTE ON FUNCTION gatehouse_named_domain() TO gatehouse_app;

-- The provider: its issuer, Gatehouse's client id there (the client secret is a sealed field of
-- kind 'sso_client_secret' under the organisation's data key), the scopes asked for, the role
-- of a person who joins through it, and whether password sign-in to the organisation is refused.
CREATE TABLE sso_configs (
    org_id       uuid        NOT NULL PRIMARY KEY REFERENCES organizations (id) ON DELETE CASCADE,
    issuer       text        NOT NULL,
    client_id    text        NOT NULL,
    scopes       text        NOT NULL,
    default_role text        NOT NULL,
    enforced     boolean     NOT NULL,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL
);
ALTER TABLE sso_configs ENABLE ROW LEVEL SECURITY;
ALTER TABLE sso_configs FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON sso_configs
    USING (org_id = gatehouse_current_org())
    WITH CHECK (org_id = gatehouse_current_org());
GRANT SELECT, INSERT, UPDATE, DELETE ON sso_configs TO gatehouse_app;

-- Claimed domains. The challenge is published in DNS, so it is no secret. One organisation at
-- most holds a domain verified (the partial unique index, which row-level security does not
-- hide: a second verification fails whoever else holds it).
CREATE TABLE sso_domains (
    org_id      uuid        NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    domain      text        NOT NULL,
    challenge   text        NOT NULL,
    created_at  timestamptz NOT NULL,
    verified_at timestamptz,
    PRIMARY KEY (org_id, domain)
);
CREATE UNIQUE INDEX sso_domains_verified_key ON sso_domains (domain) WHERE verified_at IS NOT NULL;
ALTER TABLE sso_domains ENABLE ROW LEVEL SECURITY;
ALTER TABLE sso_domains FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON sso_domains
    USING (org_id = gatehouse_current_org())
    WITH CHECK (org_id = gatehouse_current_org());
-- Outside a scope: the verified row of the one declared domain, which says only which
-- organisation verified it.
CREATE POLICY verified_lookup ON sso_domains FOR SELECT
    USING (verified_at IS NOT NULL AND domain = gatehouse_named_domain());
GRANT SELECT, INSERT, UPDATE, DELETE ON sso_domains TO gatehouse_app;

-- External identities linked to accounts, found by the digest of issuer and subject (declared as
-- gatehouse.digest) or by their account (gatehouse.subject: export). `linked_by_org` records
-- which organisation's sign-on made the link; the row is the person's, not the organisation's,
-- so no tenant policy shows it to that organisation.
CREATE TABLE external_identities (
    digest        bytea       NOT NULL PRIMARY KEY,
    issuer        text        NOT NULL,
    subject       text        NOT NULL,
    user_id       uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    linked_by_org uuid,
    created_at    timestamptz NOT NULL
);
CREATE INDEX external_identities_by_user ON external_identities (user_id, created_at);
ALTER TABLE external_identities ENABLE ROW LEVEL SECURITY;
ALTER TABLE external_identities FORCE ROW LEVEL SECURITY;
CREATE POLICY digest_lookup ON external_identities
    USING (digest = gatehouse_named_digest())
    WITH CHECK (digest = gatehouse_named_digest());
CREATE POLICY named_subject ON external_identities
    USING (user_id = gatehouse_named_subject())
    WITH CHECK (user_id = gatehouse_named_subject());
GRANT SELECT, INSERT, DELETE ON external_identities TO gatehouse_app;

-- How a session began: 'password' (operators and impersonations too), 'sso' with the
-- organisation whose sign-on it was, or 'social' (a platform provider).
ALTER TABLE sessions ADD COLUMN signed_in_with text NOT NULL DEFAULT 'password'
    CHECK (signed_in_with IN ('password', 'sso', 'social'));
ALTER TABLE sessions ADD COLUMN sso_org_id uuid;
ALTER TABLE sessions ADD CONSTRAINT sessions_sso_org
    CHECK ((signed_in_with = 'sso') = (sso_org_id IS NOT NULL));

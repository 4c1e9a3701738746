-- Single sign-on per organisation (issue 24): an organisation's OpenID provider, the email
-- domains it proved with a DNS TXT record, the external identities linked to accounts, and how
-- each session began (enforced single sign-on admits only sessions that began through it).

-- The provider: its issuer, Gatehouse's client id there (the client secret is a sealed field of
-- kind 'sso_client_secret' under the organisation's data key), the scopes asked for, the role
-- of a person who joins through it, and whether password sign-in to the organisation is refused.
CREATE TABLE sso_configs (
    org_id       BLOB    NOT NULL PRIMARY KEY REFERENCES organizations (id) ON DELETE CASCADE,
    issuer       TEXT    NOT NULL,
    client_id    TEXT    NOT NULL,
    scopes       TEXT    NOT NULL,
    default_role TEXT    NOT NULL,
    enforced     INTEGER NOT NULL CHECK (enforced IN (0, 1)),
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
) STRICT;

-- Claimed domains. The challenge is published in DNS, so it is no secret. One organisation at
-- most holds a domain verified.
CREATE TABLE sso_domains (
    org_id      BLOB    NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    domain      TEXT    NOT NULL,
    challenge   TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    verified_at INTEGER,
    PRIMARY KEY (org_id, domain)
) STRICT;
CREATE UNIQUE INDEX sso_domains_verified_key ON sso_domains (domain) WHERE verified_at IS NOT NULL;

-- External identities linked to accounts, found by the digest of issuer and subject.
CREATE TABLE external_identities (
    digest        BLOB    NOT NULL PRIMARY KEY,
    issuer        TEXT    NOT NULL,
    subject       TEXT    NOT NULL,
    user_id       BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    linked_by_org BLOB,
    created_at    INTEGER NOT NULL
) STRICT;
CREATE INDEX external_identities_by_user ON external_identities (user_id, created_at);

-- How a session began: 'password' (operators and impersonations too), 'sso' with the
-- organisation whose sign-on it was, or 'social' (a platform provider).
ALTER TABLE sessions ADD COLUMN signed_in_with TEXT NOT NULL DEFAULT 'password'
    CHECK (signed_in_with IN ('password', 'sso', 'social'));
ALTER TABLE sessions ADD COLUMN sso_org_id BLOB
    CHECK ((signed_in_with = 'sso') = (sso_org_id IS NOT NULL));

-- The links an organisation's sign-on made end together, in one statement, when its provider
-- changes issuer or is removed (issue 24).
CREATE INDEX external_identities_by_org ON external_identities (linked_by_org)
    WHERE linked_by_org IS NOT NULL;

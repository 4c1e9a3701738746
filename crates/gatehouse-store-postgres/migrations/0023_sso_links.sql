-- The links an organisation's sign-on made end together, in one statement, when its provider
-- changes issuer or is removed (issue 24): the scope reaches the rows its organisation made, and
-- no other. A DELETE reaches only rows a SELECT policy lets it see, so the scope may read them
-- too: the issuers and subjects its own provider asserted, to accounts its sign-on linked.
CREATE POLICY links_made_here_read ON external_identities FOR SELECT
    USING (linked_by_org = gatehouse_current_org());
CREATE POLICY links_made_here ON external_identities FOR DELETE
    USING (linked_by_org = gatehouse_current_org());
CREATE INDEX external_identities_by_org ON external_identities (linked_by_org)
    WHERE linked_by_org IS NOT NULL;

-- An organisation's security policy (issue 26): whether its members must have a confirmed second
-- factor (ASVS 6.3.3). No row: nothing required beyond the platform's own setting. Recovery codes
-- need no change of schema: a salted code's stored value is its salt and its hash together, and
-- codes stored before are recognised by their length (see gatehouse-core's identity/recovery_codes.rs).
CREATE TABLE organization_policies (
    org_id                uuid        NOT NULL PRIMARY KEY REFERENCES organizations (id) ON DELETE CASCADE,
    require_second_factor boolean     NOT NULL,
    updated_at            timestamptz NOT NULL
);

ALTER TABLE organization_policies ENABLE ROW LEVEL SECURITY;
ALTER TABLE organization_policies FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON organization_policies
    USING (org_id = gatehouse_current_org())
    WITH CHECK (org_id = gatehouse_current_org());

-- Set and changed, never deleted by the application (the organisation's erasure takes the row).
GRANT SELECT, INSERT, UPDATE ON organization_policies TO gatehouse_app;

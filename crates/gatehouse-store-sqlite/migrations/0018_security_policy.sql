-- An organisation's security policy (issue 26): whether its members must have a confirmed second
-- factor (ASVS 6.3.3). No row: nothing required beyond the platform's own setting. Recovery codes
-- need no change of schema: a salted code's stored value is its salt and its hash together, and
-- codes stored before are recognised by their length (see gatehouse-core's identity/recovery_codes.rs).
CREATE TABLE organization_policies (
    org_id                BLOB    NOT NULL PRIMARY KEY REFERENCES organizations (id) ON DELETE CASCADE,
    require_second_factor INTEGER NOT NULL CHECK (require_second_factor IN (0, 1)),
    updated_at            INTEGER NOT NULL
) STRICT;

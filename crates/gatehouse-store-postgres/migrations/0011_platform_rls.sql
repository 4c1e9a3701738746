-- Row-level security on the platform tables that carry an organisation column or personal data
-- (issue 18, finding 14). A platform statement sees only the rows its transaction declared it
-- needs, in transaction-local settings the store sets just before it:
--   gatehouse.session_ids  the sessions named (comma-separated ids): one device's session;
--   gatehouse.subject      the person (user or operator) whose rows these are: their sessions,
--                          account, second factor, recovery codes and one-time tokens;
--   gatehouse.email        the address a sign-in looks an account up by;
--   gatehouse.digest       the hex digest of a presented secret: an API key's index entry, a
--                          one-time token;
--   gatehouse.impersonator the operator whose impersonations are being ended;
--   gatehouse.mail_id      the message being queued;
--   gatehouse.job          'mail' for the delivery worker, which works through the whole outbox.
-- Each declaration replaces the one before (declare.rs sets them all at once), so a statement
-- sees the rows of the latest declaration only; a raw SELECT with none sees none of these rows;
-- inside an organisation's scope, rows of that organisation only. Entering a scope clears them.
-- These settings guard against a statement that forgot its WHERE clause; any statement may set
-- them, so they are no defence against SQL injected into the application's own connection.
-- The tables left without row-level security hold neither (checked from the catalog by the
-- test suite): organizations (the registry of tenants, read by platform jobs), key material
-- (kek_versions, platform_keys, signing_keys, wrapped under the master key) and the operators'
-- audit chain (operator_audit_*).

CREATE FUNCTION gatehouse_named_sessions() RETURNS uuid[]
    LANGUAGE sql STABLE
    AS $$ SELECT string_to_array(NULLIF(current_setting('gatehouse.session_ids', true), ''), ',')::uuid[] $$;
CREATE FUNCTION gatehouse_named_subject() RETURNS uuid
    LANGUAGE sql STABLE
    AS $$ SELECT NULLIF(current_setting('gatehouse.subject', true), '')::uuid $$;
CREATE FUNCTION gatehouse_named_email() RETURNS text
    LANGUAGE sql STABLE
    AS $$ SELECT NULLIF(current_setting('gatehouse.email', true), '') $$;
CREATE FUNCTION gatehouse_named_digest() RETURNS bytea
    LANGUAGE sql STABLE
    AS $$ SELECT decode(NULLIF(current_setting('gatehouse.digest', true), ''), 'hex') $$;
CREATE FUNCTION gatehouse_named_impersonator() RETURNS uuid
    LANGUAGE sql STABLE
    AS $$ SELECT NULLIF(current_setting('gatehouse.impersonator', true), '')::uuid $$;
CREATE FUNCTION gatehouse_named_mail() RETURNS uuid
    LANGUAGE sql STABLE
    AS $$ SELECT NULLIF(current_setting('gatehouse.mail_id', true), '')::uuid $$;
CREATE FUNCTION gatehouse_current_job() RETURNS text
    LANGUAGE sql STABLE
    AS $$ SELECT NULLIF(current_setting('gatehouse.job', true), '') $$;
GRANT EXECUTE ON FUNCTION gatehouse_named_sessions(), gatehouse_named_subject(),
    gatehouse_named_email(), gatehouse_named_digest(), gatehouse_named_impersonator(),
    gatehouse_named_mail(),
    gatehouse_current_job() TO gatehouse_app;

-- Sessions: organisation, IP address and user agent.
ALTER TABLE sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE sessions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON sessions
    USING (org_id = gatehouse_current_org())
    WITH CHECK (org_id = gatehouse_current_org());
CREATE POLICY named_sessions ON sessions
    USING (id = ANY (gatehouse_named_sessions()))
    WITH CHECK (id = ANY (gatehouse_named_sessions()));
CREATE POLICY subject_sessions ON sessions
    USING (subject_id = gatehouse_named_subject())
    WITH CHECK (subject_id = gatehouse_named_subject());
CREATE POLICY impersonator_sessions ON sessions FOR SELECT
    USING (tier = 'impersonation' AND impersonator_id = gatehouse_named_impersonator());
CREATE POLICY impersonator_sessions_end ON sessions FOR UPDATE
    USING (tier = 'impersonation' AND impersonator_id = gatehouse_named_impersonator())
    WITH CHECK (tier = 'impersonation' AND impersonator_id = gatehouse_named_impersonator());

-- The API-key index: written inside the key's organisation, read by the presented key's digest
-- (which answers that one key's organisation, nothing else).
ALTER TABLE api_key_index ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_key_index FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON api_key_index
    USING (org_id = gatehouse_current_org())
    WITH CHECK (org_id = gatehouse_current_org());
CREATE POLICY digest_lookup ON api_key_index FOR SELECT
    USING (digest = gatehouse_named_digest());

-- Accounts: email, name, password hash.
ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;
CREATE POLICY named_subject ON users
    USING (id = gatehouse_named_subject())
    WITH CHECK (id = gatehouse_named_subject());
CREATE POLICY email_lookup ON users FOR SELECT
    USING (email = gatehouse_named_email());

ALTER TABLE operators ENABLE ROW LEVEL SECURITY;
ALTER TABLE operators FORCE ROW LEVEL SECURITY;
CREATE POLICY named_subject ON operators
    USING (id = gatehouse_named_subject())
    WITH CHECK (id = gatehouse_named_subject());
CREATE POLICY email_lookup ON operators FOR SELECT
    USING (email = gatehouse_named_email());

-- A person's second factor and recovery codes.
ALTER TABLE totp_factors ENABLE ROW LEVEL SECURITY;
ALTER TABLE totp_factors FORCE ROW LEVEL SECURITY;
CREATE POLICY named_subject ON totp_factors
    USING (user_id = gatehouse_named_subject())
    WITH CHECK (user_id = gatehouse_named_subject());
ALTER TABLE recovery_codes ENABLE ROW LEVEL SECURITY;
ALTER TABLE recovery_codes FORCE ROW LEVEL SECURITY;
CREATE POLICY named_subject ON recovery_codes
    USING (user_id = gatehouse_named_subject())
    WITH CHECK (user_id = gatehouse_named_subject());

-- One-time tokens: found by the presented token's digest, or spent together for their subject
-- (a password change spends every reset link).
ALTER TABLE one_time_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE one_time_tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY digest_lookup ON one_time_tokens
    USING (digest = gatehouse_named_digest())
    WITH CHECK (digest = gatehouse_named_digest());
CREATE POLICY named_subject ON one_time_tokens
    USING (subject_id = gatehouse_named_subject())
    WITH CHECK (subject_id = gatehouse_named_subject());

-- Queued mail (sealed, but addressed to someone): queued one message at a time, worked through
-- by the delivery worker only.
ALTER TABLE mail_outbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE mail_outbox FORCE ROW LEVEL SECURITY;
CREATE POLICY enqueue ON mail_outbox FOR INSERT
    WITH CHECK (id = gatehouse_named_mail());
CREATE POLICY delivery ON mail_outbox
    USING (gatehouse_current_job() = 'mail')
    WITH CHECK (gatehouse_current_job() = 'mail');

-- Data lifecycle (G3, issue 20). One instance at a time purges expired data and prunes spent
-- rows: it holds a lease, a row naming it with an expiry that it renews while it works. Leases
-- hold no tenant or personal data, so the table is a platform table without row-level security.
CREATE TABLE leases (
    name       text        NOT NULL PRIMARY KEY,
    holder     text        NOT NULL,
    expires_at timestamptz NOT NULL
);
GRANT SELECT, INSERT, UPDATE, DELETE ON leases TO gatehouse_app;

-- Mail that cannot be delivered after a bounded number of attempts is dead: never claimed again,
-- its sealed body emptied, pruned after the retention period like delivered mail.
ALTER TABLE mail_outbox ADD COLUMN dead_at timestamptz;
DROP INDEX mail_outbox_due;
CREATE INDEX mail_outbox_due ON mail_outbox (next_attempt_at, created_at)
    WHERE sent_at IS NULL AND dead_at IS NULL;

-- Export and erasure (G1, G2) find a person's mail by the SHA-256 of their lower-cased address
-- (the address itself is only inside the sealed envelope), and show which template it was.
ALTER TABLE mail_outbox ADD COLUMN recipient bytea NOT NULL DEFAULT ''::bytea;
ALTER TABLE mail_outbox ADD COLUMN kind text NOT NULL DEFAULT '';
CREATE INDEX mail_outbox_recipient ON mail_outbox (recipient);

-- What the purge and the pruning look for.
CREATE INDEX records_expiry ON records (org_id, expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX secrets_expiry ON secrets (org_id, expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX secrets_deleted ON secrets (org_id, deleted_at) WHERE deleted_at IS NOT NULL;
CREATE INDEX sessions_expiry ON sessions (expires_at);
CREATE INDEX one_time_tokens_expiry ON one_time_tokens (expires_at);
CREATE INDEX recovery_codes_used ON recovery_codes (used_at) WHERE used_at IS NOT NULL;
CREATE INDEX mail_outbox_done ON mail_outbox (sent_at) WHERE sent_at IS NOT NULL;
CREATE INDEX mail_outbox_dead ON mail_outbox (dead_at) WHERE dead_at IS NOT NULL;

-- The pruning job (gatehouse.job = 'prune') reads and deletes spent rows across subjects; it
-- never inserts or changes one. Deleting by a condition needs to read the rows it tests.
CREATE POLICY prune_read ON sessions FOR SELECT USING (gatehouse_current_job() = 'prune');
CREATE POLICY prune ON sessions FOR DELETE USING (gatehouse_current_job() = 'prune');
CREATE POLICY prune_read ON one_time_tokens FOR SELECT USING (gatehouse_current_job() = 'prune');
CREATE POLICY prune ON one_time_tokens FOR DELETE USING (gatehouse_current_job() = 'prune');
CREATE POLICY prune_read ON recovery_codes FOR SELECT USING (gatehouse_current_job() = 'prune');
CREATE POLICY prune ON recovery_codes FOR DELETE USING (gatehouse_current_job() = 'prune');
CREATE POLICY prune_read ON mail_outbox FOR SELECT USING (gatehouse_current_job() = 'prune');
CREATE POLICY prune ON mail_outbox FOR DELETE USING (gatehouse_current_job() = 'prune');

-- A person's mail, found by the digest of their address for their export or erasure.
CREATE POLICY recipient_lookup ON mail_outbox FOR SELECT
    USING (recipient = gatehouse_named_digest());
CREATE POLICY recipient_erasure ON mail_outbox FOR DELETE
    USING (recipient = gatehouse_named_digest());

GRANT DELETE ON one_time_tokens, mail_outbox, secrets, secret_versions TO gatehouse_app;

-- Erasing an organisation (G2) deletes its audit chain with it: an organisation's events and
-- checkpoints may be deleted once, and only once, the organisation itself is gone (in the same
-- transaction). They stay append-only while it exists, and are never updated.
CREATE FUNCTION gatehouse_audit_erasable() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public
    AS $$
BEGIN
    IF TG_OP = 'DELETE' AND NOT EXISTS (SELECT 1 FROM organizations WHERE id = OLD.org_id) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit events are append-only';
END $$;
DROP TRIGGER audit_events_append_only ON audit_events;
CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION gatehouse_audit_erasable();
DROP TRIGGER audit_checkpoints_append_only ON audit_checkpoints;
CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION gatehouse_audit_erasable();
GRANT DELETE ON audit_events, audit_heads, audit_checkpoints, api_key_index TO gatehouse_app;
-- A chain's head likewise: deleting it would let the chain start over at seq 1. (It moves by
-- UPDATE with every append.)
CREATE FUNCTION gatehouse_audit_head_erasable() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public
    AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM organizations WHERE id = OLD.org_id) THEN
        RAISE EXCEPTION 'audit heads are deleted only with their organisation';
    END IF;
    RETURN OLD;
END $$;
CREATE TRIGGER audit_heads_erasable BEFORE DELETE ON audit_heads
    FOR EACH ROW EXECUTE FUNCTION gatehouse_audit_head_erasable();

-- Data lifecycle (G3, issue 20). One instance at a time purges expired data and prunes spent
-- rows: it holds a lease, a row naming it with an expiry that it renews while it works.
CREATE TABLE leases (
    name       TEXT    NOT NULL PRIMARY KEY,
    holder     TEXT    NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;

-- Mail that cannot be delivered after a bounded number of attempts is dead: never claimed again,
-- its sealed body emptied, pruned after the retention period like delivered mail.
ALTER TABLE mail_outbox ADD COLUMN dead_at INTEGER;
DROP INDEX mail_outbox_due;
CREATE INDEX mail_outbox_due ON mail_outbox (next_attempt_at, created_at)
    WHERE sent_at IS NULL AND dead_at IS NULL;

-- Export and erasure (G1, G2) find a person's mail by the SHA-256 of their lower-cased address
-- (the address itself is only inside the sealed envelope), and show which template it was.
ALTER TABLE mail_outbox ADD COLUMN recipient BLOB NOT NULL DEFAULT X'';
ALTER TABLE mail_outbox ADD COLUMN kind TEXT NOT NULL DEFAULT '';
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

-- Erasing an organisation (G2) deletes its audit chain with it: an organisation's events and
-- checkpoints may be deleted once, and only once, the organisation itself is gone (in the same
-- transaction). They stay append-only while it exists.
DROP TRIGGER audit_events_no_delete;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
WHEN EXISTS (SELECT 1 FROM organizations WHERE id = OLD.org_id)
BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END;
DROP TRIGGER audit_checkpoints_no_delete;
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
WHEN EXISTS (SELECT 1 FROM organizations WHERE id = OLD.org_id)
BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;
-- A chain's head likewise: deleting it would let the chain start over at seq 1.
CREATE TRIGGER audit_heads_no_delete BEFORE DELETE ON audit_heads
WHEN EXISTS (SELECT 1 FROM organizations WHERE id = OLD.org_id)
BEGIN SELECT RAISE(ABORT, 'audit heads are deleted only with their organisation'); END;

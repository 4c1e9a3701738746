-- The audit log: one hash chain per organisation (audit_events, under forced RLS) and one for the
-- platform operators (operator_audit_events). Append-only twice over: the application role is
-- granted no UPDATE or DELETE on events, and triggers refuse them for every role. `personal` holds
-- the event's personal data sealed under a key of its data subject; erasing the subject destroys
-- that key, and the chain, which hashes the ciphertext, still verifies.

CREATE TABLE audit_events (
    org_id          uuid        NOT NULL,
    seq             bigint      NOT NULL,
    id              uuid        NOT NULL UNIQUE,
    at              timestamptz NOT NULL,
    actor_kind      text        NOT NULL,
    actor_id        text        NOT NULL,
    impersonator_id text,
    action          text        NOT NULL,
    resource_type   text        NOT NULL,
    resource_id     text        NOT NULL,
    outcome         text        NOT NULL CHECK (outcome IN ('success', 'denied', 'failure')),
    request_id      text,
    details         text        NOT NULL,
    subject         text,
    personal        bytea,
    prev_hash       bytea       NOT NULL,
    hash            bytea       NOT NULL,
    PRIMARY KEY (org_id, seq)
);

CREATE TABLE audit_heads (
    org_id uuid   NOT NULL PRIMARY KEY,
    seq    bigint NOT NULL,
    hash   bytea  NOT NULL
);

CREATE TABLE operator_audit_events (
    seq             bigint      NOT NULL PRIMARY KEY,
    id              uuid        NOT NULL UNIQUE,
    at              timestamptz NOT NULL,
    actor_kind      text        NOT NULL,
    actor_id        text        NOT NULL,
    impersonator_id text,
    action          text        NOT NULL,
    resource_type   text        NOT NULL,
    resource_id     text        NOT NULL,
    outcome         text        NOT NULL CHECK (outcome IN ('success', 'denied', 'failure')),
    request_id      text,
    details         text        NOT NULL,
    subject         text,
    personal        bytea,
    prev_hash       bytea       NOT NULL,
    hash            bytea       NOT NULL
);

CREATE TABLE operator_audit_head (
    id   integer NOT NULL PRIMARY KEY CHECK (id = 1),
    seq  bigint  NOT NULL,
    hash bytea   NOT NULL
);

CREATE FUNCTION gatehouse_audit_append_only() RETURNS trigger
    LANGUAGE plpgsql
    AS $$ BEGIN RAISE EXCEPTION 'audit events are append-only'; END $$;

CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION gatehouse_audit_append_only();
CREATE TRIGGER operator_audit_events_append_only BEFORE UPDATE OR DELETE ON operator_audit_events
    FOR EACH ROW EXECUTE FUNCTION gatehouse_audit_append_only();

ALTER TABLE audit_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_events FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_events
    USING (org_id = gatehouse_current_org())
    WITH CHECK (org_id = gatehouse_current_org());

ALTER TABLE audit_heads ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_heads FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_heads
    USING (org_id = gatehouse_current_org())
    WITH CHECK (org_id = gatehouse_current_org());

GRANT SELECT, INSERT ON audit_events, operator_audit_events TO gatehouse_app;
GRANT SELECT, INSERT, UPDATE ON audit_heads, operator_audit_head TO gatehouse_app;

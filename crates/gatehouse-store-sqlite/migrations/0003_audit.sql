-- The audit log: one hash chain per organisation (audit_events) and one for the platform
-- operators (operator_audit_events). Events are append-only: the triggers refuse UPDATE and
-- DELETE. The head tables hold each chain's last seq and hash; appends update them in the same
-- transaction. `personal` holds the event's personal data (IP, user agent) sealed under a key of
-- its data subject; erasing the subject destroys that key, and the chain, which hashes the
-- ciphertext, still verifies.

CREATE TABLE audit_events (
    org_id          BLOB    NOT NULL,
    seq             INTEGER NOT NULL,
    id              BLOB    NOT NULL UNIQUE,
    at              INTEGER NOT NULL,
    actor_kind      TEXT    NOT NULL,
    actor_id        TEXT    NOT NULL,
    impersonator_id TEXT,
    action          TEXT    NOT NULL,
    resource_type   TEXT    NOT NULL,
    resource_id     TEXT    NOT NULL,
    outcome         TEXT    NOT NULL CHECK (outcome IN ('success', 'denied', 'failure')),
    request_id      TEXT,
    details         TEXT    NOT NULL,
    subject         TEXT,
    personal        BLOB,
    prev_hash       BLOB    NOT NULL,
    hash            BLOB    NOT NULL,
    PRIMARY KEY (org_id, seq)
) STRICT;

CREATE TABLE audit_heads (
    org_id BLOB    NOT NULL PRIMARY KEY,
    seq    INTEGER NOT NULL,
    hash   BLOB    NOT NULL
) STRICT;

CREATE TABLE operator_audit_events (
    seq             INTEGER NOT NULL PRIMARY KEY,
    id              BLOB    NOT NULL UNIQUE,
    at              INTEGER NOT NULL,
    actor_kind      TEXT    NOT NULL,
    actor_id        TEXT    NOT NULL,
    impersonator_id TEXT,
    action          TEXT    NOT NULL,
    resource_type   TEXT    NOT NULL,
    resource_id     TEXT    NOT NULL,
    outcome         TEXT    NOT NULL CHECK (outcome IN ('success', 'denied', 'failure')),
    request_id      TEXT,
    details         TEXT    NOT NULL,
    subject         TEXT,
    personal        BLOB,
    prev_hash       BLOB    NOT NULL,
    hash            BLOB    NOT NULL
) STRICT;

CREATE TABLE operator_audit_head (
    id   INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash BLOB    NOT NULL
) STRICT;

CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END;
CREATE TRIGGER operator_audit_events_no_update BEFORE UPDATE ON operator_audit_events
BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END;
CREATE TRIGGER operator_audit_events_no_delete BEFORE DELETE ON operator_audit_events
BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END;

-- Webhooks (F3, issue 21): endpoints per organisation, events queued in the transaction of the
-- change they report, one delivery per endpoint and event, and a log of every attempt.
CREATE TABLE webhook_endpoints (
    org_id         BLOB    NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    id             BLOB    NOT NULL,
    url            TEXT    NOT NULL,
    event_types    TEXT    NOT NULL,
    description    TEXT,
    disabled       TEXT,
    secret_version INTEGER NOT NULL CHECK (secret_version >= 1),
    previous_until INTEGER,
    failing_since  INTEGER,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    PRIMARY KEY (org_id, id)
) STRICT;
CREATE INDEX webhook_endpoints_page ON webhook_endpoints (org_id, created_at, id);

CREATE TABLE webhook_messages (
    org_id     BLOB    NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    id         BLOB    NOT NULL,
    event_type TEXT    NOT NULL,
    payload    BLOB    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (org_id, id)
) STRICT;

CREATE TABLE webhook_deliveries (
    org_id          BLOB    NOT NULL,
    id              BLOB    NOT NULL,
    endpoint_id     BLOB    NOT NULL,
    message_id      BLOB    NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, endpoint_id) REFERENCES webhook_endpoints (org_id, id) ON DELETE CASCADE,
    FOREIGN KEY (org_id, message_id) REFERENCES webhook_messages (org_id, id) ON DELETE CASCADE
) STRICT;
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at, created_at)
    WHERE state = 'pending';
CREATE INDEX webhook_deliveries_of_endpoint ON webhook_deliveries (org_id, endpoint_id, state);
CREATE INDEX webhook_deliveries_of_message ON webhook_deliveries (org_id, message_id);

CREATE TABLE webhook_attempts (
    org_id      BLOB    NOT NULL,
    id          BLOB    NOT NULL,
    delivery_id BLOB    NOT NULL,
    endpoint_id BLOB    NOT NULL,
    message_id  BLOB    NOT NULL,
    attempt     INTEGER NOT NULL CHECK (attempt >= 1),
    at          INTEGER NOT NULL,
    status      INTEGER,
    latency_ms  INTEGER NOT NULL,
    error       TEXT,
    response    TEXT    NOT NULL,
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, endpoint_id) REFERENCES webhook_endpoints (org_id, id) ON DELETE CASCADE
) STRICT;
CREATE INDEX webhook_attempts_page ON webhook_attempts (org_id, endpoint_id, at, id);

-- Webhooks (F3, issue 21): endpoints per organisation, events queued in the transaction of the
-- change they report, one delivery per endpoint and event, and a log of every attempt.
CREATE TABLE webhook_endpoints (
    org_id         uuid        NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    id             uuid    NOT NULL,
    url            text    NOT NULL,
    event_types    text    NOT NULL,
    description    text,
    disabled       text,
    secret_version integer NOT NULL CHECK (secret_version >= 1),
    previous_until timestamptz,
    failing_since  timestamptz,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    PRIMARY KEY (org_id, id)
);
CREATE INDEX webhook_endpoints_page ON webhook_endpoints (org_id, created_at, id);

CREATE TABLE webhook_messages (
    org_id     uuid        NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    id         uuid    NOT NULL,
    event_type text    NOT NULL,
    payload    bytea   NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (org_id, id)
);

CREATE TABLE webhook_deliveries (
    org_id          uuid    NOT NULL,
    id              uuid    NOT NULL,
    endpoint_id     uuid    NOT NULL,
    message_id      uuid    NOT NULL,
    state           text    NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz NOT NULL,
    created_at      timestamptz NOT NULL,
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, endpoint_id) REFERENCES webhook_endpoints (org_id, id) ON DELETE CASCADE,
    FOREIGN KEY (org_id, message_id) REFERENCES webhook_messages (org_id, id) ON DELETE CASCADE
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at, created_at)
    WHERE state = 'pending';
CREATE INDEX webhook_deliveries_of_endpoint ON webhook_deliveries (org_id, endpoint_id, state);
CREATE INDEX webhook_deliveries_of_message ON webhook_deliveries (org_id, message_id);

CREATE TABLE webhook_attempts (
    org_id      uuid    NOT NULL,
    id          uuid    NOT NULL,
    delivery_id uuid    NOT NULL,
    endpoint_id uuid    NOT NULL,
    message_id  uuid    NOT NULL,
    attempt     integer NOT NULL CHECK (attempt >= 1),
    at          timestamptz NOT NULL,
    status      integer,
    latency_ms  integer NOT NULL,
    error       text,
    response    text    NOT NULL,
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, endpoint_id) REFERENCES webhook_endpoints (org_id, id) ON DELETE CASCADE
);
CREATE INDEX webhook_attempts_page ON webhook_attempts (org_id, endpoint_id, at, id);

ALTER TABLE webhook_endpoints ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_endpoints FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON webhook_endpoints
    USING (org_id = gatehouse_current_org())
    WITH CHECK (org_id = gatehouse_current_org());
ALTER TABLE webhook_messages ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_messages FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON webhook_messages
    USING (org_id = gatehouse_current_org())
    WITH CHECK (org_id = gatehouse_current_org());
ALTER TABLE webhook_deliveries ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_deliveries FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON webhook_deliveries
    USING (org_id = gatehouse_current_org())
    WITH CHECK (org_id = gatehouse_current_org());
-- The delivery worker (gatehouse.job = 'webhooks') finds and leases due deliveries across
-- organisations; everything else it does happens inside the delivery's organisation.
CREATE POLICY delivery_claim ON webhook_deliveries FOR SELECT
    USING (gatehouse_current_job() = 'webhooks');
CREATE POLICY delivery_lease ON webhook_deliveries FOR UPDATE
    USING (gatehouse_current_job() = 'webhooks')
    WITH CHECK (gatehouse_current_job() = 'webhooks');
ALTER TABLE webhook_attempts ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_attempts FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON webhook_attempts
    USING (org_id = gatehouse_current_org())
    WITH CHECK (org_id = gatehouse_current_org());
GRANT SELECT, INSERT, UPDATE, DELETE
    ON webhook_endpoints, webhook_messages, webhook_deliveries, webhook_attempts TO gatehouse_app;

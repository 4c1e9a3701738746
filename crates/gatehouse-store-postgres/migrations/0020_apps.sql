-- The app registry (issue 26, ASVS 9.2.4): the downstream apps an operator registered, each
-- with the audience its tokens carry. A refresh that asks for `resource` = an app's audience
-- (RFC 8707) gets a token whose `aud` is that app's, which Gatehouse's own API refuses.
-- Platform-wide, holding neither an organisation column nor personal data, so like
-- `organizations` it is left without row-level security (listed as such in the suite's
-- catalogue check).
CREATE TABLE apps (
    id         uuid        NOT NULL PRIMARY KEY,
    name       text        NOT NULL,
    audience   text        NOT NULL,
    created_at timestamptz NOT NULL,
    CONSTRAINT apps_audience_key UNIQUE (audience)
);
GRANT SELECT, INSERT, DELETE ON apps TO gatehouse_app;

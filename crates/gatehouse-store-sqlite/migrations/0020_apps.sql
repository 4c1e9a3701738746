-- The app registry (issue 26, ASVS 9.2.4): the downstream apps an operator registered, each
-- with the audience its tokens carry. A refresh that asks for `resource` = an app's audience
-- (RFC 8707) gets a token whose `aud` is that app's, which Gatehouse's own API refuses.
-- Platform-wide: no organisation, no personal data.
CREATE TABLE apps (
    id         BLOB    NOT NULL PRIMARY KEY,
    name       TEXT    NOT NULL,
    audience   TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    CONSTRAINT apps_audience_key UNIQUE (audience)
) STRICT;

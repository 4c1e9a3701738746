//! What a platform statement declares it needs, for the row-level security of the platform
//! tables (migration 0011): transaction-local settings set just before the statement, so the
//! database shows it the rows of its declaration and nothing else. Each declaration replaces the
//! one before (every setting is written each time), and entering an organisation's scope clears
//! them all ([`CLEAR`]).
//!
//! These guard against a statement that forgot its `WHERE` clause, not against SQL injected into
//! the application's connection, which could set them itself.

use gatehouse_core::StoreError;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::errors::map_err;

/// The rows a statement is about.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Named<'a> {
    /// A user's memberships across organisations (the `own_memberships` policy).
    MembershipsOf(Uuid),
    /// These sessions (one device's, or a batch of last-seen times).
    Sessions(&'a [Uuid]),
    /// The rows of this person (user or operator): account, sessions, factor, tokens.
    Subject(Uuid),
    /// The account a sign-in looks up by address.
    Email(&'a str),
    /// The row a presented secret's digest finds (API-key index, one-time token).
    Digest(&'a [u8]),
    /// The impersonation sessions this operator started.
    Impersonator(Uuid),
    /// The message being queued.
    Mail(Uuid),
    /// The delivery worker, which works through the whole outbox.
    MailJob,
    /// The pruning job, which reads and deletes spent rows of every subject.
    PruneJob,
    /// The webhook worker, which leases due deliveries of every organisation.
    WebhookJob,
    /// The connectors' refresh job, which finds the connectors due of every organisation.
    ConnectorJob,
    /// The posture report's password census (A1), which reads every account's hash.
    PasswordCensusJob,
    /// The verified row of one email domain (which organisation proved it, for single sign-on).
    Domain(&'a str),
}

/// Every setting a declaration may use, in the order [`declare`] binds them.
const SETTINGS: [&str; 9] = [
    "gatehouse.user_id",
    "gatehouse.session_ids",
    "gatehouse.subject",
    "gatehouse.email",
    "gatehouse.digest",
    "gatehouse.impersonator",
    "gatehouse.mail_id",
    "gatehouse.job",
    "gatehouse.domain",
];

/// Forgets every declaration: inside an organisation's scope only the scope's rows are visible.
pub(crate) const CLEAR: &str = "set_config('gatehouse.user_id', '', true), \
     set_config('gatehouse.session_ids', '', true), set_config('gatehouse.subject', '', true), \
     set_config('gatehouse.email', '', true), set_config('gatehouse.digest', '', true), \
     set_config('gatehouse.impersonator', '', true), set_config('gatehouse.mail_id', '', true), \
     set_config('gatehouse.job', '', true), set_config('gatehouse.domain', '', true)";

/// The setting `named` uses and its value.
fn setting(named: Named<'_>) -> (&'static str, String) {
    match named {
        Named::MembershipsOf(user) => ("gatehouse.user_id", user.to_string()),
        Named::Sessions(ids) => (
            "gatehouse.session_ids",
            ids.iter()
                .map(Uuid::to_string)
                .collect::<Vec<_>>()
                .join(","),
        ),
        Named::Subject(id) => ("gatehouse.subject", id.to_string()),
        Named::Email(email) => ("gatehouse.email", email.to_owned()),
        Named::Digest(d) => (
            "gatehouse.digest",
            d.iter().map(|b| format!("{b:02x}")).collect(),
        ),
        Named::Impersonator(id) => ("gatehouse.impersonator", id.to_string()),
        Named::Mail(id) => ("gatehouse.mail_id", id.to_string()),
        Named::MailJob => ("gatehouse.job", "mail".to_owned()),
        Named::PruneJob => ("gatehouse.job", "prune".to_owned()),
        Named::WebhookJob => ("gatehouse.job", "webhooks".to_owned()),
        Named::ConnectorJob => ("gatehouse.job", "connectors".to_owned()),
        Named::PasswordCensusJob => ("gatehouse.job", "password_census".to_owned()),
        Named::Domain(domain) => ("gatehouse.domain", domain.to_owned()),
    }
}

/// Declares `named` and forgets every other declaration, in one round trip.
pub(crate) async fn declare(c: &mut PgConnection, named: Named<'_>) -> Result<(), StoreError> {
    let (name, value) = setting(named);
    let mut query = sqlx::query(
        "SELECT set_config('gatehouse.user_id', $1, true), \
         set_config('gatehouse.session_ids', $2, true), set_config('gatehouse.subject', $3, true), \
         set_config('gatehouse.email', $4, true), set_config('gatehouse.digest', $5, true), \
         set_config('gatehouse.impersonator', $6, true), set_config('gatehouse.mail_id', $7, true), \
         set_config('gatehouse.job', $8, true), set_config('gatehouse.domain', $9, true)",
    );
    for s in SETTINGS {
        query = query.bind(if s == name { value.as_str() } else { "" });
    }
    query.execute(c).await.map(|_| ()).map_err(map_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_declaration_uses_a_setting_it_also_clears() {
        let id = Uuid::from_u128(7);
        for named in [
            Named::MembershipsOf(id),
            Named::Sessions(&[id]),
            Named::Subject(id),
            Named::Email("a@example.com"),
            Named::Digest(&[0xab, 0x01]),
            Named::Impersonator(id),
            Named::Mail(id),
            Named::MailJob,
            Named::PruneJob,
            Named::WebhookJob,
            Named::ConnectorJob,
            Named::PasswordCensusJob,
            Named::Domain("acme.test"),
        ] {
            let (name, value) = setting(named);
            assert!(SETTINGS.contains(&name), "{name}");
            assert!(CLEAR.contains(&format!("'{name}', ''")), "{name}");
            assert!(!value.is_empty());
        }
        assert_eq!(setting(Named::Digest(&[0xab, 0x01])).1, "ab01");
    }
}

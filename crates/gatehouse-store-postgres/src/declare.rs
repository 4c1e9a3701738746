//! What a platform statement declares it needs, for the row-level security of the platform
//! tables (migration 0011): transaction-local settings set just before the statement, so the
//! database shows it the rows it named and nothing else. Entering an organisation's scope clears
//! them all ([`CLEAR`]).

use gatehouse_core::StoreError;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::errors::map_err;

/// The rows a statement is about.
pub(crate) enum Named<'a> {
    /// These sessions (one device's, or a batch of last-seen times).
    Sessions(&'a [Uuid]),
    /// The rows of this person (user or operator): account, sessions, factor, tokens.
    Subject(Uuid),
    /// The account a sign-in looks up by address.
    Email(&'a str),
    /// The row a presented secret's digest finds (API-key index, one-time token).
    Digest(&'a [u8]),
    /// The message being queued.
    Mail(Uuid),
    /// The delivery worker, which works through the whole outbox.
    MailJob,
}

/// Forgets every declaration (and the membership lookup's user): inside an organisation's scope
/// only the scope's rows are visible.
pub(crate) const CLEAR: &str = "set_config('gatehouse.user_id', '', true), \
     set_config('gatehouse.session_ids', '', true), set_config('gatehouse.subject', '', true), \
     set_config('gatehouse.email', '', true), set_config('gatehouse.digest', '', true), \
     set_config('gatehouse.mail_id', '', true), set_config('gatehouse.job', '', true)";

pub(crate) async fn declare(c: &mut PgConnection, named: Named<'_>) -> Result<(), StoreError> {
    let (setting, value) = match named {
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
        Named::Mail(id) => ("gatehouse.mail_id", id.to_string()),
        Named::MailJob => ("gatehouse.job", "mail".to_owned()),
    };
    sqlx::query("SELECT set_config($1, $2, true)")
        .bind(setting)
        .bind(value)
        .execute(c)
        .await
        .map(|_| ())
        .map_err(map_err)
}

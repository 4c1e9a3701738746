//! Connectors (B3, issue 24): a person's account at an OAuth provider (a CRM, a workspace, a
//! mailbox), connected through the authorization code flow with PKCE and a signed single-use
//! state (`crate::oauth`), its tokens sealed with the organisation's data key
//! (`SealedKind::ConnectorToken`, record = the connector, fields `access` and `refresh`) and
//! refreshed ahead of expiry by a leased job (`refresh.rs`). Services get a fresh access token on
//! the person's behalf (`handout.rs`); no `/v1` answer ever carries a token. Disconnecting
//! revokes the tokens at the provider (RFC 7009) and erases them.
//!
//! Providers are the platform's (`[[oauth.providers]]`) or an organisation's own
//! (`providers.rs`, `connectors.manage`), whose client secret is sealed too. Every change is
//! audited in its transaction; a refused refresh token marks the connector `needs_reauth` and
//! raises the webhook event of that name.

mod flow;
mod handout;
mod leaving;
mod providers;
mod refresh;
mod usage;

use std::sync::Arc;

use time::{Duration, OffsetDateTime};
use uuid::Uuid;

pub use flow::{CALLBACK_PREFIX, Callback};
pub use handout::{HandedOut, TokenCache};
pub use providers::{NewProvider, ProviderSource, ProviderView};
pub use refresh::RefreshReport;
pub use usage::UsageTally;

use crate::store::{ConnectorRow, ConnectorStatus};

/// The audit action of a token handed to a service.
pub(crate) const TOKEN_USED: &str = "connector.token_used";

/// The lease the refresh job runs under.
pub const LEASE: &str = "connectors";

/// The connectors' settings, from configuration (`[oauth]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectorSettings {
    /// How long before an access token expires it is refreshed (at most half its lifetime).
    pub refresh_ahead: Duration,
    /// The waits after failed refreshes, in order (the last repeats).
    pub retry_waits: Vec<Duration>,
    /// Where the callback sends the browser once done (`?connector=&status=` or `?error=`);
    /// `None`: the callback answers JSON.
    pub return_url: Option<String>,
    /// Connectors refreshed per pass of the job.
    pub batch: u32,
}

impl Default for ConnectorSettings {
    fn default() -> Self {
        Self {
            refresh_ahead: Duration::minutes(5),
            retry_waits: vec![
                Duration::seconds(30),
                Duration::minutes(2),
                Duration::minutes(10),
                Duration::hours(1),
                Duration::hours(6),
            ],
            return_url: None,
            batch: 50,
        }
    }
}

/// What the kernel holds for connectors: the settings and the sealed-token cache.
#[derive(Debug, Default)]
pub struct ConnectorState {
    settings: ConnectorSettings,
    cache: Arc<TokenCache>,
    usage: Arc<UsageTally>,
}

impl ConnectorState {
    #[must_use]
    pub fn new(settings: ConnectorSettings) -> Self {
        Self {
            settings,
            cache: Arc::default(),
            usage: Arc::default(),
        }
    }
}

/// A connector as `/v1` shows it: never a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectorView {
    pub id: Uuid,
    pub provider: String,
    pub user_id: Uuid,
    pub status: ConnectorStatus,
    pub scopes: Vec<String>,
    /// When the current access token expires, when the provider said.
    pub expires_at: Option<OffsetDateTime>,
    /// Whether it holds a refresh token (and is kept fresh by the refresh job).
    pub refreshable: bool,
    pub last_error: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl From<&ConnectorRow> for ConnectorView {
    fn from(r: &ConnectorRow) -> Self {
        Self {
            id: r.id,
            provider: r.provider.clone(),
            user_id: r.user_id,
            status: r.status,
            scopes: split_scopes(&r.scopes),
            expires_at: r.expires_at,
            refreshable: r.refresh_due_at.is_some(),
            last_error: r.last_error.clone(),
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

pub(crate) fn split_scopes(s: &str) -> Vec<String> {
    s.split(' ')
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The sealed fields of a connector's tokens.
pub(crate) const ACCESS: &str = "access";
pub(crate) const REFRESH: &str = "refresh";

/// The shortest lifetime a refresh is planned for: a provider answering `expires_in` 0 (or a few
/// seconds) would otherwise have its connector due at every pass of the job (#24).
pub(crate) const MIN_LIFETIME: Duration = Duration::seconds(60);

/// When a token living `lifetime` from `now` is refreshed: `refresh_ahead` before it expires,
/// but never before half its life (a short-lived token is not refreshed at once), the lifetime
/// taken as at least [`MIN_LIFETIME`].
pub(crate) fn refresh_due(
    settings: &ConnectorSettings,
    now: OffsetDateTime,
    lifetime: Duration,
) -> OffsetDateTime {
    let lifetime = lifetime.max(MIN_LIFETIME);
    let lead = settings.refresh_ahead.min(lifetime / 2);
    now + lifetime - lead
}

/// Connectors (`connectors`).
#[derive(Debug, Clone, Copy)]
pub struct Connectors<'k>(pub(crate) &'k crate::kernel::Kernel);

crate::kernel::service_handle!(Connectors);

impl crate::kernel::Kernel {
    /// Connectors (`connectors`).
    #[must_use]
    pub fn connectors(&self) -> Connectors<'_> {
        Connectors(self)
    }
}

impl Connectors<'_> {
    pub(crate) fn settings(&self) -> &ConnectorSettings {
        &self.connector_state().settings
    }

    /// Where the callback sends the browser once done, when `oauth.connector_return_url` is
    /// configured: with `?connector={id}&status=connected`, or `?error={code}`.
    #[must_use]
    pub fn return_location(&self, done: Result<&ConnectorView, &crate::Error>) -> Option<String> {
        let mut url = url::Url::parse(self.settings().return_url.as_deref()?).ok()?;
        match done {
            Ok(c) => {
                url.query_pairs_mut()
                    .append_pair("connector", &c.id.to_string())
                    .append_pair("status", "connected");
            }
            Err(e) => {
                url.query_pairs_mut().append_pair("error", e.code());
            }
        }
        Some(url.into())
    }

    pub(crate) fn cache(&self) -> &TokenCache {
        &self.connector_state().cache
    }

    /// Hand-outs counted since the last flush (`usage.rs`).
    #[must_use]
    pub fn usage(&self) -> &Arc<UsageTally> {
        &self.connector_state().usage
    }

    /// Forgets a connector's cached token here and on every instance (after a refresh, a
    /// disconnect, a change of status).
    pub(crate) fn forget(&self, org: crate::ids::OrgId, id: Uuid) {
        self.cache().forget(org, id);
        self.publish_revocation(crate::identity::Revocation::Connector { org, id });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_is_due_ahead_of_expiry_and_never_before_half_the_lifetime() {
        let s = ConnectorSettings::default();
        let now = OffsetDateTime::UNIX_EPOCH;
        assert_eq!(
            refresh_due(&s, now, Duration::hours(1)),
            now + Duration::minutes(55)
        );
        assert_eq!(
            refresh_due(&s, now, Duration::seconds(60)),
            now + Duration::seconds(30)
        );
    }

    #[test]
    fn a_token_said_to_expire_at_once_is_not_due_again_at_once() {
        let s = ConnectorSettings::default();
        let now = OffsetDateTime::UNIX_EPOCH;
        for seconds in [0, 1, 59] {
            assert_eq!(
                refresh_due(&s, now, Duration::seconds(seconds)),
                now + Duration::seconds(30),
                "{seconds}"
            );
        }
    }
}

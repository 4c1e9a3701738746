//! The OAuth 2.0 client machinery (issue 24) that connectors (B3) and sign-in through a provider
//! share: what a provider is ([`provider`]), PKCE ([`pkce`]), the signed single-use `state`
//! ([`state`]), the provider calls as a trait the infrastructure layer implements over HTTP
//! ([`client`]) and what their answers mean ([`wire`]).
//!
//! No HTTP and no SQL here. The flows using it (`connectors`, sign-in) start an authorization
//! with [`OAuth::begin`] and, at their callback, call [`OAuth::spend`] before anything else: a
//! replayed, expired, forged or misdirected state is refused there, before any code reaches the
//! provider. The PKCE verifier is sealed in the state's row and goes nowhere but the token
//! endpoint.

pub mod client;
pub mod pkce;
pub mod provider;
pub mod state;
pub mod wire;

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use time::{Duration, OffsetDateTime};

pub use client::{CodeGrant, OAuthClient, ProviderError, TokenHint, TokenSet};
pub use pkce::PkceVerifier;
pub use provider::{ClientAuth, ClientCredentials, Endpoints, Provider, ProviderEndpoints};
pub use state::{
    Authorization, AuthorizationRequest, Binding, Expected, FlowMode, MAX_STATE, STATE_TTL, Spent,
};

use crate::error::Error;
pub use crate::store::StatePurpose;
use crate::webhooks::destination::DestinationPolicy;

/// OAuth settings, from configuration (`[oauth]`).
#[derive(Debug, Clone, Default)]
pub struct OAuthSettings {
    /// What provider URLs may name besides public https addresses (development only).
    pub destinations: DestinationPolicy,
    /// Gatehouse's external base URL (`https://auth.example.com`), without a trailing `/`:
    /// the redirect URIs registered at providers hang off it. Empty: no flow can start.
    pub public_url: String,
    /// Providers for the whole platform (`[[oauth.providers]]`).
    pub providers: Vec<Provider>,
}

/// How long a discovery document is kept before it is fetched again (by the injected clock).
const DISCOVERY_TTL: Duration = Duration::minutes(10);
/// The most discovery documents kept: past it, the expired go, then the oldest.
const DISCOVERY_ENTRIES: usize = 256;
/// How long a failed discovery is answered from memory: an issuer that is down (or a sign-in
/// start against an issuer that fails) is asked at most twice a minute (#24).
const DISCOVERY_FAILURE_TTL: Duration = Duration::seconds(30);

/// A cached discovery: the endpoints, or why there are none.
type Discovered = Result<Arc<ProviderEndpoints>, client::ProviderError>;

/// The settings, the HTTP client and the discovery documents fetched, held by the kernel.
#[derive(Debug, Default)]
pub struct OAuthRuntime {
    settings: OAuthSettings,
    client: Option<Arc<dyn OAuthClient>>,
    /// A discovery's answer, or its failure (kept [`DISCOVERY_FAILURE_TTL`]).
    discovered: RwLock<HashMap<String, (OffsetDateTime, Discovered)>>,
}

impl OAuthRuntime {
    #[must_use]
    pub fn new(settings: OAuthSettings, client: Arc<dyn OAuthClient>) -> Self {
        Self {
            settings,
            client: Some(client),
            discovered: RwLock::default(),
        }
    }
}

/// The OAuth client machinery (`oauth`).
#[derive(Debug, Clone, Copy)]
pub struct OAuth<'k>(pub(crate) &'k crate::kernel::Kernel);

crate::kernel::service_handle!(OAuth);

impl crate::kernel::Kernel {
    /// The OAuth client machinery (`oauth`).
    #[must_use]
    pub fn oauth(&self) -> OAuth<'_> {
        OAuth(self)
    }
}

impl<'k> OAuth<'k> {
    /// The settings from configuration.
    #[must_use]
    pub fn settings(&self) -> &'k OAuthSettings {
        &self.0.oauth_runtime().settings
    }

    /// The HTTP client for provider calls; refused when none is configured.
    pub fn client(&self) -> Result<&'k dyn OAuthClient, Error> {
        self.0
            .oauth_runtime()
            .client
            .as_deref()
            .ok_or(Error::DependencyUnavailable(
                "no OAuth client is configured in this process",
            ))
    }

    /// A platform provider by name.
    #[must_use]
    pub fn platform_provider(&self, name: &str) -> Option<&'k Provider> {
        self.settings().providers.iter().find(|p| p.name == name)
    }

    /// `public_url` followed by `path` (which starts with `/`): a redirect URI.
    pub fn redirect_uri(&self, path: &str) -> Result<String, Error> {
        let base = &self.settings().public_url;
        if base.is_empty() {
            return Err(Error::Conflict(
                "oauth.public_url is not configured: providers need it to send people back",
            ));
        }
        Ok(format!("{base}{path}"))
    }

    /// The redirect URI of one target (RFC 9700 4.4.2: one per authorization server, against
    /// mix-up): `{public_url}{prefix}/{target}/callback`, `prefix` being the flow's
    /// (`/v1/connectors`, `/v1/auth/sso`) and `target` the provider's stable key (a platform
    /// provider's name, an organisation provider's id: [`provider::valid_target`]). The state
    /// names its target too, and the callback refuses a state issued for another target than
    /// its path's.
    pub fn target_redirect_uri(&self, prefix: &str, target: &str) -> Result<String, Error> {
        if !provider::valid_target(target) {
            return Err(Error::invalid("provider", "not a provider name"));
        }
        self.redirect_uri(&format!("{prefix}/{target}/callback"))
    }

    /// A provider's endpoints: as configured, or from its discovery document (fetched through
    /// the client and kept ten minutes by the injected clock, a provider's failure 30 seconds;
    /// at most [`DISCOVERY_ENTRIES`] kept).
    pub async fn endpoints(&self, provider: &Provider) -> Result<Arc<ProviderEndpoints>, Error> {
        let issuer = match &provider.endpoints {
            Endpoints::Explicit(e) => return Ok(Arc::new(e.as_ref().clone())),
            Endpoints::Discovery { issuer } => issuer,
        };
        let runtime = self.oauth_runtime();
        let key = issuer.as_str().to_owned();
        let now = self.clock().now();
        if let Some((at, e)) = runtime
            .discovered
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            && *at <= now
        {
            match e {
                Ok(e) if now < *at + DISCOVERY_TTL => return Ok(Arc::clone(e)),
                Err(e) if now < *at + DISCOVERY_FAILURE_TTL => return Err(e.clone().into()),
                _ => {}
            }
        }
        let found = self.client()?.discover(issuer).await.map(Arc::new);
        let mut cache = runtime
            .discovered
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        remember(&mut cache, key, now, found.clone());
        found.map_err(Into::into)
    }
}

/// Keeps `value` under `key`, within [`DISCOVERY_ENTRIES`]: the expired entries go first, then
/// the oldest.
fn remember<V>(
    cache: &mut HashMap<String, (OffsetDateTime, V)>,
    key: String,
    now: OffsetDateTime,
    value: V,
) {
    if cache.len() >= DISCOVERY_ENTRIES && !cache.contains_key(&key) {
        cache.retain(|_, (at, _)| now < *at + DISCOVERY_TTL && *at <= now);
        while cache.len() >= DISCOVERY_ENTRIES {
            let Some(oldest) = cache
                .iter()
                .min_by_key(|(_, (at, _))| *at)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            cache.remove(&oldest);
        }
    }
    cache.insert(key, (now, value));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_discovery_cache_is_bounded_and_drops_the_expired_then_the_oldest() {
        let t0 = OffsetDateTime::UNIX_EPOCH;
        let mut cache = HashMap::new();
        for i in 0..DISCOVERY_ENTRIES {
            let at = t0 + Duration::seconds(i64::try_from(i).unwrap());
            remember(&mut cache, format!("https://id{i}.example"), at, i);
        }
        assert_eq!(cache.len(), DISCOVERY_ENTRIES);
        // One more: the oldest goes, nothing expired yet.
        let now = t0 + Duration::seconds(300);
        remember(&mut cache, "https://new.example".into(), now, 0);
        assert_eq!(cache.len(), DISCOVERY_ENTRIES);
        assert!(!cache.contains_key("https://id0.example"));
        assert!(cache.contains_key("https://id1.example"));
        // Twenty minutes on, every one is expired: they all go at the next insert.
        let later = t0 + Duration::minutes(20);
        remember(&mut cache, "https://later.example".into(), later, 0);
        assert_eq!(cache.len(), 1);
        assert!(cache.contains_key("https://later.example"));
    }
}

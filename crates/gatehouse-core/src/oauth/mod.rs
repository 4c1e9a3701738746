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
use std::time::{Duration, Instant};

pub use client::{CodeGrant, OAuthClient, ProviderError, TokenHint, TokenSet};
pub use pkce::PkceVerifier;
pub use provider::{ClientAuth, ClientCredentials, Endpoints, Provider, ProviderEndpoints};
pub use state::{Authorization, AuthorizationRequest, Binding, Expected, STATE_TTL, Spent};

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

/// How long a discovery document is kept before it is fetched again.
const DISCOVERY_TTL: Duration = Duration::from_secs(600);

/// The settings, the HTTP client and the discovery documents fetched, held by the kernel.
#[derive(Debug, Default)]
pub struct OAuthRuntime {
    settings: OAuthSettings,
    client: Option<Arc<dyn OAuthClient>>,
    discovered: RwLock<HashMap<String, (Instant, Arc<ProviderEndpoints>)>>,
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

    /// A provider's endpoints: as configured, or from its discovery document (fetched through
    /// the client and kept ten minutes).
    pub async fn endpoints(&self, provider: &Provider) -> Result<Arc<ProviderEndpoints>, Error> {
        let issuer = match &provider.endpoints {
            Endpoints::Explicit(e) => return Ok(Arc::new(e.as_ref().clone())),
            Endpoints::Discovery { issuer } => issuer,
        };
        let runtime = self.oauth_runtime();
        let key = issuer.as_str().to_owned();
        if let Some((at, e)) = runtime
            .discovered
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            && at.elapsed() < DISCOVERY_TTL
        {
            return Ok(Arc::clone(e));
        }
        let found = Arc::new(self.client()?.discover(issuer).await?);
        runtime
            .discovered
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, (Instant::now(), Arc::clone(&found)));
        Ok(found)
    }
}

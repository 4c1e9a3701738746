//! `[sso]`: single sign-on per organisation (issue 24): the name servers that answer the email
//! domains' challenge records, and which platform providers (`[[oauth.providers]]`) people may
//! sign in with (social sign-in).

use std::net::SocketAddr;

use gatehouse_core::oauth::{Endpoints, OAuthSettings};
use gatehouse_core::sso::ORG_PROVIDER;
use serde::{Deserialize, Serialize};

use super::ConfigError;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SsoConfig {
    /// Name servers asked for `_gatehouse-challenge.<domain>` (UDP, "address:port"); the
    /// system's when empty.
    pub dns_servers: Vec<String>,
    /// Names of `[[oauth.providers]]` people may sign in with (`/v1/auth/sso/{name}/start`):
    /// each an OpenID provider by `issuer`. Empty: no social sign-in.
    pub social_providers: Vec<String>,
    /// Where the callback of a browser sign-in (`session_mode: "cookie"`) sends the browser once
    /// done. Empty: it answers in its body.
    pub return_url: String,
}

/// What `[sso]` comes to.
#[derive(Debug, Clone, Default)]
pub struct SsoSetup {
    pub dns_servers: Vec<SocketAddr>,
    pub social_providers: Vec<String>,
    pub return_url: Option<String>,
}

pub(super) fn validate(
    c: &SsoConfig,
    oauth: &OAuthSettings,
    production: bool,
) -> Result<SsoSetup, ConfigError> {
    let return_url = if c.return_url.is_empty() {
        None
    } else {
        let u = url::Url::parse(&c.return_url)
            .map_err(|e| ConfigError(format!("sso.return_url: not a URL ({e})")))?;
        if !(u.scheme() == "https" || (!production && u.scheme() == "http"))
            || u.fragment().is_some()
        {
            return Err(ConfigError(
                "sso.return_url: an https:// URL without a fragment (http:// only in development)"
                    .into(),
            ));
        }
        Some(c.return_url.clone())
    };
    for name in &c.social_providers {
        let provider = oauth.providers.iter().find(|p| &p.name == name);
        match provider.map(|p| &p.endpoints) {
            None => {
                return Err(ConfigError(format!(
                    "sso.social_providers: {name:?} is not one of [[oauth.providers]]"
                )));
            }
            Some(Endpoints::Explicit(_)) => {
                return Err(ConfigError(format!(
                    "sso.social_providers: {name:?} must be an OpenID provider given by issuer \
                     (its ID tokens are verified against its discovery document and keys)"
                )));
            }
            Some(Endpoints::Discovery { .. }) => {}
        }
        // The sign-in path takes an organisation's id, a domain or a provider's name.
        if uuid::Uuid::try_parse(name).is_ok() || name == ORG_PROVIDER {
            return Err(ConfigError(format!(
                "sso.social_providers: {name:?} cannot be told from an organisation's sign-on; \
                 rename the provider"
            )));
        }
    }
    let mut dns_servers = Vec::with_capacity(c.dns_servers.len());
    for s in &c.dns_servers {
        dns_servers.push(s.parse::<SocketAddr>().map_err(|_| {
            ConfigError(format!(
                "sso.dns_servers: {s:?} is not an address and port such as \"10.0.0.2:53\""
            ))
        })?);
    }
    Ok(SsoSetup {
        dns_servers,
        social_providers: c.social_providers.clone(),
        return_url,
    })
}

impl SsoSetup {
    /// Single sign-on's resolver for the domains' challenge records, the platform providers
    /// people may sign in with, and the browser sign-in's return URL, for the kernel.
    pub(crate) fn state(&self) -> Result<gatehouse_core::sso::SsoState, String> {
        let lookups = gatehouse_infra::dns::TxtLookups::for_setting(&self.dns_servers, "sso")?;
        Ok(gatehouse_core::sso::SsoState::new(
            std::sync::Arc::new(lookups),
            self.social_providers.clone(),
            self.return_url.clone(),
        ))
    }
}

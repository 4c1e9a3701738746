//! `[oauth]` and `[[oauth.providers]]`: the OAuth client Gatehouse is at providers (issue 24):
//! its external URL (redirect URIs hang off it), where provider calls may go, and the providers
//! offered to every organisation. A client secret comes from a file (mode 0600), never from
//! this file.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use gatehouse_core::connectors::ConnectorSettings;
use gatehouse_core::oauth::OAuthSettings;
use gatehouse_core::oauth::provider::{
    ClientAuth, ClientCredentials, Endpoints, Provider, ProviderEndpoints, check_endpoint,
};
use gatehouse_core::webhooks::DestinationPolicy;
use gatehouse_infra::oauth_client::OAuthClientSettings;
use serde::{Deserialize, Serialize};

use super::{ConfigError, refuse};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OAuthConfig {
    /// Gatehouse's external base URL (`https://auth.example.com`): the redirect URIs registered
    /// at providers are this followed by the callback's path. Empty: no flow can start.
    pub public_url: String,
    /// Development only: provider URLs over plain http.
    pub allow_http: bool,
    /// Development only: providers on loopback addresses (no other private range is allowed).
    pub allow_loopback: bool,
    /// Name servers the client resolves providers with; the system's when empty.
    pub dns_servers: Vec<String>,
    /// One provider call's time bound, connection included (1 to 60).
    pub timeout_secs: u64,
    /// Providers offered to every organisation.
    pub providers: Vec<ProviderConfig>,
    /// Where the connectors' callback sends the browser once done (the product's page);
    /// empty: the callback answers JSON.
    pub connector_return_url: String,
    /// How long before an access token expires the refresh job refreshes it (at most half the
    /// token's lifetime); 10 to 86400.
    pub connector_refresh_ahead_secs: u64,
    /// How often the refresh job looks for connectors due (under its lease); at least 50.
    pub connector_poll_interval_ms: u64,
    /// The waits after failed refreshes, in seconds (the last repeats); empty: 30 s, 2 min,
    /// 10 min, 1 h, 6 h.
    pub connector_retry_waits_secs: Vec<u64>,
}

impl Default for OAuthConfig {
    fn default() -> Self {
        Self {
            public_url: String::new(),
            allow_http: false,
            allow_loopback: false,
            dns_servers: Vec::new(),
            timeout_secs: 10,
            providers: Vec::new(),
            connector_return_url: String::new(),
            connector_refresh_ahead_secs: 300,
            connector_poll_interval_ms: 5_000,
            connector_retry_waits_secs: Vec::new(),
        }
    }
}

/// One `[[oauth.providers]]`: `issuer` (OpenID Connect discovery) or `authorization_url` and
/// `token_url` (plain OAuth 2.0, with the optional `revocation_url`, `userinfo_url`,
/// `jwks_url`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProviderConfig {
    pub name: String,
    pub issuer: Option<String>,
    pub authorization_url: Option<String>,
    pub token_url: Option<String>,
    pub revocation_url: Option<String>,
    pub userinfo_url: Option<String>,
    pub jwks_url: Option<String>,
    pub client_id: String,
    /// A file holding the client secret (mode 0600); none for a public client.
    pub client_secret_file: Option<PathBuf>,
    /// `client_secret_basic` (the default) or `client_secret_post`.
    pub client_auth: Option<String>,
    pub scopes: Vec<String>,
}

/// What the kernel and the HTTP client take.
#[derive(Debug, Clone)]
pub struct OAuthSetup {
    pub settings: OAuthSettings,
    pub client: OAuthClientSettings,
    pub connectors: ConnectorSettings,
    /// How often the connectors' refresh job ticks.
    pub connector_poll: Duration,
}

fn provider(p: &ProviderConfig, policy: DestinationPolicy) -> Result<Provider, ConfigError> {
    let name = &p.name;
    let say = |e: gatehouse_core::Error| ConfigError(format!("oauth.providers {name:?}: {e}"));
    let url = |field: &'static str, v: &Option<String>| {
        v.as_deref()
            .map(|u| check_endpoint(field, u, policy))
            .transpose()
            .map_err(say)
    };
    let endpoints = match (&p.issuer, &p.authorization_url, &p.token_url) {
        (Some(issuer), None, None) => Endpoints::Discovery {
            issuer: check_endpoint("issuer", issuer, policy).map_err(say)?,
        },
        // By hand, with or without the issuer the provider answers as (its ID tokens' and
        // RFC 9207 responses' `iss`, compared exactly).
        (issuer, Some(_), Some(_)) => Endpoints::Explicit(Box::new(ProviderEndpoints {
            issuer: issuer.clone(),
            iss_required: false,
            authorization: url("authorization_url", &p.authorization_url)?
                .ok_or_else(|| ConfigError("unreachable".into()))?,
            token: url("token_url", &p.token_url)?
                .ok_or_else(|| ConfigError("unreachable".into()))?,
            revocation: url("revocation_url", &p.revocation_url)?,
            userinfo: url("userinfo_url", &p.userinfo_url)?,
            jwks: url("jwks_url", &p.jwks_url)?,
        })),
        _ => {
            return refuse(format!(
                "oauth.providers {name:?}: give either issuer alone (OpenID Connect discovery) or \
                 both authorization_url and token_url (by hand, with the issuer they answer as \
                 if any)"
            ));
        }
    };
    let client_secret = p
        .client_secret_file
        .as_deref()
        .map(crate::keyfile::secret_text)
        .transpose()
        .map_err(|e| ConfigError(format!("oauth.providers {name:?}: client_secret_file: {e}")))?;
    let auth = match p.client_auth.as_deref() {
        None => ClientAuth::Basic,
        Some(s) => ClientAuth::parse(s).ok_or_else(|| {
            ConfigError(format!(
                "oauth.providers {name:?}: client_auth is client_secret_basic or \
                 client_secret_post"
            ))
        })?,
    };
    let provider = Provider {
        name: p.name.clone(),
        endpoints,
        client: ClientCredentials {
            client_id: p.client_id.clone(),
            client_secret,
            auth,
        },
        scopes: p.scopes.clone(),
    };
    provider.validate(policy).map_err(say)?;
    Ok(provider)
}

pub(super) fn validate(c: &OAuthConfig, production: bool) -> Result<OAuthSetup, ConfigError> {
    if production && (c.allow_http || c.allow_loopback) {
        return refuse(
            "oauth.allow_http and oauth.allow_loopback: development settings; production calls \
             providers only over https at public addresses",
        );
    }
    let policy = DestinationPolicy {
        allow_http: c.allow_http,
        allow_loopback: c.allow_loopback,
    };
    let public_url = c.public_url.trim_end_matches('/').to_owned();
    if !public_url.is_empty() {
        let parsed = url::Url::parse(&public_url)
            .map_err(|e| ConfigError(format!("oauth.public_url: not a URL ({e})")))?;
        let https = parsed.scheme() == "https";
        if !(https || (!production && parsed.scheme() == "http"))
            || parsed.query().is_some()
            || parsed.fragment().is_some()
        {
            return refuse(
                "oauth.public_url: an https:// base URL without query or fragment (http:// only \
                 in development): providers send people and codes back to it",
            );
        }
    }
    if !(1..=60).contains(&c.timeout_secs) {
        return refuse("oauth.timeout_secs: 1 to 60");
    }
    let mut dns = Vec::with_capacity(c.dns_servers.len());
    for s in &c.dns_servers {
        dns.push(s.parse::<SocketAddr>().map_err(|_| {
            ConfigError(format!(
                "oauth.dns_servers: {s:?} is not an address and port such as \"10.0.0.2:53\""
            ))
        })?);
    }
    let connectors = connector_settings(c, production)?;
    let mut providers: Vec<Provider> = Vec::with_capacity(c.providers.len());
    for p in &c.providers {
        let p = provider(p, policy)?;
        if providers.iter().any(|q| q.name == p.name) {
            return refuse(format!("oauth.providers: {:?} is named twice", p.name));
        }
        providers.push(p);
    }
    Ok(OAuthSetup {
        settings: OAuthSettings {
            destinations: policy,
            public_url,
            providers,
        },
        client: OAuthClientSettings {
            policy,
            dns_servers: dns,
            timeout: Duration::from_secs(c.timeout_secs),
        },
        connectors,
        connector_poll: Duration::from_millis(c.connector_poll_interval_ms),
    })
}

fn connector_settings(c: &OAuthConfig, production: bool) -> Result<ConnectorSettings, ConfigError> {
    if !(10..=86_400).contains(&c.connector_refresh_ahead_secs) || c.connector_poll_interval_ms < 50
    {
        return refuse(
            "oauth: connector_refresh_ahead_secs 10 to 86400, connector_poll_interval_ms at least 50",
        );
    }
    if c.connector_retry_waits_secs.len() > 20
        || c.connector_retry_waits_secs
            .iter()
            .any(|w| !(1..=86_400).contains(w))
    {
        return refuse(
            "oauth.connector_retry_waits_secs: at most 20 waits, each 1 to 86400 seconds",
        );
    }
    let return_url = if c.connector_return_url.is_empty() {
        None
    } else {
        let u = url::Url::parse(&c.connector_return_url)
            .map_err(|e| ConfigError(format!("oauth.connector_return_url: not a URL ({e})")))?;
        if !(u.scheme() == "https" || (!production && u.scheme() == "http"))
            || u.fragment().is_some()
        {
            return refuse(
                "oauth.connector_return_url: an https:// URL without a fragment (http:// only in \
                 development)",
            );
        }
        Some(c.connector_return_url.clone())
    };
    let defaults = ConnectorSettings::default();
    Ok(ConnectorSettings {
        refresh_ahead: time::Duration::seconds(
            i64::try_from(c.connector_refresh_ahead_secs).unwrap_or(300),
        ),
        retry_waits: if c.connector_retry_waits_secs.is_empty() {
            defaults.retry_waits
        } else {
            c.connector_retry_waits_secs
                .iter()
                .map(|s| time::Duration::seconds(i64::try_from(*s).unwrap_or(86_400)))
                .collect()
        },
        return_url,
        batch: defaults.batch,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_are_checked_and_development_settings_refused_in_production() {
        let mut c = OAuthConfig {
            public_url: "https://auth.example.com/".into(),
            providers: vec![ProviderConfig {
                name: "crm".into(),
                issuer: Some("https://id.example.com".into()),
                client_id: "gatehouse".into(),
                scopes: vec!["openid".into()],
                ..ProviderConfig::default()
            }],
            ..OAuthConfig::default()
        };
        // Production takes an https public URL and providers at public addresses, never http.
        assert!(validate(&c, true).is_ok());
        let mut plain = c.clone();
        plain.public_url = "http://auth.example.com".into();
        assert!(validate(&plain, true).is_err());
        assert!(validate(&plain, false).is_ok());
        let ok = validate(&c, false).unwrap();
        assert_eq!(ok.settings.public_url, "https://auth.example.com");
        assert_eq!(ok.settings.providers.len(), 1);
        let mut no_flows = c.clone();
        no_flows.public_url = String::new();
        assert!(validate(&no_flows, true).is_ok());
        no_flows.allow_loopback = true;
        assert!(validate(&no_flows, true).is_err());
        c.allow_loopback = true;
        assert!(validate(&c, false).is_ok());
        c.allow_loopback = false;
        c.providers[0].token_url = Some("https://id.example.com/token".into());
        assert!(
            validate(&c, false).is_err(),
            "an issuer with a token URL and no authorization URL"
        );
        // By hand with the issuer it answers as: kept, for `iss` to be compared with.
        let mut by_hand = c.clone();
        by_hand.providers[0].authorization_url = Some("https://id.example.com/auth".into());
        let p = validate(&by_hand, false)
            .unwrap()
            .settings
            .providers
            .remove(0);
        match p.endpoints {
            Endpoints::Explicit(e) => {
                assert_eq!(e.issuer.as_deref(), Some("https://id.example.com"))
            }
            Endpoints::Discovery { .. } => panic!("configured by hand"),
        }
        by_hand.providers[0].issuer = Some("not a url".into());
        assert!(validate(&by_hand, false).is_err());
        c.providers[0].issuer = None;
        assert!(
            validate(&c, false).is_err(),
            "a token URL without an authorization URL"
        );
        c.providers[0].authorization_url = Some("https://id.example.com/auth".into());
        assert!(validate(&c, false).is_ok());
        c.providers[0].revocation_url = Some("https://10.0.0.7/revoke".into());
        assert!(validate(&c, false).is_err(), "a private address");
        c.providers[0].revocation_url = None;
        c.providers.push(c.providers[0].clone());
        assert!(validate(&c, false).is_err(), "a name twice");
        c.providers.pop();
        c.public_url = "http://auth.example.com".into();
        assert!(validate(&c, true).is_err());
        assert!(validate(&c, false).is_ok());
    }
}

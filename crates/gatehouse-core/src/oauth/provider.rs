//! What Gatehouse knows of a provider: OpenID Connect by issuer (its endpoints found through
//! discovery) or plain OAuth 2.0 with its endpoints named; the client Gatehouse is there (id,
//! secret, how the secret is presented) and the scopes it asks for. Shapes are checked here
//! (https, no credentials in the URL, no private address written in it); addresses a name
//! resolves to are checked by the client at every request.

use gatehouse_crypto::SecretString;
use url::Url;

use crate::error::Error;
use crate::webhooks::destination::{DestinationPolicy, check_url};

/// A provider's endpoints, as configured or as its discovery document gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderEndpoints {
    /// The issuer an OpenID provider names itself (`iss` of its ID tokens); `None` for plain
    /// OAuth 2.0.
    pub issuer: Option<String>,
    pub authorization: Url,
    pub token: Url,
    /// RFC 7009 token revocation, when the provider has it.
    pub revocation: Option<Url>,
    pub userinfo: Option<Url>,
    pub jwks: Option<Url>,
    /// RFC 9207: the provider's discovery document advertises
    /// `authorization_response_iss_parameter_supported`, so a response without `iss` is refused.
    pub iss_required: bool,
}

/// Where a provider's endpoints come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoints {
    /// OpenID Connect: `{issuer}/.well-known/openid-configuration`, whose `issuer` must be this.
    Discovery { issuer: Url },
    /// Plain OAuth 2.0 (or an OpenID provider configured by hand).
    Explicit(Box<ProviderEndpoints>),
}

/// How the client authenticates at the token and revocation endpoints (RFC 6749 2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// HTTP Basic with the form-encoded id and secret (`client_secret_basic`, the default).
    #[default]
    Basic,
    /// `client_id` and `client_secret` in the form body (`client_secret_post`).
    Post,
}

impl ClientAuth {
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Basic => "client_secret_basic",
            Self::Post => "client_secret_post",
        }
    }

    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "client_secret_basic" => Some(Self::Basic),
            "client_secret_post" => Some(Self::Post),
            _ => None,
        }
    }
}

/// The client Gatehouse is at a provider. The secret zeroes on drop and never prints.
#[derive(Debug, Clone)]
pub struct ClientCredentials {
    pub client_id: String,
    /// `None` for a public client (PKCE alone).
    pub client_secret: Option<SecretString>,
    pub auth: ClientAuth,
}

/// A provider: platform-wide (configuration) or one organisation's (the API).
#[derive(Debug, Clone)]
pub struct Provider {
    /// Its key in URLs and rows: 1 to 64 of `a-z`, `0-9`, `-`, `_`.
    pub name: String,
    pub endpoints: Endpoints,
    pub client: ClientCredentials,
    /// The scopes asked for, in order.
    pub scopes: Vec<String>,
}

/// A provider's name: 1 to 64 of `a-z`, `0-9`, `-`, `_`, and not shaped as a UUID (an
/// organisation's provider is keyed by its id, which a name can then never equal).
#[must_use]
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_'))
        && uuid::Uuid::try_parse(name).is_err()
}

/// A flow's target as a state and a callback's path name it: a platform provider's name, or
/// the id of an organisation's provider (lower-case hyphenated UUID).
#[must_use]
pub fn valid_target(target: &str) -> bool {
    valid_name(target)
        || uuid::Uuid::try_parse(target).is_ok_and(|u| u.hyphenated().to_string() == target)
}

/// A scope token (RFC 6749 3.3): printable ASCII without space, `"` or `\`, at most 256.
#[must_use]
pub fn valid_scope(scope: &str) -> bool {
    (1..=256).contains(&scope.len())
        && scope
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

/// A client id: 1 to 256 printable ASCII characters.
#[must_use]
pub fn valid_client_id(id: &str) -> bool {
    (1..=256).contains(&id.len()) && id.bytes().all(|b| (0x20..=0x7e).contains(&b))
}

/// Checks an endpoint URL's shape against the destination rules (https unless development
/// allows http; no credentials, no fragment; a literal address must be public). `field` names
/// it in the refusal.
pub fn check_endpoint(
    field: &'static str,
    text: &str,
    policy: DestinationPolicy,
) -> Result<Url, Error> {
    check_url(text, policy).map_err(|why| Error::invalid(field, why))
}

impl Provider {
    /// Checks every part's shape: name, client id, scopes and the endpoints under `policy`.
    pub fn validate(&self, policy: DestinationPolicy) -> Result<(), Error> {
        if !valid_name(&self.name) {
            return Err(Error::invalid(
                "name",
                "1 to 64 of a-z, 0-9, '-' and '_', not shaped as a UUID",
            ));
        }
        if !valid_client_id(&self.client.client_id) {
            return Err(Error::invalid(
                "client_id",
                "1 to 256 printable ASCII characters",
            ));
        }
        if self
            .client
            .client_secret
            .as_ref()
            .is_some_and(|s| s.expose().is_empty() || s.expose().len() > 1024)
        {
            return Err(Error::invalid("client_secret", "1 to 1024 characters"));
        }
        if self.scopes.len() > 32 || !self.scopes.iter().all(|s| valid_scope(s)) {
            return Err(Error::invalid(
                "scopes",
                "at most 32 scope tokens, each printable ASCII without spaces",
            ));
        }
        match &self.endpoints {
            Endpoints::Discovery { issuer } => {
                check_endpoint("issuer", issuer.as_str(), policy)?;
            }
            Endpoints::Explicit(e) => {
                // An issuer given by hand is an identifier compared exactly (`iss`), written as
                // a URL the way discovery's would be.
                if let Some(issuer) = &e.issuer {
                    Url::parse(issuer)
                        .ok()
                        .filter(|u| {
                            matches!(u.scheme(), "https" | "http")
                                && u.query().is_none()
                                && u.fragment().is_none()
                        })
                        .ok_or_else(|| Error::invalid("issuer", "not an issuer URL"))?;
                }
                check_endpoint("authorization_url", e.authorization.as_str(), policy)?;
                check_endpoint("token_url", e.token.as_str(), policy)?;
                for (field, url) in [
                    ("revocation_url", &e.revocation),
                    ("userinfo_url", &e.userinfo),
                    ("jwks_url", &e.jwks),
                ] {
                    if let Some(u) = url {
                        check_endpoint(field, u.as_str(), policy)?;
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(endpoints: Endpoints) -> Provider {
        Provider {
            name: "crm".into(),
            endpoints,
            client: ClientCredentials {
                client_id: "gatehouse".into(),
                client_secret: Some(SecretString::new("s3cret".into())),
                auth: ClientAuth::Basic,
            },
            scopes: vec!["openid".into(), "offline_access".into()],
        }
    }

    #[test]
    fn shapes_are_checked_and_private_addresses_refused() {
        let strict = DestinationPolicy::default();
        let issuer = |s: &str| Endpoints::Discovery {
            issuer: Url::parse(s).unwrap(),
        };
        assert!(
            provider(issuer("https://id.example.com"))
                .validate(strict)
                .is_ok()
        );
        for bad in [
            "http://id.example.com",
            "https://127.0.0.1:4000",
            "https://169.254.169.254/",
            "https://user:pw@id.example.com",
        ] {
            assert!(provider(issuer(bad)).validate(strict).is_err(), "{bad}");
        }
        let dev = DestinationPolicy {
            allow_http: true,
            allow_loopback: true,
        };
        assert!(
            provider(issuer("http://127.0.0.1:4000"))
                .validate(dev)
                .is_ok()
        );
        assert!(
            provider(issuer("http://10.0.0.1:4000"))
                .validate(dev)
                .is_err()
        );
        let mut p = provider(issuer("https://id.example.com"));
        p.name = "Bad Name".into();
        assert!(p.validate(strict).is_err());
        let mut p = provider(issuer("https://id.example.com"));
        p.scopes = vec!["two words".into()];
        assert!(p.validate(strict).is_err());
        assert!(!format!("{p:?}").contains("s3cret"));
    }
}

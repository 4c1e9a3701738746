//! The calls Gatehouse makes to a provider, as a trait the infrastructure layer implements over
//! HTTP (`gatehouse_infra::oauth_client`), and what they answer. Core decides what an answer
//! means ([`super::wire`] parses every body); the client only moves bytes, under the SSRF rules,
//! with no redirect followed, bounded sizes and a bounded time.

use async_trait::async_trait;
use gatehouse_crypto::SecretString;
use url::Url;

use super::pkce::PkceVerifier;
use super::provider::{ClientCredentials, ProviderEndpoints};

/// Tokens a token endpoint issued (RFC 6749 5.1). Every token zeroes on drop and never prints.
#[derive(Debug, Clone)]
pub struct TokenSet {
    pub access_token: SecretString,
    /// As sent (`Bearer`, any case).
    pub token_type: String,
    /// Seconds the access token lives, when the provider says.
    pub expires_in: Option<u64>,
    pub refresh_token: Option<SecretString>,
    /// The scopes granted, space-separated, when the provider says (RFC 6749 5.1: absent means
    /// those asked for).
    pub scope: Option<String>,
    /// An OpenID Connect ID token (a JWT), verified by whoever asked for it.
    pub id_token: Option<SecretString>,
}

/// Why a provider call gave no usable answer. Every message is safe to log and to show: no
/// token, no secret, no response body beyond the provider's own error code (RFC 6749's
/// characters only; its free-text `error_description` is never kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderError {
    /// The provider answered with an OAuth error (RFC 6749 5.2): `invalid_grant` and the like.
    Refused { error: String },
    /// An answer outside the protocol: not JSON, a field missing or of the wrong type, too
    /// long, a discovery document naming another issuer.
    Garbage(String),
    /// No answer: no connection, a timeout, a 5xx.
    Unavailable(String),
    /// The destination was refused by the SSRF rules; nothing was sent.
    Destination(String),
}

impl ProviderError {
    /// Whether the provider refused the grant itself (`invalid_grant`): an authorization code
    /// already used or for another client, a refresh token revoked or expired. Trying again
    /// cannot help; the person must authorize again.
    #[must_use]
    pub fn is_invalid_grant(&self) -> bool {
        matches!(self, Self::Refused { error, .. } if error == "invalid_grant")
    }

    /// Whether trying later may succeed (no answer, or a 5xx).
    #[must_use]
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

impl std::fmt::Display for ProviderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Refused { error } => write!(f, "the provider refused: {error}"),
            Self::Garbage(why) => write!(f, "the provider's answer is not usable: {why}"),
            Self::Unavailable(why) => write!(f, "the provider did not answer: {why}"),
            Self::Destination(why) => write!(f, "the provider's address is refused: {why}"),
        }
    }
}

impl std::error::Error for ProviderError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_grant_never_prints_its_code_and_error_codes_keep_to_rfc_6749() {
        let verifier = PkceVerifier::generate().unwrap();
        let grant = CodeGrant {
            code: "the-code-7Hq",
            verifier: &verifier,
            redirect_uri: "https://gh.example/v1/connectors/crm/callback",
        };
        let shown = format!("{grant:?}");
        assert!(!shown.contains("the-code-7Hq"), "{shown}");
        assert!(!shown.contains(verifier.expose()), "{shown}");
        assert!(valid_error_code("access_denied"));
        assert!(valid_error_code("invalid_request"));
        for bad in [
            "",
            "a\"b",
            "back\\slash",
            "line\nbreak",
            "caf\u{e9}",
            &"x".repeat(65),
        ] {
            assert!(!valid_error_code(bad), "{bad:?}");
        }
    }
}

impl From<ProviderError> for crate::Error {
    fn from(e: ProviderError) -> Self {
        Self::Provider(e.to_string())
    }
}

/// An authorization code to redeem, with the verifier of its PKCE challenge and the redirect
/// URI it was sent to. Its `Debug` never prints the code.
#[derive(Clone, Copy)]
pub struct CodeGrant<'a> {
    pub code: &'a str,
    pub verifier: &'a PkceVerifier,
    pub redirect_uri: &'a str,
}

impl std::fmt::Debug for CodeGrant<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodeGrant")
            .field("code", &"[redacted]")
            .field("verifier", &self.verifier)
            .field("redirect_uri", &self.redirect_uri)
            .finish()
    }
}

/// Whether `error` is an OAuth error code as RFC 6749 (appendix A.7) writes one: 1 to 64 of
/// `%x20-21 / %x23-5B / %x5D-7E`.
#[must_use]
pub fn valid_error_code(error: &str) -> bool {
    (1..=64).contains(&error.len())
        && error
            .bytes()
            .all(|b| matches!(b, 0x20..=0x21 | 0x23..=0x5b | 0x5d..=0x7e))
}

/// Which token a revocation names (RFC 7009 2.1's `token_type_hint`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenHint {
    AccessToken,
    RefreshToken,
}

impl TokenHint {
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::AccessToken => "access_token",
            Self::RefreshToken => "refresh_token",
        }
    }
}

/// The provider calls. Each resolves the endpoint's host and checks every address against the
/// destination rules before connecting, follows no redirect, reads at most a bounded answer
/// within a bounded time, and turns anything but the protocol's answer into a
/// [`ProviderError`].
#[async_trait]
pub trait OAuthClient: Send + Sync + std::fmt::Debug {
    /// OpenID Connect discovery: `{issuer}/.well-known/openid-configuration`, whose `issuer`
    /// must equal `issuer`.
    async fn discover(&self, issuer: &Url) -> Result<ProviderEndpoints, ProviderError>;

    /// Redeems an authorization code (RFC 6749 4.1.3, with RFC 7636's `code_verifier`).
    async fn exchange_code(
        &self,
        token_url: &Url,
        client: &ClientCredentials,
        grant: CodeGrant<'_>,
    ) -> Result<TokenSet, ProviderError>;

    /// Uses a refresh token (RFC 6749 6).
    async fn refresh(
        &self,
        token_url: &Url,
        client: &ClientCredentials,
        refresh_token: &SecretString,
    ) -> Result<TokenSet, ProviderError>;

    /// Revokes a token (RFC 7009). A token the provider did not know counts as revoked (200).
    async fn revoke(
        &self,
        revocation_url: &Url,
        client: &ClientCredentials,
        token: &SecretString,
        hint: TokenHint,
    ) -> Result<(), ProviderError>;

    /// The claims the userinfo endpoint returns for `access_token` (a JSON object).
    async fn userinfo(
        &self,
        userinfo_url: &Url,
        access_token: &SecretString,
    ) -> Result<serde_json::Map<String, serde_json::Value>, ProviderError>;

    /// The provider's JSON Web Key Set (an object with a `keys` array), for ID tokens.
    async fn jwks(&self, jwks_url: &Url) -> Result<serde_json::Value, ProviderError>;
}

//! The access token's claims (RFC 7519, with `act` from RFC 8693 under impersonation).

use gatehouse_crypto::HasExpiry;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Act {
    /// The operator acting as `sub`.
    pub sub: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    pub sid: String,
    pub tier: String,
    pub iat: u64,
    pub exp: u64,
    pub jti: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Act>,
    /// Browser (cookie) sessions: SHA-256 of the CSRF token, base64url, binding the token sent in
    /// `x-csrf-token` to this access token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csrf: Option<String>,
}

impl HasExpiry for AccessClaims {
    fn expires_at(&self) -> u64 {
        self.exp
    }
}

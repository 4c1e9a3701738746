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
    /// Authentication methods (RFC 8176): `pwd`, plus `otp` once a second factor was checked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
    /// When the password was last checked for this session (OpenID Connect `auth_time`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<u64>,
    /// When a second factor was last checked for this session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mfa_time: Option<u64>,
    /// Whether the user has a second factor enrolled (then only `mfa_time` counts for step-up).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mfa: bool,
    /// Whether a second factor is required of the user (by the platform or the token's
    /// organisation) when the token was issued; with `mfa` false, only enrolling is allowed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mfa_required: bool,
    /// Whether the user's email is verified.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub email_verified: bool,
}

impl HasExpiry for AccessClaims {
    fn expires_at(&self) -> u64 {
        self.exp
    }
}

/// base64url(SHA-256(csrf token)): what the access token carries to bind its CSRF token.
#[must_use]
pub fn csrf_digest(csrf: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(gatehouse_crypto::sha256(&[csrf.as_bytes()]))
}

//! Identity settings, validated by the configuration loader.

use time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentitySettings {
    /// The `iss` claim: the public base URL of this Gatehouse.
    pub issuer: String,
    /// The `aud` of tenant tokens; operator tokens use `{audience}-operators`.
    pub audience: String,
    pub access_token_ttl: Duration,
    pub customer_session_ttl: Duration,
    pub operator_session_ttl: Duration,
    /// Impersonation sessions last this long and are never renewed.
    pub impersonation_ttl: Duration,
    pub invitation_ttl: Duration,
    /// Clock skew tolerated on `exp`, in seconds.
    pub leeway_secs: u64,
}

impl Default for IdentitySettings {
    fn default() -> Self {
        Self {
            issuer: "http://127.0.0.1:8080".to_owned(),
            audience: "gatehouse".to_owned(),
            access_token_ttl: Duration::minutes(15),
            customer_session_ttl: Duration::days(7),
            operator_session_ttl: Duration::hours(12),
            impersonation_ttl: Duration::minutes(30),
            invitation_ttl: Duration::days(7),
            leeway_secs: 30,
        }
    }
}

impl IdentitySettings {
    #[must_use]
    pub fn operator_audience(&self) -> String {
        format!("{}-operators", self.audience)
    }
}

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
    /// Permissions that need a recent second factor (step-up).
    pub step_up_permissions: Vec<String>,
    /// How recent "recent" is.
    pub step_up_window: Duration,
    /// Whether an account without a second factor steps up with its password (otherwise such
    /// accounts cannot use step-up permissions until they enrol one).
    pub step_up_password_fallback: bool,
    /// The second step of a sign-in must follow the password within this.
    pub mfa_challenge_ttl: Duration,
    pub password_reset_ttl: Duration,
    pub email_verification_ttl: Duration,
    /// What an account whose email is not verified may do.
    pub unverified_access: UnverifiedAccess,
    /// The issuer label authenticator apps show next to the account.
    pub totp_issuer: String,
    /// Whether an operator must show a TOTP code at every sign-in (an operator without a factor
    /// cannot sign in at all). On by default in production.
    pub operator_totp_required: bool,
    /// Whether every person must have a second factor (ASVS 6.3.3): until one is confirmed, a
    /// signed-in account may only enrol it. An organisation may require it of its members alone.
    pub require_second_factor: bool,
    /// A customer or operator session with no request for this long is not refreshed again:
    /// NIST SP 800-63B's AAL2 inactivity limit by default (see docs/SECURITY.md).
    pub idle_timeout: Duration,
    /// At most this many live customer sessions per account; `None` for no cap.
    pub max_sessions_per_account: Option<u32>,
    /// What a sign-in beyond `max_sessions_per_account` does.
    pub session_limit_action: SessionLimitAction,
}

/// What a sign-in does when the account already has its most concurrent sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionLimitAction {
    /// The account's oldest sessions end to make room.
    EndOldest,
    /// The sign-in is refused (`session_limit_reached`).
    Refuse,
}

impl SessionLimitAction {
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::EndOldest => "end_oldest",
            Self::Refuse => "refuse",
        }
    }

    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "end_oldest" => Some(Self::EndOldest),
            "refuse" => Some(Self::Refuse),
            _ => None,
        }
    }
}

/// What an account with an unverified email may do in its organisations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnverifiedAccess {
    /// Everything its role grants.
    Full,
    /// Only reading (`org.read`, `audit.read`) until verified.
    ReadOnly,
}

impl UnverifiedAccess {
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::ReadOnly => "read_only",
        }
    }

    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "full" => Some(Self::Full),
            "read_only" => Some(Self::ReadOnly),
            _ => None,
        }
    }
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
            step_up_permissions: [
                "secrets.reveal",
                "data.export",
                "data.delete",
                "members.manage",
                "transit.manage",
                "grants.manage",
            ]
            .map(str::to_owned)
            .to_vec(),
            step_up_window: Duration::minutes(5),
            step_up_password_fallback: true,
            mfa_challenge_ttl: Duration::minutes(5),
            password_reset_ttl: Duration::minutes(30),
            email_verification_ttl: Duration::hours(24),
            unverified_access: UnverifiedAccess::Full,
            totp_issuer: "Gatehouse".to_owned(),
            operator_totp_required: false,
            require_second_factor: false,
            idle_timeout: Duration::minutes(30),
            max_sessions_per_account: None,
            session_limit_action: SessionLimitAction::EndOldest,
        }
    }
}

impl IdentitySettings {
    #[must_use]
    pub fn operator_audience(&self) -> String {
        format!("{}-operators", self.audience)
    }
}

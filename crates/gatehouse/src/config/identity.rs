//! `[identity]`: tokens, sessions, step-up and recovery lifetimes. Defaults are core's
//! `IdentitySettings::default()`, written once there.

use gatehouse_core::identity::{
    IdentitySettings, Permission, SessionLimitAction, UnverifiedAccess,
};
use serde::{Deserialize, Serialize};

use super::{ConfigError, refuse};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityConfig {
    /// The `iss` claim of access tokens: this Gatehouse's public base URL.
    pub issuer: String,
    /// The `aud` claim of tenant tokens; operator tokens use `{audience}-operators`.
    pub audience: String,
    pub access_token_ttl_secs: u64,
    pub customer_session_ttl_secs: u64,
    pub operator_session_ttl_secs: u64,
    pub impersonation_ttl_secs: u64,
    pub invitation_ttl_secs: u64,
    /// Clock skew tolerated on `exp`.
    pub leeway_secs: u64,
    /// Permissions that need a recent second factor (step-up).
    pub step_up_permissions: Vec<String>,
    pub step_up_window_secs: u64,
    /// An account without a second factor steps up with its password (otherwise it must enrol).
    pub step_up_password_fallback: bool,
    /// How long the second step of a sign-in may follow the password.
    pub mfa_challenge_ttl_secs: u64,
    pub password_reset_ttl_secs: u64,
    pub email_verification_ttl_secs: u64,
    /// `full` or `read_only`: what an account whose email is not verified may do.
    pub unverified_access: String,
    /// The label authenticator apps show (default: `mail.product_name`).
    pub totp_issuer: Option<String>,
    /// Operators sign in only with a TOTP code (enrolled with `gatehouse admin enrol-totp`).
    /// Unset: required in production, optional in development. Production refuses `false`.
    pub operator_totp_required: Option<bool>,
    /// Every person needs a confirmed second factor; until then they may only enrol one.
    pub require_second_factor: bool,
    /// A session with no request for longer than this is not refreshed again (default 1800:
    /// NIST SP 800-63B rev. 3's AAL2 inactivity limit). Between the access-token lifetime plus
    /// the leeway and the customer session lifetime.
    pub idle_timeout_secs: u64,
    /// At most this many live customer sessions per account (1 to 500); unset: no cap.
    pub max_sessions_per_account: Option<u32>,
    /// `end_oldest` or `refuse`: what a sign-in beyond `max_sessions_per_account` does.
    pub session_limit_action: String,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        let d = IdentitySettings::default();
        let secs = |t: time::Duration| u64::try_from(t.whole_seconds()).unwrap_or(0);
        Self {
            issuer: d.issuer,
            audience: d.audience,
            access_token_ttl_secs: secs(d.access_token_ttl),
            customer_session_ttl_secs: secs(d.customer_session_ttl),
            operator_session_ttl_secs: secs(d.operator_session_ttl),
            impersonation_ttl_secs: secs(d.impersonation_ttl),
            invitation_ttl_secs: secs(d.invitation_ttl),
            leeway_secs: d.leeway_secs,
            step_up_permissions: d.step_up_permissions,
            step_up_window_secs: secs(d.step_up_window),
            step_up_password_fallback: d.step_up_password_fallback,
            mfa_challenge_ttl_secs: secs(d.mfa_challenge_ttl),
            password_reset_ttl_secs: secs(d.password_reset_ttl),
            email_verification_ttl_secs: secs(d.email_verification_ttl),
            unverified_access: d.unverified_access.as_str().to_owned(),
            // Unset: the label follows `mail.product_name`.
            totp_issuer: None,
            operator_totp_required: None,
            require_second_factor: d.require_second_factor,
            idle_timeout_secs: secs(d.idle_timeout),
            max_sessions_per_account: d.max_sessions_per_account,
            session_limit_action: d.session_limit_action.as_str().to_owned(),
        }
    }
}

pub(super) fn validate(
    c: &IdentityConfig,
    product_name: &str,
    production: bool,
) -> Result<IdentitySettings, ConfigError> {
    let secs = |v: u64| time::Duration::seconds(i64::try_from(v).unwrap_or(i64::MAX));
    if c.issuer.trim().is_empty() || c.audience.trim().is_empty() {
        return refuse("identity.issuer and identity.audience: must not be empty");
    }
    if production && !c.issuer.starts_with("https://") {
        return refuse(format!(
            "identity.issuer: production tokens must name an https:// issuer, not {:?}",
            c.issuer
        ));
    }
    if !(60..=3_600).contains(&c.access_token_ttl_secs) {
        return refuse(
            "identity.access_token_ttl_secs: must be between 60 and 3600; access tokens are meant \
             to be short-lived (sessions carry the long lifetime)",
        );
    }
    if c.impersonation_ttl_secs == 0 || c.impersonation_ttl_secs > 3_600 {
        return refuse("identity.impersonation_ttl_secs: must be between 1 and 3600");
    }
    if c.customer_session_ttl_secs < c.access_token_ttl_secs
        || c.operator_session_ttl_secs < c.access_token_ttl_secs
    {
        return refuse(
            "identity.customer_session_ttl_secs and identity.operator_session_ttl_secs: must be at \
             least the access-token lifetime",
        );
    }
    if c.operator_session_ttl_secs > 86_400 {
        return refuse(
            "identity.operator_session_ttl_secs: operator sessions last at most 24 hours",
        );
    }
    if c.leeway_secs > 300 || c.invitation_ttl_secs == 0 {
        return refuse(
            "identity.leeway_secs: at most 300; identity.invitation_ttl_secs: at least 1",
        );
    }
    for p in &c.step_up_permissions {
        if Permission::parse(p).is_none() {
            return refuse(format!(
                "identity.step_up_permissions: {p:?} is not a permission (see docs/API.md)"
            ));
        }
    }
    if !(30..=86_400).contains(&c.step_up_window_secs) {
        return refuse("identity.step_up_window_secs: must be between 30 and 86400");
    }
    if !(30..=900).contains(&c.mfa_challenge_ttl_secs) {
        return refuse("identity.mfa_challenge_ttl_secs: must be between 30 and 900");
    }
    if !(300..=86_400).contains(&c.password_reset_ttl_secs) {
        return refuse(
            "identity.password_reset_ttl_secs: must be between 300 and 86400; a reset link is a \
             password until it expires",
        );
    }
    if !(3_600..=30 * 86_400).contains(&c.email_verification_ttl_secs) {
        return refuse("identity.email_verification_ttl_secs: must be between 3600 and 2592000");
    }
    if production && c.operator_totp_required == Some(false) {
        return refuse(
            "identity.operator_totp_required: production operators sign in with a second factor; \
             remove the setting and enrol one with `gatehouse admin enrol-totp --email ...`",
        );
    }
    let session_limit_action = session_policy(c)?;
    let unverified_access = UnverifiedAccess::parse(&c.unverified_access).ok_or_else(|| {
        ConfigError(format!(
            "identity.unverified_access: {:?} is not one of \"full\", \"read_only\"",
            c.unverified_access
        ))
    })?;
    Ok(IdentitySettings {
        issuer: c.issuer.clone(),
        audience: c.audience.clone(),
        access_token_ttl: secs(c.access_token_ttl_secs),
        customer_session_ttl: secs(c.customer_session_ttl_secs),
        operator_session_ttl: secs(c.operator_session_ttl_secs),
        impersonation_ttl: secs(c.impersonation_ttl_secs),
        invitation_ttl: secs(c.invitation_ttl_secs),
        leeway_secs: c.leeway_secs,
        step_up_permissions: c.step_up_permissions.clone(),
        step_up_window: secs(c.step_up_window_secs),
        step_up_password_fallback: c.step_up_password_fallback,
        mfa_challenge_ttl: secs(c.mfa_challenge_ttl_secs),
        password_reset_ttl: secs(c.password_reset_ttl_secs),
        email_verification_ttl: secs(c.email_verification_ttl_secs),
        unverified_access,
        totp_issuer: c
            .totp_issuer
            .clone()
            .unwrap_or_else(|| product_name.to_owned()),
        operator_totp_required: c.operator_totp_required.unwrap_or(production),
        require_second_factor: c.require_second_factor,
        idle_timeout: secs(c.idle_timeout_secs),
        max_sessions_per_account: c.max_sessions_per_account,
        session_limit_action,
    })
}

/// The inactivity limit and the concurrent-session cap.
fn session_policy(c: &IdentityConfig) -> Result<SessionLimitAction, ConfigError> {
    // A token is accepted until its expiry plus the leeway: no less than that may pass before
    // the idle limit, or a token would outlive it.
    let floor = c.access_token_ttl_secs.saturating_add(c.leeway_secs);
    if c.idle_timeout_secs < floor || c.idle_timeout_secs > c.customer_session_ttl_secs {
        return refuse(format!(
            "identity.idle_timeout_secs: must be between identity.access_token_ttl_secs plus \
             identity.leeway_secs ({floor}) and identity.customer_session_ttl_secs ({}), not {}; \
             a shorter limit would let an access token outlive it, a longer one would never apply",
            c.customer_session_ttl_secs, c.idle_timeout_secs
        ));
    }
    // The cap is counted over an account's newest live sessions, which the store reads 500 at
    // most of: a larger cap could never be reached.
    if c.max_sessions_per_account
        .is_some_and(|n| !(1..=500).contains(&n))
    {
        return refuse(
            "identity.max_sessions_per_account: must be between 1 and 500, or unset for no cap",
        );
    }
    SessionLimitAction::parse(&c.session_limit_action).ok_or_else(|| {
        ConfigError(format!(
            "identity.session_limit_action: {:?} is not one of \"end_oldest\", \"refuse\"",
            c.session_limit_action
        ))
    })
}

//! The domain's errors. Each carries a stable snake_case `code` and no HTTP status: only the HTTP
//! layer decides statuses.

/// What went wrong inside a storage backend. Backends map driver errors into these by the kind of
/// failure (a unique violation in a known insert, a lost connection), never by parsing messages.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the email address is already registered")]
    EmailTaken,
    #[error("the row already exists")]
    Duplicate,
    #[error("the store is unreachable: {0}")]
    Unavailable(String),
    #[error("the store failed: {0}")]
    Backend(String),
    #[error("a stored value could not be read: {0}")]
    Corrupt(String),
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An input failed validation; `field` names it for the client.
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("the email address is already registered")]
    EmailTaken,
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A bounded resource (the password-hashing queue) is full; try again shortly.
    #[error("the server is busy; retry after {retry_after_secs} s")]
    Overloaded { retry_after_secs: u32 },
    #[error(transparent)]
    Store(StoreError),
    /// The organisation's keys were destroyed; its sealed data can never be read again.
    #[error("the organisation's keys were destroyed")]
    KeysShredded,
    /// A sealed value did not open: modified, moved to another context, or its key is gone.
    #[error("a sealed value could not be opened: {0}")]
    Unreadable(String),
    /// No valid credentials: a missing, malformed, expired or revoked token or session.
    #[error("authentication required: {0}")]
    Unauthenticated(&'static str),
    /// Sign-in failed. One answer for an unknown email and a wrong password.
    #[error("the email or password is incorrect")]
    InvalidCredentials,
    /// The caller is authenticated but lacks `permission` in the organisation.
    #[error("permission {permission} is required")]
    Forbidden { permission: &'static str },
    /// A token presented where its audience or tier is not accepted (a tenant token on the
    /// operator API, an operator token on an organisation's API).
    #[error("this token is not accepted here: {0}")]
    WrongAudience(&'static str),
    /// A `resource` (RFC 8707) that names no registered app: no token is issued for it.
    #[error("{0}")]
    InvalidTarget(&'static str),
    /// `x-organization-id` is missing on an organisation route.
    #[error("the x-organization-id header is required")]
    OrganizationRequired,
    /// `x-organization-id` names another organisation than the token's.
    #[error("the token is not for the organisation named in x-organization-id")]
    OrganizationMismatch,
    /// Something a decision depends on did not answer (the rate limiter or lockout store on a
    /// sign-in path, a breached-password service set to refuse on error): refused, not waved
    /// through.
    #[error("{0}")]
    DependencyUnavailable(&'static str),
    /// Too many failed attempts from this account or address: locked for `retry_after_secs`.
    #[error("too many failed attempts; retry after {retry_after_secs} s")]
    TooManyAttempts { retry_after_secs: u32 },
    /// A rate limit refused the request.
    #[error("rate limit exceeded; retry after {retry_after_secs} s")]
    RateLimited { retry_after_secs: u32 },
    /// The change would leave the organisation without an owner.
    #[error("the organisation's last owner cannot be removed or demoted")]
    LastOwner,
    /// The permission needs a recent second factor (or, for an account without one and where
    /// allowed, a recent password): `POST /v1/auth/step-up` with `method`.
    #[error("{permission} needs a recent {method} check; step up first")]
    StepUpRequired {
        permission: &'static str,
        method: &'static str,
    },
    /// The server requires a second factor this account has not enrolled; `0` says how to.
    #[error("a second factor is required and none is enrolled: {0}")]
    SecondFactorNotEnrolled(&'static str),
    /// A second factor is required of this person (`0`: by `platform` or `organization`) and
    /// none is confirmed: until one is, only enrolling it (and a few account reads) is allowed.
    #[error(
        "the {0} requires a second factor and this account has none: enrol one (POST /v1/me/mfa/totp, then /v1/me/mfa/totp/confirm)"
    )]
    SecondFactorEnrolmentRequired(&'static str),
    /// An operator disabled the account: it cannot sign in, refresh or use its API keys.
    #[error("the account is disabled")]
    AccountDisabled,
    /// The account already has `limit` live sessions and the configuration refuses another.
    #[error("at most {limit} sessions may be signed in at once; sign out of one first")]
    SessionLimitReached { limit: u32 },
    /// The account's email is not verified and the configuration limits such accounts.
    #[error("verify your email address first")]
    EmailUnverified,
    /// A one-time token (reset, verification, sign-in challenge) that is unknown, spent or
    /// expired. One answer for all three.
    #[error("the {0} token is invalid, used or expired")]
    InvalidToken(&'static str),
    /// A share link that was revoked, has expired or has no views left.
    #[error("{0}")]
    LinkEnded(&'static str),
    /// The resource exists in a state that refuses the request (an invitation already used).
    #[error("{0}")]
    Conflict(&'static str),
    /// The organisation enforces single sign-on: a password (or another way in) does not open a
    /// session in it (issue 24).
    #[error(
        "this organisation requires single sign-on: sign in through GET /v1/auth/sso/{{organization}}/start"
    )]
    SsoRequired,
    /// Another organisation verified this email domain: it cannot be claimed or verified here.
    #[error("the domain is verified by another organisation")]
    DomainTaken,
    /// The domain's challenge record was not found (`0` says what was expected and what was
    /// seen).
    #[error("{0}")]
    DomainNotVerified(String),
    /// A sign-in through an external provider was refused (`0` says why, without a token).
    #[error("{0}")]
    SsoRefused(&'static str),
    /// An OAuth `state` refused at a callback: not one Gatehouse signed, expired, already used,
    /// or started for another flow, organisation or person. Nothing was sent to the provider.
    #[error("{0}")]
    OAuthState(&'static str),
    /// A provider refused a call or answered outside the protocol, or could not be reached.
    /// The message names what (an OAuth error code, "not JSON"), never a token.
    #[error("{0}")]
    Provider(String),
    /// A connector whose refresh token the provider refused: its person must connect again.
    #[error(
        "the connector needs its person to connect again: the provider refused its refresh token"
    )]
    ReauthorizationRequired,
    /// A bug or an environment failure (random source, hashing). The message is for logs only.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            reason: reason.into(),
        }
    }

    /// The stable code clients may match on. Listed in docs/API.md; never renamed.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid { .. } => "validation_failed",
            Self::EmailTaken | Self::Store(StoreError::EmailTaken) => "email_taken",
            Self::NotFound(_) => "not_found",
            Self::Overloaded { .. } => "overloaded",
            Self::Store(StoreError::Duplicate) => "conflict",
            Self::Store(StoreError::Unavailable(_)) => "store_unavailable",
            Self::KeysShredded => "keys_shredded",
            Self::Unreadable(_) => "sealed_value_unreadable",
            Self::Unauthenticated(_) => "unauthenticated",
            Self::InvalidCredentials => "invalid_credentials",
            Self::Forbidden { .. } => "forbidden",
            Self::WrongAudience(_) => "wrong_audience",
            Self::InvalidTarget(_) => "invalid_target",
            Self::OrganizationRequired => "organization_required",
            Self::OrganizationMismatch => "organization_mismatch",
            Self::LastOwner => "last_owner",
            Self::TooManyAttempts { .. } => "too_many_attempts",
            Self::RateLimited { .. } => "rate_limited",
            Self::DependencyUnavailable(_) => "dependency_unavailable",
            Self::Conflict(_) => "conflict",
            Self::LinkEnded(_) => "link_ended",
            Self::StepUpRequired { .. } => "step_up_required",
            Self::EmailUnverified => "email_unverified",
            Self::SecondFactorNotEnrolled(_) => "second_factor_not_enrolled",
            Self::SecondFactorEnrolmentRequired(_) => "second_factor_enrolment_required",
            Self::AccountDisabled => "account_disabled",
            Self::SessionLimitReached { .. } => "session_limit_reached",
            Self::InvalidToken(_) => "invalid_token",
            Self::SsoRequired => "sso_required",
            Self::DomainTaken => "domain_taken",
            Self::DomainNotVerified(_) => "domain_not_verified",
            Self::SsoRefused(_) => "sso_refused",
            Self::OAuthState(_) => "oauth_state_invalid",
            Self::Provider(_) => "oauth_provider_error",
            Self::ReauthorizationRequired => "connector_needs_reauth",
            Self::Store(_) | Self::Internal(_) => "internal_error",
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::EmailTaken => Self::EmailTaken,
            other => Self::Store(other),
        }
    }
}

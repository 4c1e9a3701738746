//! Single sign-on per organisation (issue 24): `/v1/sso/config` (the OpenID provider, its role
//! for people who join through it, enforcement) and `/v1/sso/domains` (email domains proved by a
//! DNS TXT record). Everything needs `sso.manage`; every change also a recent second factor (or,
//! for an account without one, a recent password).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use gatehouse_core::sso::{DomainView, SsoConfigInput, SsoConfigView};
use gatehouse_crypto::SecretString;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::auth::{OrgCaller, OrgScoped};
use crate::json::{ApiJson, Created};
use crate::problem::{ApiError, Problem};
use crate::state::AppState;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct SsoConfig {
    /// The provider's issuer identifier: its ID tokens' `iss`, compared exactly.
    issuer: String,
    client_id: String,
    /// Whether a client secret is stored (it is never shown).
    has_client_secret: bool,
    /// `openid` first.
    scopes: Vec<String>,
    /// The role of a person who joins through the provider.
    default_role: String,
    /// Password sign-in to the organisation is refused (`sso_required`), but for owners with a
    /// second factor.
    enforced: bool,
    /// The redirect URI to register at the provider:
    /// `{oauth.public_url}/v1/auth/sso/{organisation id}/callback` (absent while
    /// `oauth.public_url` is not configured).
    redirect_uri: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    updated_at: OffsetDateTime,
}

impl From<SsoConfigView> for SsoConfig {
    fn from(c: SsoConfigView) -> Self {
        Self {
            issuer: c.issuer,
            client_id: c.client_id,
            has_client_secret: c.has_client_secret,
            scopes: c.scopes,
            default_role: c.default_role,
            enforced: c.enforced,
            redirect_uri: c.redirect_uri,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PutSsoConfig {
    /// https:// (http:// and loopback only where the server allows a development provider).
    #[schema(max_length = 2048)]
    issuer: String,
    #[schema(max_length = 255)]
    client_id: String,
    /// Sealed under the organisation's data key; left out, the stored one is kept (none: a
    /// public client, PKCE alone). Any secret sent, even the stored one, needs the
    /// organisation's owner.
    #[schema(format = Password, max_length = 1024)]
    client_secret: Option<String>,
    /// Default `openid email profile`; `openid` is always asked for.
    #[schema(max_items = 16)]
    scopes: Option<Vec<String>>,
    /// Default `member`; never `owner`.
    default_role: Option<String>,
    /// Refuse password sign-in to the organisation. Needs a verified domain.
    #[serde(default)]
    enforced: bool,
}

impl std::fmt::Debug for PutSsoConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PutSsoConfig")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

const STEP_UP: &str = "`forbidden`: the caller lacks `sso.manage`; `step_up_required`: no second factor (or, without one, password) checked within the step-up window (API keys and impersonations cannot)";
const STEP_UP_OR_OWNER: &str = "`forbidden`: the caller lacks `sso.manage`, or is not the organisation's owner; `step_up_required`: no second factor (or, without one, password) checked within the step-up window (API keys and impersonations cannot)";

/// The organisation's OpenID provider.
#[utoipa::path(get, path = "/v1/sso/config", tag = "sso", security(("bearer" = [])),
    params(OrgScoped),
    responses(
        (status = 200, description = "The provider (never its secret)", body = SsoConfig),
        (status = 403, description = "`forbidden`: the caller lacks `sso.manage`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No provider is configured", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn get_config(
    State(state): State<AppState>,
    OrgCaller(call): OrgCaller,
) -> Result<Json<SsoConfig>, ApiError> {
    let config = state
        .kernel
        .sso()
        .config(&call)
        .await?
        .ok_or(gatehouse_core::Error::NotFound(
            "single sign-on configuration",
        ))?;
    Ok(Json(config.into()))
}

/// Sets (or replaces) the organisation's OpenID provider.
#[utoipa::path(put, path = "/v1/sso/config", tag = "sso", security(("bearer" = [])),
    params(OrgScoped), request_body = PutSsoConfig,
    responses(
        (status = 200, description = "The provider as stored", body = SsoConfig),
        (status = 403, description = STEP_UP, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`conflict`: enforcement asked for without a verified domain, without an owner with a second factor (break-glass), or without `oauth.public_url` (no sign-on could start)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: an issuer that is not an https URL (or names a private address), a client id or secret too long, a scope that is not one, a default role that is `owner` or no role of the organisation", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn put_config(
    State(state): State<AppState>,
    OrgCaller(call): OrgCaller,
    ApiJson(req): ApiJson<PutSsoConfig>,
) -> Result<Json<SsoConfig>, ApiError> {
    let view = state
        .kernel
        .sso()
        .configure(
            &call,
            SsoConfigInput {
                issuer: req.issuer,
                client_id: req.client_id,
                client_secret: req.client_secret.map(SecretString::from),
                scopes: req.scopes,
                default_role: req.default_role,
                enforced: req.enforced,
            },
        )
        .await?;
    Ok(Json(view.into()))
}

/// Removes the provider and its secret: sign-in through it and enforcement end. The
/// organisation's owner only (besides `sso.manage` and the step-up); an admin's attempt is
/// refused and recorded (`permission.denied`).
#[utoipa::path(delete, path = "/v1/sso/config", tag = "sso", security(("bearer" = [])),
    params(OrgScoped),
    responses(
        (status = 204, description = "Removed"),
        (status = 403, description = STEP_UP_OR_OWNER, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No provider is configured", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn delete_config(
    State(state): State<AppState>,
    OrgCaller(call): OrgCaller,
) -> Result<StatusCode, ApiError> {
    state.kernel.sso().remove_config(&call).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct SsoDomain {
    /// Lower case.
    domain: String,
    /// Publish a TXT record here (`_gatehouse-challenge.<domain>`) ...
    record_name: String,
    /// ... with this value (`gatehouse-domain-verification=...`).
    record_value: String,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    /// Unset until the record was found.
    #[serde(with = "time::serde::rfc3339::option")]
    verified_at: Option<OffsetDateTime>,
}

impl From<DomainView> for SsoDomain {
    fn from(d: DomainView) -> Self {
        Self {
            domain: d.domain,
            record_name: d.record_name,
            record_value: d.record_value,
            created_at: d.created_at,
            verified_at: d.verified_at,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct SsoDomainList {
    items: Vec<SsoDomain>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClaimDomain {
    /// An email domain (ASCII; IDNs in their xn-- form).
    #[schema(max_length = 253)]
    domain: String,
}

/// The organisation's claimed domains, by name.
#[utoipa::path(get, path = "/v1/sso/domains", tag = "sso", security(("bearer" = [])),
    params(OrgScoped),
    responses(
        (status = 200, description = "The domains", body = SsoDomainList),
        (status = 403, description = "`forbidden`: the caller lacks `sso.manage`", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list_domains(
    State(state): State<AppState>,
    OrgCaller(call): OrgCaller,
) -> Result<Json<SsoDomainList>, ApiError> {
    let items = state.kernel.sso().domains(&call).await?;
    Ok(Json(SsoDomainList {
        items: items.into_iter().map(SsoDomain::from).collect(),
    }))
}

/// Claims an email domain: the answer says which TXT record to publish before verifying it.
#[utoipa::path(post, path = "/v1/sso/domains", tag = "sso", security(("bearer" = [])),
    params(OrgScoped), request_body = ClaimDomain,
    responses(
        (status = 201, description = "Claimed, not yet verified", body = SsoDomain),
        (status = 403, description = STEP_UP, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`domain_taken`: another organisation verified it; `conflict`: already claimed here", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: not a domain name, or a special-use or private one", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn claim_domain(
    State(state): State<AppState>,
    OrgCaller(call): OrgCaller,
    ApiJson(req): ApiJson<ClaimDomain>,
) -> Result<Created<SsoDomain>, ApiError> {
    let claimed = state.kernel.sso().claim_domain(&call, &req.domain).await?;
    Ok(Created(claimed.into()))
}

/// Looks the domain's TXT record up and, when it is published, marks the domain verified.
#[utoipa::path(post, path = "/v1/sso/domains/{domain}/verify", tag = "sso", security(("bearer" = [])),
    params(OrgScoped, ("domain" = String, Path, max_length = 253, description = "A claimed domain")),
    responses(
        (status = 200, description = "Verified (now or before)", body = SsoDomain),
        (status = 403, description = STEP_UP, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not claimed by the organisation", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`domain_taken`: another organisation verified it first", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`domain_not_verified`: the record was not found (the detail says what was seen); `validation_failed`: not a domain name", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn verify_domain(
    State(state): State<AppState>,
    OrgCaller(call): OrgCaller,
    Path(domain): Path<String>,
) -> Result<Json<SsoDomain>, ApiError> {
    let verified = state.kernel.sso().verify_domain(&call, &domain).await?;
    Ok(Json(verified.into()))
}

/// Gives a domain up: it no longer links accounts or admits people just in time.
#[utoipa::path(delete, path = "/v1/sso/domains/{domain}", tag = "sso", security(("bearer" = [])),
    params(OrgScoped, ("domain" = String, Path, max_length = 253, description = "A claimed domain")),
    responses(
        (status = 204, description = "Removed"),
        (status = 403, description = STEP_UP, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not claimed by the organisation", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn delete_domain(
    State(state): State<AppState>,
    OrgCaller(call): OrgCaller,
    Path(domain): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.kernel.sso().remove_domain(&call, &domain).await?;
    Ok(StatusCode::NO_CONTENT)
}

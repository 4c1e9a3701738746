//! Sign-in, refresh, sign-out, organisation switching, forward-auth verification and the JWKS
//! document.

use std::fmt;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use gatehouse_core::OrgId;
use gatehouse_core::identity::{IssuedSession, LoginInput, LoginOutcome};
use gatehouse_crypto::{SecretString, ct_eq};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::{
    ACCESS_COOKIE, Authenticated, CSRF_COOKIE, CSRF_HEADER, Carrier, EnrolmentCaller, ORG_HEADER,
    REFRESH_COOKIE, cookie,
};
use crate::extract::RequestMeta;
use crate::json::ApiJson;
use crate::problem::{ApiError, Problem};
use crate::state::AppState;

/// `bearer` (default): tokens in the body. `cookie`: tokens in `__Host-` cookies, and state
/// changes need the `x-csrf-token` header.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum SessionMode {
    #[default]
    Bearer,
    Cookie,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginRequest {
    email: String,
    #[schema(format = Password)]
    password: String,
    device_name: Option<String>,
    organization_id: Option<Uuid>,
    #[serde(default)]
    session_mode: SessionMode,
}

impl fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginRequest")
            .field("email", &self.email)
            .field("password", &"[redacted]")
            .finish_non_exhaustive()
    }
}

/// Tokens for a session. In cookie mode the tokens are in cookies and absent here.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct TokenResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    access_token: Option<String>,
    /// `Bearer`, or `cookie` in browser mode.
    token_type: &'static str,
    /// Seconds until the access token expires.
    expires_in: u64,
    /// Absent for impersonation (never renewed) and in cookie mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    session_id: Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    organization_id: Option<Uuid>,
    /// Cookie mode: send this as `x-csrf-token` on every state-changing request.
    #[serde(skip_serializing_if = "Option::is_none")]
    csrf_token: Option<String>,
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field("session_id", &self.session_id)
            .finish_non_exhaustive()
    }
}

pub(crate) fn set_cookie(
    res: &mut Response,
    name: &str,
    value: &str,
    max_age: u64,
    http_only: bool,
) {
    let flags = if http_only { "; HttpOnly" } else { "" };
    let text = format!("{name}={value}; Path=/; Secure; SameSite=Lax; Max-Age={max_age}{flags}");
    if let Ok(v) = HeaderValue::from_str(&text) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// The response for an issued session, in the mode asked for.
pub(crate) fn session_response(
    issued: IssuedSession,
    mode: SessionMode,
    status: StatusCode,
) -> Response {
    let body = TokenResponse {
        access_token: (mode == SessionMode::Bearer)
            .then(|| issued.access_token.expose().to_owned()),
        token_type: if mode == SessionMode::Bearer {
            "Bearer"
        } else {
            "cookie"
        },
        expires_in: issued.expires_in,
        refresh_token: match mode {
            SessionMode::Bearer => issued.refresh_token.as_ref().map(|r| r.expose().to_owned()),
            SessionMode::Cookie => None,
        },
        session_id: issued.session_id,
        organization_id: issued.organization_id.map(|o| o.as_uuid()),
        csrf_token: issued.csrf_token.as_ref().map(|c| c.expose().to_owned()),
    };
    let mut res = (status, Json(body)).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if mode == SessionMode::Cookie {
        set_cookie(
            &mut res,
            ACCESS_COOKIE,
            issued.access_token.expose(),
            issued.expires_in,
            true,
        );
        if let Some(r) = &issued.refresh_token {
            set_cookie(&mut res, REFRESH_COOKIE, r.expose(), 7 * 86_400, true);
        }
        if let Some(c) = &issued.csrf_token {
            set_cookie(&mut res, CSRF_COOKIE, c.expose(), 7 * 86_400, false);
        }
    }
    res
}

/// Signs in. Unknown email and wrong password get the same answer after the same work.
#[utoipa::path(post, path = "/v1/auth/login", tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in, or (`mfa_required`) the second step is next", body = LoginResponse),
        (status = 401, description = "`invalid_credentials`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a member of `organization_id`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Password hashing is saturated; retry after `Retry-After`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`too_many_attempts`: sign-in for this account or address is locked after failures; retry after `Retry-After` seconds", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn login(
    State(state): State<AppState>,
    RequestMeta(meta): RequestMeta,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Response, ApiError> {
    let mode = req.session_mode;
    let outcome = state
        .kernel
        .sessions()
        .login(
            LoginInput {
                email: req.email,
                password: SecretString::from(req.password),
                device_name: req.device_name,
                organization_id: req.organization_id.map(OrgId::from_uuid),
                browser: mode == SessionMode::Cookie,
            },
            &meta,
        )
        .await
        .inspect_err(|_| gatehouse_core::telemetry::metrics::auth("password", false))?;
    gatehouse_core::telemetry::metrics::auth("password", true);
    Ok(outcome_response(outcome, mode))
}

/// The answer to a first sign-in step (a password, a provider's callback): the session's tokens
/// in the mode asked for, or the second step's challenge.
pub(crate) fn outcome_response(outcome: LoginOutcome, mode: SessionMode) -> Response {
    match outcome {
        LoginOutcome::Session(issued) => session_response(issued, mode, StatusCode::OK),
        LoginOutcome::MfaRequired {
            mfa_token,
            expires_in,
        } => {
            let mut res = (
                StatusCode::OK,
                Json(MfaChallenge {
                    mfa_required: true,
                    mfa_token: mfa_token.expose().to_owned(),
                    expires_in,
                }),
            )
                .into_response();
            res.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            res
        }
    }
}

/// Either tokens, or the second step's challenge.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub(crate) enum LoginResponse {
    Tokens(TokenResponse),
    SecondFactor(MfaChallenge),
}

/// The password was right and the account has a second factor: finish with `POST /v1/auth/mfa`
/// within `expires_in` seconds. The session mode asked for at login applies then.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct MfaChallenge {
    mfa_required: bool,
    mfa_token: String,
    expires_in: u64,
}

impl fmt::Debug for MfaChallenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MfaChallenge([redacted])")
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RefreshRequest {
    /// Omit in cookie mode: the refresh cookie is used (with `x-csrf-token`).
    refresh_token: Option<String>,
    /// RFC 8707: the audience of a registered app to issue the access token for (its `aud`);
    /// Gatehouse's own API refuses such a token. Bearer mode only. Unknown: `invalid_target`.
    resource: Option<String>,
}

impl fmt::Debug for RefreshRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshRequest([redacted])")
    }
}

/// Rotates the refresh token and issues a new access token, for Gatehouse or, with `resource`,
/// for a registered app. Presenting a spent refresh token revokes the session.
#[utoipa::path(post, path = "/v1/auth/refresh", tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "New tokens", body = TokenResponse),
        (status = 400, description = "`invalid_target`: `resource` names no registered app, or one that is not an app's audience under the current settings", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Invalid, spent or ended", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`csrf_failed`: a cookie refresh without the matching `x-csrf-token`; `second_factor_enrolment_required`: `resource` asked for an app's token by a person who must enrol a second factor and has none (nothing rotates)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed` (field `resource`): a cookie session asked for an app's token (its tokens are Gatehouse's)", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn refresh(
    State(state): State<AppState>,
    RequestMeta(meta): RequestMeta,
    headers: HeaderMap,
    ApiJson(req): ApiJson<RefreshRequest>,
) -> Result<Response, ApiError> {
    let (token, mode) = match req.refresh_token {
        Some(t) => (SecretString::from(t), SessionMode::Bearer),
        None => {
            let t = cookie(&headers, REFRESH_COOKIE).ok_or(
                gatehouse_core::Error::Unauthenticated("no refresh token was presented"),
            )?;
            // Double submit: the CSRF cookie must come back in the header.
            let sent = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
            let jar = cookie(&headers, CSRF_COOKIE);
            match (sent, jar) {
                (Some(s), Some(j)) if ct_eq(s.as_bytes(), j.as_bytes()) => {}
                _ => {
                    return Err(ApiError::new(
                        StatusCode::FORBIDDEN,
                        "csrf_failed",
                        "refreshing a cookie session needs the x-csrf-token header",
                    ));
                }
            }
            (SecretString::from(t.to_owned()), SessionMode::Cookie)
        }
    };
    let issued = state
        .kernel
        .sessions()
        .refresh_for(
            &token,
            mode == SessionMode::Cookie,
            &meta,
            req.resource.as_deref(),
        )
        .await?;
    Ok(session_response(issued, mode, StatusCode::OK))
}

/// Ends the caller's session.
#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Signed out"),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn logout(
    State(state): State<AppState>,
    caller: EnrolmentCaller,
) -> Result<Response, ApiError> {
    state
        .kernel
        .sessions()
        .revoke(&caller.call, caller.call.principal.session_id)
        .await?;
    let mut res = StatusCode::NO_CONTENT.into_response();
    if caller.carrier == Carrier::Cookie {
        for name in [ACCESS_COOKIE, REFRESH_COOKIE, CSRF_COOKIE] {
            set_cookie(&mut res, name, "", 0, name != CSRF_COOKIE);
        }
    }
    Ok(res)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SwitchRequest {
    organization_id: Uuid,
}

/// Issues an access token for another organisation the caller belongs to (same session).
#[utoipa::path(post, path = "/v1/auth/switch-organization", tag = "auth",
    security(("bearer" = [])),
    request_body = SwitchRequest,
    responses(
        (status = 200, description = "A token for the organisation", body = TokenResponse),
        (status = 403, description = "`forbidden`: not a member, or an admin ended the member's sessions there after this session began (sign in again); `account_disabled`", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn switch_organization(
    State(state): State<AppState>,
    caller: EnrolmentCaller,
    ApiJson(req): ApiJson<SwitchRequest>,
) -> Result<Response, ApiError> {
    let mode = if caller.carrier == Carrier::Cookie {
        SessionMode::Cookie
    } else {
        SessionMode::Bearer
    };
    let issued = state
        .kernel
        .sessions()
        .switch_organization(
            &caller.call,
            OrgId::from_uuid(req.organization_id),
            mode == SessionMode::Cookie,
        )
        .await?;
    Ok(session_response(issued, mode, StatusCode::OK))
}

/// The caller's identity.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Identity {
    user_id: Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    organization_id: Option<Uuid>,
    roles: Vec<String>,
    /// The session the token belongs to; absent for an API key.
    #[serde(skip_serializing_if = "Option::is_none")]
    session_id: Option<Uuid>,
    tier: &'static str,
    /// The operator acting as the user, under impersonation.
    #[serde(skip_serializing_if = "Option::is_none")]
    impersonator_id: Option<Uuid>,
    /// Unix seconds; absent for an API key that never expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<u64>,
    /// For an API key (`tier` = `api_key`, `user_id` = the key's id): exactly what it may do.
    #[serde(skip_serializing_if = "Option::is_none")]
    permissions: Option<Vec<String>>,
    /// Whether a second factor is required of this person, by the platform or the token's
    /// organisation (a person under a requirement without one is refused instead, 403
    /// `second_factor_enrolment_required`). Always false for API keys, which do not sign in.
    second_factor_required: bool,
}

/// Forward authentication for reverse proxies: 200 with the identity as JSON and as
/// `x-gatehouse-user`, `x-gatehouse-org` and `x-gatehouse-roles` headers, or 401. When
/// `x-organization-id` is sent it must match the token. A proxy guarding a registered app sends
/// `audience` = the app's: only tokens issued for that app pass.
#[utoipa::path(get, path = "/v1/auth/verify", tag = "auth",
    security(("bearer" = [])),
    params(
        ("x-organization-id" = Option<Uuid>, Header, description = "When sent, the organisation the token must be for"),
        VerifyCheck,
    ),
    responses(
        (status = 200, description = "Valid (and, with `action`, allowed)", body = Identity),
        (status = 401, description = "Invalid, expired or revoked", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`wrong_audience`: the token is not for the audience asked for (Gatehouse's own when `audience` is absent); `x-organization-id` names another organisation; `check_denied`: the `action` asked about is not allowed (`detail` gives the reason); or `second_factor_enrolment_required`: a second factor is required of this person and none is confirmed", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: an unknown query parameter (verify takes only these), a resource without `action`, or `resource_type` without `resource_id`", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn verify(
    State(state): State<AppState>,
    Authenticated {
        principal: p,
        second_factor_required,
    }: Authenticated,
    req: axum::extract::Request,
) -> Result<Response, ApiError> {
    // The hot path of forward authentication: the request's parts are read in place, and the
    // audit context is built only when an organisation is named and it is not the token's, or a
    // check is asked for.
    // Any query string is parsed (decoded, unknown parameters refused): a check a proxy asks
    // for is never skipped because of how it was spelled.
    let asks = req.uri().query().is_some_and(|q| !q.is_empty());
    if req.headers().contains_key(ORG_HEADER) || asks {
        let (mut parts, _) = req.into_parts();
        if parts.headers.contains_key(ORG_HEADER) {
            crate::auth::org_scope(&mut parts, &state, &p).await?;
        }
        if asks {
            gate(&state, &mut parts, &p).await?;
        }
    }
    // The roles held now, not those the token was issued with (a demotion or removal reaches
    // forward authentication at once).
    let roles = state.kernel.auth().current_roles(&p).await?;
    let mut res = crate::json::JsonOk(Identity {
        user_id: p.subject,
        organization_id: p.org.map(|o| o.as_uuid()),
        roles: roles.clone(),
        session_id: (!p.session_id.is_nil()).then_some(p.session_id),
        tier: if p.api_key_permissions.is_some() {
            "api_key"
        } else {
            p.tier.as_str()
        },
        impersonator_id: p.impersonator,
        expires_at: (p.expires_at != u64::MAX).then_some(p.expires_at),
        permissions: p.api_key_permissions.clone(),
        second_factor_required,
    })
    .into_response();
    let h = res.headers_mut();
    let mut put_id = |name: HeaderName, id: uuid::Uuid| {
        let mut buf = uuid::Uuid::encode_buffer();
        if let Ok(v) = HeaderValue::from_str(id.hyphenated().encode_lower(&mut buf)) {
            h.insert(name, v);
        }
    };
    put_id(HeaderName::from_static("x-gatehouse-user"), p.subject);
    if let Some(o) = p.org {
        put_id(HeaderName::from_static("x-gatehouse-org"), o.as_uuid());
    }
    if let Ok(v) = HeaderValue::from_str(&roles.join(",")) {
        h.insert(HeaderName::from_static("x-gatehouse-roles"), v);
    }
    Ok(res)
}

/// A check a reverse proxy asks verify to make as well (C1, C3): the route is let through only
/// when the caller may do `action` (to the record `resource_type` / `resource_id`, if given).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct VerifyCheck {
    /// The audience of the registered app the proxy guards: the token must have been issued for
    /// it (`resource` on refresh) and the app must be registered now; a token for Gatehouse
    /// itself or another app is refused (`wrong_audience`), and so is an API key, an audience no
    /// app is registered with, and one no app may have (the operators'). Absent, or Gatehouse's
    /// own: Gatehouse's own audience, as on `/v1`.
    #[allow(dead_code)] // read by the `Authenticated` extractor, before the token is verified
    audience: Option<String>,
    /// `read`, `write` or a permission, as for `POST /v1/check`.
    action: Option<String>,
    /// A declared record type, with `resource_id`.
    resource_type: Option<String>,
    /// The product's own id of the record.
    resource_id: Option<String>,
    /// The organisation owning the record, when another than the caller's (a live grant must
    /// cover it).
    resource_organization: Option<Uuid>,
}

/// Answers verify's `action` question: `Ok` when allowed, else 403 `check_denied`.
async fn gate(
    state: &AppState,
    parts: &mut axum::http::request::Parts,
    p: &std::sync::Arc<gatehouse_core::identity::Principal>,
) -> Result<(), ApiError> {
    let axum::extract::Query(q) = axum::extract::Query::<VerifyCheck>::try_from_uri(&parts.uri)
        .map_err(|e| ApiError::from(gatehouse_core::Error::invalid("query", e.body_text())))?;
    let Some(action) = q.action else {
        if q.resource_type.is_some() || q.resource_id.is_some() || q.resource_organization.is_some()
        {
            return Err(gatehouse_core::Error::invalid(
                "action",
                "is required with resource_type and resource_id",
            )
            .into());
        }
        return Ok(());
    };
    let resource = match (q.resource_type, q.resource_id) {
        (Some(kind), Some(id)) => Some(gatehouse_core::product::ResourceRef {
            kind,
            id,
            organization: q
                .resource_organization
                .map(gatehouse_core::OrgId::from_uuid),
        }),
        (None, None) if q.resource_organization.is_none() => None,
        _ => {
            return Err(gatehouse_core::Error::invalid(
                "resource_type",
                "resource_type and resource_id go together",
            )
            .into());
        }
    };
    let org = p.org.ok_or(gatehouse_core::Error::OrganizationRequired)?;
    let scope = gatehouse_core::identity::Auth::org_header_matches(p, Some(&org.to_string()))
        .ok_or(gatehouse_core::Error::OrganizationMismatch)?;
    let request = crate::auth::request_context(parts, state).await;
    let call = gatehouse_core::TenantCall {
        principal: std::sync::Arc::clone(p),
        scope,
        request,
    };
    let decision = state
        .kernel
        .checks()
        .check(
            &call,
            &gatehouse_core::product::CheckInput { action, resource },
        )
        .await?;
    if decision.allowed {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "check_denied",
            format!("not allowed: {}", decision.reason),
        ))
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Jwk {
    kty: &'static str,
    crv: &'static str,
    /// The public key, base64url.
    x: String,
    kid: String,
    #[serde(rename = "use")]
    use_: &'static str,
    alg: &'static str,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Jwks {
    keys: Vec<Jwk>,
}

/// The public keys that verify access tokens (RFC 7517, OKP/Ed25519 per RFC 8037). A rotated-out
/// key stays until every token it signed has expired.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "auth",
    responses((status = 200, description = "The key set", body = Jwks)))]
pub(crate) async fn jwks(State(state): State<AppState>) -> Result<Response, ApiError> {
    let keys = state.kernel.auth().published_token_keys().await?;
    let body = Jwks {
        keys: keys
            .into_iter()
            .map(|k| Jwk {
                kty: "OKP",
                crv: "Ed25519",
                x: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&k.public_key),
                kid: k.kid,
                use_: "sig",
                alg: "EdDSA",
            })
            .collect(),
    };
    let mut res = Json(body).into_response();
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=60"),
    );
    res.extensions_mut()
        .insert(crate::middleware::security_headers::PublicDocument);
    Ok(res)
}

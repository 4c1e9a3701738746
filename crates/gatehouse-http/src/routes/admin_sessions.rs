//! Operators' own sign-in and sessions on `/admin/v1`: sign-in with the password and (where
//! enrolled or required) a TOTP code, refresh, step-up, sign-out and the session list. An
//! operator's refresh token works here only, never on the tenant API's refresh.

use std::fmt;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use gatehouse_crypto::SecretString;
use serde::Deserialize;
use uuid::Uuid;

use crate::auth::OperatorCaller;
use crate::extract::RequestMeta;
use crate::json::ApiJson;
use crate::problem::{ApiError, Problem};
use crate::routes::auth::{SessionMode, TokenResponse, session_response};
use crate::routes::me::{Revoked, SessionList, session_list};
use crate::state::AppState;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct OperatorLogin {
    email: String,
    #[schema(format = Password)]
    password: String,
    /// The current TOTP code: required once the operator has a factor.
    #[schema(min_length = 6, max_length = 6, pattern = "^[0-9]{6}$")]
    code: Option<String>,
    device_name: Option<String>,
}

impl fmt::Debug for OperatorLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OperatorLogin")
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

/// Signs an operator in: a 12-hour operator-tier session whose tokens work only on `/admin/v1`.
/// An operator with a TOTP factor sends its current code in the same request (a missing code is
/// answered like a wrong password); where the server requires operators' second factor (the
/// production default), one without cannot sign in.
#[utoipa::path(post, path = "/admin/v1/auth/login", tag = "admin",
    request_body = OperatorLogin,
    responses(
        (status = 200, description = "Signed in", body = TokenResponse),
        (status = 401, description = "`invalid_credentials`: one answer for an unknown email, a wrong password, a missing or wrong code, and an operator without a factor where one is required (the audit trail and the log say which)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`too_many_attempts`: sign-in for this operator or address is locked after failures, or the operator's factor after wrong codes; retry after `Retry-After` seconds", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`overloaded`: password hashing is saturated; retry after `Retry-After`", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn login(
    State(state): State<AppState>,
    RequestMeta(meta): RequestMeta,
    ApiJson(req): ApiJson<OperatorLogin>,
) -> Result<Response, ApiError> {
    let code = req.code.map(SecretString::from);
    let method = if code.is_some() {
        "operator_totp"
    } else {
        "operator_password"
    };
    let issued = state
        .kernel
        .operators()
        .login(
            &req.email,
            &SecretString::from(req.password),
            code.as_ref(),
            req.device_name,
            &meta,
        )
        .await
        .inspect_err(|_| gatehouse_core::telemetry::metrics::auth(method, false))?;
    gatehouse_core::telemetry::metrics::auth(method, true);
    Ok(session_response(
        issued,
        SessionMode::Bearer,
        StatusCode::OK,
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct OperatorRefresh {
    refresh_token: String,
}

impl fmt::Debug for OperatorRefresh {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OperatorRefresh([redacted])")
    }
}

/// Rotates an operator's refresh token. Presenting a spent one ends the session. Tenant refresh
/// tokens are refused here, and operator ones on `POST /v1/auth/refresh`.
#[utoipa::path(post, path = "/admin/v1/auth/refresh", tag = "admin",
    request_body = OperatorRefresh,
    responses(
        (status = 200, description = "New tokens", body = TokenResponse),
        (status = 401, description = "Invalid, spent or ended", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`wrong_audience`: not an operator session; `second_factor_not_enrolled`: the server now requires operators' second factor", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn refresh(
    State(state): State<AppState>,
    RequestMeta(meta): RequestMeta,
    ApiJson(req): ApiJson<OperatorRefresh>,
) -> Result<Response, ApiError> {
    let issued = state
        .kernel
        .operators()
        .refresh(&SecretString::from(req.refresh_token), &meta)
        .await?;
    Ok(session_response(
        issued,
        SessionMode::Bearer,
        StatusCode::OK,
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct OperatorStepUp {
    /// The current TOTP code (an operator with a factor).
    #[schema(min_length = 6, max_length = 6, pattern = "^[0-9]{6}$")]
    code: Option<String>,
    /// Only for an operator without a factor, on a server that does not require one.
    #[schema(format = Password)]
    password: Option<String>,
}

impl fmt::Debug for OperatorStepUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OperatorStepUp([redacted])")
    }
}

/// Proves the operator's second factor again (or, without one where none is required, the
/// password) and returns an access token whose step-up time is now: impersonation needs one
/// within the step-up window.
#[utoipa::path(post, path = "/admin/v1/auth/step-up", tag = "admin", security(("bearer" = [])),
    request_body = OperatorStepUp,
    responses(
        (status = 200, description = "A new access token (no refresh token)", body = TokenResponse),
        (status = 401, description = "`invalid_credentials`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`second_factor_not_enrolled`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: `code` or `password` is missing", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`too_many_attempts`", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn step_up(
    State(state): State<AppState>,
    OperatorCaller(call): OperatorCaller,
    ApiJson(req): ApiJson<OperatorStepUp>,
) -> Result<Response, ApiError> {
    let issued = state
        .kernel
        .operators()
        .step_up(
            &call,
            req.code.map(SecretString::from),
            req.password.map(SecretString::from),
        )
        .await?;
    Ok(session_response(
        issued,
        SessionMode::Bearer,
        StatusCode::OK,
    ))
}

/// Ends the calling operator's session; its tokens are refused from the next request on.
#[utoipa::path(post, path = "/admin/v1/auth/logout", tag = "admin", security(("bearer" = [])),
    responses(
        (status = 204, description = "Signed out"),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn logout(
    State(state): State<AppState>,
    OperatorCaller(call): OperatorCaller,
) -> Result<StatusCode, ApiError> {
    state.kernel.operators().logout(&call).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The calling operator's live sessions, newest first (`next_cursor` is always null).
#[utoipa::path(get, path = "/admin/v1/sessions", tag = "admin", security(("bearer" = [])),
    responses((status = 200, description = "Live sessions", body = SessionList)))]
pub(crate) async fn sessions(
    State(state): State<AppState>,
    OperatorCaller(call): OperatorCaller,
) -> Result<Json<SessionList>, ApiError> {
    let views = state.kernel.operators().sessions_of_caller(&call).await?;
    Ok(Json(session_list(views)))
}

/// Ends one of the calling operator's sessions.
#[utoipa::path(delete, path = "/admin/v1/sessions/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Session id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No such session of the caller", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn revoke(
    State(state): State<AppState>,
    OperatorCaller(call): OperatorCaller,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    state.kernel.operators().revoke_session(&call, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Ends every session of the calling operator except this one.
#[utoipa::path(post, path = "/admin/v1/sessions/revoke-others", tag = "admin", security(("bearer" = [])),
    responses((status = 200, description = "How many were revoked", body = Revoked)))]
pub(crate) async fn revoke_others(
    State(state): State<AppState>,
    OperatorCaller(call): OperatorCaller,
) -> Result<Json<Revoked>, ApiError> {
    let revoked = state
        .kernel
        .operators()
        .revoke_other_sessions(&call)
        .await?;
    Ok(Json(Revoked::new(revoked)))
}

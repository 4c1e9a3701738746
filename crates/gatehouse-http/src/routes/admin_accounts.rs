//! The operator API's control of customer accounts (ASVS 7.4.2, 7.4.5): ending all of a user's
//! sessions, and disabling or re-enabling the account. Each is audited on the operators' chain
//! and reaches every instance through the revocation fan-out.

use axum::Json;
use axum::extract::{Path, State};
use gatehouse_core::UserId;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::OperatorCaller;
use crate::json::ApiJson;
use crate::problem::{ApiError, Problem};
use crate::state::AppState;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct SessionsEnded {
    /// How many live sessions ended.
    sessions_ended: usize,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AccountChangeRequest {
    /// Recorded in the operators' audit chain: 3 to 500 characters once trimmed.
    #[schema(min_length = 3, max_length = 500)]
    reason: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct AccountChanged {
    /// Whether the account is disabled now.
    disabled: bool,
    /// Whether this request changed it (false when it already was so).
    changed: bool,
    /// Live sessions the change ended (disabling only).
    sessions_ended: usize,
}

/// Ends every session of a user, in every organisation: their access tokens and refresh tokens
/// are refused from the next request, on every instance. The account may sign in again.
#[utoipa::path(delete, path = "/admin/v1/users/{user_id}/sessions", tag = "admin",
    security(("bearer" = [])),
    params(("user_id" = Uuid, Path, description = "The user")),
    responses(
        (status = 200, description = "Ended", body = SessionsEnded),
        (status = 403, description = "`wrong_audience`: not an operator token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such user", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn end_sessions(
    State(state): State<AppState>,
    OperatorCaller(call): OperatorCaller,
    Path(user_id): Path<Uuid>,
) -> Result<Json<SessionsEnded>, ApiError> {
    let sessions_ended = state
        .kernel
        .operators()
        .end_user_sessions(&call, UserId::from_uuid(user_id))
        .await?;
    Ok(Json(SessionsEnded { sessions_ended }))
}

/// Disables an account: every session ends, and until it is re-enabled it cannot sign in
/// (`account_disabled`), refresh, or use the API keys it made (refused as suspended), on every
/// instance from the next request. Needs a recent step-up.
#[utoipa::path(post, path = "/admin/v1/users/{user_id}/disable", tag = "admin",
    security(("bearer" = [])),
    params(("user_id" = Uuid, Path, description = "The user")),
    request_body = AccountChangeRequest,
    responses(
        (status = 200, description = "Disabled", body = AccountChanged),
        (status = 403, description = "`wrong_audience`: not an operator token; `step_up_required`: `POST /admin/v1/auth/step-up` first", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such user", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: `reason` is not 3 to 500 characters", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn disable(
    State(state): State<AppState>,
    OperatorCaller(call): OperatorCaller,
    Path(user_id): Path<Uuid>,
    ApiJson(req): ApiJson<AccountChangeRequest>,
) -> Result<Json<AccountChanged>, ApiError> {
    set(&state, &call, user_id, true, &req.reason).await
}

/// Re-enables a disabled account: it may sign in again and its API keys work again. Sessions
/// ended by the disabling stay ended. Needs a recent step-up.
#[utoipa::path(post, path = "/admin/v1/users/{user_id}/enable", tag = "admin",
    security(("bearer" = [])),
    params(("user_id" = Uuid, Path, description = "The user")),
    request_body = AccountChangeRequest,
    responses(
        (status = 200, description = "Enabled", body = AccountChanged),
        (status = 403, description = "`wrong_audience`: not an operator token; `step_up_required`: `POST /admin/v1/auth/step-up` first", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such user", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: `reason` is not 3 to 500 characters", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn enable(
    State(state): State<AppState>,
    OperatorCaller(call): OperatorCaller,
    Path(user_id): Path<Uuid>,
    ApiJson(req): ApiJson<AccountChangeRequest>,
) -> Result<Json<AccountChanged>, ApiError> {
    set(&state, &call, user_id, false, &req.reason).await
}

async fn set(
    state: &AppState,
    call: &gatehouse_core::OperatorCall,
    user_id: Uuid,
    disabled: bool,
    reason: &str,
) -> Result<Json<AccountChanged>, ApiError> {
    let change = state
        .kernel
        .operators()
        .set_user_disabled(call, UserId::from_uuid(user_id), disabled, reason)
        .await?;
    Ok(Json(AccountChanged {
        disabled,
        changed: change.changed,
        sessions_ended: change.sessions_ended,
    }))
}

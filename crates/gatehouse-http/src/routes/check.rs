//! `POST /v1/check`: the caller asks whether it may do something in its organisation (C1).

use axum::Json;
use axum::extract::State;
use gatehouse_core::product::Decision;
use serde::{Deserialize, Serialize};

use crate::auth::{OrgCaller, OrgScoped};
use crate::json::ApiJson;
use crate::problem::{ApiError, Problem};
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CheckRequest {
    /// A permission: one of Gatehouse's catalogue or one the product declared
    /// (`[[product.permissions]]`).
    #[schema(
        min_length = 3,
        max_length = 64,
        pattern = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$"
    )]
    action: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct CheckAnswer {
    allowed: bool,
    /// `granted`, `permission_missing`, `step_up_required` (a recent second factor is needed:
    /// `POST /v1/auth/step-up`), `not_a_member`, `unknown_action`.
    reason: &'static str,
    /// What allowed it: `role:{name}` or `api_key`.
    #[serde(skip_serializing_if = "Option::is_none")]
    via: Option<String>,
}

impl From<Decision> for CheckAnswer {
    fn from(d: Decision) -> Self {
        Self {
            allowed: d.allowed,
            reason: d.reason,
            via: d.via,
        }
    }
}

/// Whether the caller (a person's token or an API key) holds a permission in its organisation
/// now: its current role, or the key's own permissions, and a recent second factor where the
/// permission needs one. A refusal is an answer (200 with `allowed: false`), not an error.
#[utoipa::path(post, path = "/v1/check", tag = "check", security(("bearer" = [])),
    params(OrgScoped), request_body = CheckRequest,
    responses(
        (status = 200, description = "The decision", body = CheckAnswer),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn check(
    State(state): State<AppState>,
    OrgCaller(call): OrgCaller,
    ApiJson(req): ApiJson<CheckRequest>,
) -> Result<Json<CheckAnswer>, ApiError> {
    let decision = state.kernel.checks().permission(&call, &req.action).await?;
    Ok(Json(decision.into()))
}

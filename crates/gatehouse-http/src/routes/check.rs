//! `POST /v1/check` and `POST /v1/check/batch`: the caller asks whether it may do something in
//! its organisation (C1), or to one of the product's records (C3).

use axum::Json;
use axum::extract::State;
use gatehouse_core::product::{CheckInput, Decision, MAX_BATCH, ResourceRef};
use serde::{Deserialize, Serialize};

use crate::auth::{OrgCaller, OrgScoped};
use crate::json::ApiJson;
use crate::problem::{ApiError, Problem};
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Resource {
    /// A declared record type.
    #[serde(rename = "type")]
    #[schema(min_length = 1, max_length = 40)]
    kind: String,
    /// The product's own id for the record (`external_id`).
    #[schema(min_length = 1, max_length = 200)]
    id: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CheckRequest {
    /// `read` or `write` (of `resource`), or a permission: one of Gatehouse's catalogue or one
    /// the product declared (`[[product.permissions]]`); with a `resource`, the caller must also
    /// be able to read it.
    #[schema(min_length = 1, max_length = 64)]
    action: String,
    resource: Option<Resource>,
}

impl From<CheckRequest> for CheckInput {
    fn from(r: CheckRequest) -> Self {
        Self {
            action: r.action,
            resource: r.resource.map(|r| ResourceRef {
                kind: r.kind,
                id: r.id,
            }),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct CheckAnswer {
    allowed: bool,
    /// `granted`, `permission_missing`, `step_up_required` (a recent second factor is needed:
    /// `POST /v1/auth/step-up`), `not_a_member`, `unknown_action`, `resource_required`, or
    /// `no_access` (the record does not exist or the caller may not do this to it: one answer).
    reason: &'static str,
    /// What allowed it: `role:{name}`, `api_key`, `owner`, `allowed_list`, `level:public`,
    /// `level:organization`, `permission` (the type's write permission).
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

/// Whether the caller (a person's token or an API key) may do `action` in its organisation now,
/// or to `resource`: its current role or the key's own permissions, the record's level, owner and
/// allowed list, and a recent second factor where the permission needs one. A refusal is an
/// answer (200 with `allowed: false`), counted in metrics and recorded in the audit log (repeats
/// folded, see docs/API.md).
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
    let decision = state.kernel.checks().check(&call, &req.into()).await?;
    Ok(Json(decision.into()))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BatchRequest {
    /// 1 to 100 questions.
    #[schema(min_items = 1, max_items = 100)]
    checks: Vec<CheckRequest>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct BatchAnswer {
    /// One decision per question, in order.
    results: Vec<CheckAnswer>,
}

/// Up to 100 questions about the caller at once, answered from one read of its membership.
#[utoipa::path(post, path = "/v1/check/batch", tag = "check", security(("bearer" = [])),
    params(OrgScoped), request_body = BatchRequest,
    responses(
        (status = 200, description = "One decision per question", body = BatchAnswer),
        (status = 422, description = "`validation_failed`: not 1 to 100 questions", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn batch(
    State(state): State<AppState>,
    OrgCaller(call): OrgCaller,
    ApiJson(req): ApiJson<BatchRequest>,
) -> Result<Json<BatchAnswer>, ApiError> {
    if req.checks.is_empty() || req.checks.len() > MAX_BATCH {
        return Err(gatehouse_core::Error::invalid(
            "checks",
            format!("1 to {MAX_BATCH} per request"),
        )
        .into());
    }
    let inputs: Vec<CheckInput> = req.checks.into_iter().map(CheckInput::from).collect();
    let decisions = state.kernel.checks().check_batch(&call, &inputs).await?;
    Ok(Json(BatchAnswer {
        results: decisions.into_iter().map(CheckAnswer::from).collect(),
    }))
}

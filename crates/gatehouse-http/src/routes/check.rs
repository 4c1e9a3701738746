//! `POST /v1/check` and `POST /v1/check/batch`: the caller asks whether it may do something in
//! its organisation (C1), or to one of the product's records (C3).

use axum::Json;
use axum::extract::State;
use gatehouse_core::product::{CheckInput, CheckSubject, Decision, MAX_BATCH, ResourceRef};
use gatehouse_crypto::SecretString;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::{OrgCaller, OrgScoped, ServiceCaller};
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
    /// The organisation that owns the record, when it is not the caller's: a live grant to the
    /// caller's organisation must cover it (C4).
    organization: Option<Uuid>,
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
                organization: r.organization.map(gatehouse_core::OrgId::from_uuid),
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

/// Whom a service asks about: a credential, a member by id, or nobody (`null` or absent).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub(crate) enum Subject {
    /// An access token or an API key (`gk_...`), verified as on the tenant API.
    Credential(String),
    /// A member of the organisation, by user id: no session, so permissions that need a
    /// recent second factor answer `step_up_required`.
    UserId(Uuid),
}

impl std::fmt::Debug for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Credential(_) => f.write_str("Credential([redacted])"),
            Self::UserId(u) => write!(f, "UserId({u})"),
        }
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct InternalCheckRequest {
    organization_id: Uuid,
    /// Absent or `null`: an anonymous caller, who may read public records and nothing else.
    subject: Option<Subject>,
    /// 1 to 100 questions.
    #[schema(min_items = 1, max_items = 100)]
    checks: Vec<CheckRequest>,
}

/// One of your services asks what someone may do in an organisation: the holder of a token or
/// an API key, a member by id, or an anonymous visitor (public records only). A credential that
/// does not verify is answered `unauthenticated`, and one of another organisation `not_a_member`,
/// for every question.
#[utoipa::path(post, path = "/internal/v1/check", tag = "internal",
    security(("service" = [])),
    request_body = InternalCheckRequest,
    responses(
        (status = 200, description = "One decision per question", body = BatchAnswer),
        (status = 401, description = "No or a wrong service secret", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: not 1 to 100 questions", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn internal(
    State(state): State<AppState>,
    ServiceCaller(call): ServiceCaller,
    ApiJson(req): ApiJson<InternalCheckRequest>,
) -> Result<Json<BatchAnswer>, ApiError> {
    if req.checks.is_empty() || req.checks.len() > MAX_BATCH {
        return Err(gatehouse_core::Error::invalid(
            "checks",
            format!("1 to {MAX_BATCH} per request"),
        )
        .into());
    }
    let subject = match req.subject {
        Some(Subject::Credential(c)) => CheckSubject::Credential(SecretString::from(c)),
        Some(Subject::UserId(u)) => CheckSubject::User(gatehouse_core::UserId::from_uuid(u)),
        None => CheckSubject::Anonymous,
    };
    let inputs: Vec<CheckInput> = req.checks.into_iter().map(CheckInput::from).collect();
    let decisions = state
        .kernel
        .checks()
        .check_for(
            &call,
            gatehouse_core::OrgId::from_uuid(req.organization_id),
            subject,
            &inputs,
        )
        .await?;
    Ok(Json(BatchAnswer {
        results: decisions.into_iter().map(CheckAnswer::from).collect(),
    }))
}

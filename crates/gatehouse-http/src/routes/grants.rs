//! Grants between organisations (C4) under `/v1/grants`: made, listed and revoked by the
//! granting organisation's `grants.manage` holders, listed by the grantee's as received.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use gatehouse_core::PageRequest;
use gatehouse_core::product::{GrantView, NewGrant};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::auth::{OrgCaller, OrgScoped};
use crate::json::{ApiJson, Created};
use crate::problem::{ApiError, Problem};
use crate::routes::organization::PageQuery;
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateGrant {
    /// The organisation granted access (not the caller's own).
    organization: Uuid,
    /// Declared record types covered; empty or absent covers every type.
    #[serde(default)]
    #[schema(max_items = 20)]
    types: Vec<String>,
    /// Namespaces covered; empty or absent covers every record (one without a namespace too).
    #[serde(default)]
    #[schema(max_items = 20)]
    namespaces: Vec<String>,
    /// `read`, or `read_write` (the grantee may also change content and tags).
    #[schema(pattern = "^(read|read_write)$")]
    access: String,
    /// When it stops working; in the future. Absent: until revoked.
    #[serde(default, with = "time::serde::rfc3339::option")]
    expires_at: Option<OffsetDateTime>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Grant {
    id: Uuid,
    /// The granting organisation (whose records it covers).
    granted_by: Uuid,
    /// The organisation granted access.
    organization: Uuid,
    types: Vec<String>,
    namespaces: Vec<String>,
    access: &'static str,
    /// `user:{uuid}` or `key:{uuid}` that made it; empty in the received list.
    created_by: String,
    /// `live`, `expired` or `revoked`, now.
    status: &'static str,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    expires_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    revoked_at: Option<OffsetDateTime>,
}

impl From<GrantView> for Grant {
    fn from(v: GrantView) -> Self {
        Self {
            id: v.row.id,
            granted_by: v.row.org_id.as_uuid(),
            organization: v.row.grantee.as_uuid(),
            types: v.row.types,
            namespaces: v.row.namespaces,
            access: v.row.access.as_str(),
            created_by: v.row.created_by,
            status: v.status,
            created_at: v.row.created_at,
            expires_at: v.row.expires_at,
            revoked_at: v.row.revoked_at,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct GrantList {
    items: Vec<Grant>,
    next_cursor: Option<String>,
}

/// Grants another organisation access to this one's records that are not private. Needs
/// `grants.manage` (a step-up permission by default).
#[utoipa::path(post, path = "/v1/grants", tag = "grants", security(("bearer" = [])),
    params(OrgScoped), request_body = CreateGrant,
    responses(
        (status = 201, description = "Granted", body = Grant),
        (status = 403, description = "`forbidden` or `step_up_required`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: the caller's own or an unknown organisation, an unknown type, a bad access or namespace, more than 20 types or namespaces, an expiry not in the future; `invalid_body`: a malformed id or time", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn create(
    State(state): State<AppState>,
    OrgCaller(call): OrgCaller,
    ApiJson(req): ApiJson<CreateGrant>,
) -> Result<Created<Grant>, ApiError> {
    let view = state
        .kernel
        .grants()
        .create(
            &call,
            NewGrant {
                organization: req.organization.to_string(),
                types: req.types,
                namespaces: req.namespaces,
                access: req.access,
                expires_at: req.expires_at,
            },
        )
        .await?;
    Ok(Created(view.into()))
}

/// Grants this organisation made, newest first, revoked and expired ones included. Needs
/// `grants.manage`.
#[utoipa::path(get, path = "/v1/grants", tag = "grants", security(("bearer" = [])),
    params(OrgScoped, PageQuery),
    responses(
        (status = 200, description = "A page of grants", body = GrantList),
        (status = 403, description = "`forbidden` or `step_up_required` (`grants.manage` is a step-up permission by default)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: a bad cursor or limit", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn given(
    State(state): State<AppState>,
    OrgCaller(call): OrgCaller,
    Query(q): Query<PageQuery>,
) -> Result<Json<GrantList>, ApiError> {
    let page = PageRequest::parse(q.cursor.as_deref(), q.limit)?;
    let page = state.kernel.grants().given(&call, page).await?;
    Ok(Json(GrantList {
        items: page.items.into_iter().map(Grant::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Grants other organisations made to this one, newest first (`created_by` left empty). Needs
/// `grants.manage`.
#[utoipa::path(get, path = "/v1/grants/received", tag = "grants", security(("bearer" = [])),
    params(OrgScoped, PageQuery),
    responses(
        (status = 200, description = "A page of grants", body = GrantList),
        (status = 403, description = "`forbidden` or `step_up_required` (`grants.manage` is a step-up permission by default)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: a bad cursor or limit", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn received(
    State(state): State<AppState>,
    OrgCaller(call): OrgCaller,
    Query(q): Query<PageQuery>,
) -> Result<Json<GrantList>, ApiError> {
    let page = PageRequest::parse(q.cursor.as_deref(), q.limit)?;
    let page = state.kernel.grants().received(&call, page).await?;
    Ok(Json(GrantList {
        items: page.items.into_iter().map(Grant::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Revokes a grant this organisation made (an expired one too): listings and reads refuse it
/// from the next request on every instance, checks once the fan-out reaches the instance. Needs
/// `grants.manage`.
#[utoipa::path(delete, path = "/v1/grants/{id}", tag = "grants", security(("bearer" = [])),
    params(OrgScoped, ("id" = Uuid, Path, description = "The grant")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 403, description = "`forbidden` or `step_up_required`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such grant made by this organisation", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`conflict`: already revoked", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn revoke(
    State(state): State<AppState>,
    OrgCaller(call): OrgCaller,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    state.kernel.grants().revoke(&call, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

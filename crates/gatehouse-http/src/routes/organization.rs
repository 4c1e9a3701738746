//! The caller's organisation: members, custom roles and invitations. Every route needs
//! `x-organization-id` equal to the token's organisation and a named permission.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use gatehouse_core::{PageRequest, UserId};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::auth::{OrgCaller, OrgScoped};
use crate::json::{ApiJson, Created};
use crate::problem::{ApiError, Problem};
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct PageQuery {
    /// From the previous page's `next_cursor`.
    pub(crate) cursor: Option<String>,
    /// 1 to 200; default 50.
    #[param(minimum = 1, maximum = 200)]
    pub(crate) limit: Option<u32>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Member {
    user_id: Uuid,
    role: String,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct MemberPage {
    items: Vec<Member>,
    next_cursor: Option<String>,
}

/// Members, oldest first. Needs `org.read`.
#[utoipa::path(get, path = "/v1/organization/members", tag = "organization",
    security(("bearer" = [])), params(OrgScoped, PageQuery),
    responses(
        (status = 200, description = "A page of members", body = MemberPage),
        (status = 400, description = "`organization_required`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`organization_mismatch` or `forbidden`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: `cursor` is not one this server issued, or `limit` is not 1 to 200", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list_members(
    State(state): State<AppState>,
    OrgCaller(call): OrgCaller,
    Query(q): Query<PageQuery>,
) -> Result<Json<MemberPage>, ApiError> {
    let page = PageRequest::parse(q.cursor.as_deref(), q.limit)?;
    let found = state.kernel.members().list(&call, page).await?;
    Ok(Json(MemberPage {
        items: found
            .items
            .into_iter()
            .map(|m| Member {
                user_id: m.user_id.as_uuid(),
                role: m.role,
                created_at: m.created_at,
            })
            .collect(),
        next_cursor: found.next_cursor,
    }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RoleChange {
    /// `owner`, `admin`, `member`, `viewer`, or a custom role's name.
    #[schema(pattern = r"^[a-z][a-z0-9_-]{0,39}$")]
    role: String,
}

/// Changes a member's role. Needs `members.manage`; only owners grant or remove ownership; the
/// last owner cannot be demoted (`last_owner`).
#[utoipa::path(put, path = "/v1/organization/members/{user_id}", tag = "organization",
    security(("bearer" = [])), request_body = RoleChange,
    params(OrgScoped, ("user_id" = Uuid, Path, description = "The member")),
    responses(
        (status = 204, description = "Changed"),
        (status = 403, description = "`forbidden`: the caller lacks `members.manage`, or a permission the member's current or new role holds", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not a member", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`last_owner`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: `role` is neither built in nor one of the organisation's custom roles", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn set_role(
    State(state): State<AppState>,
    OrgCaller(call): OrgCaller,
    Path(user_id): Path<Uuid>,
    ApiJson(req): ApiJson<RoleChange>,
) -> Result<StatusCode, ApiError> {
    state
        .kernel
        .members()
        .set_role(&call, UserId::from_uuid(user_id), &req.role)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes a member. Needs `members.manage`; the last owner cannot be removed.
#[utoipa::path(delete, path = "/v1/organization/members/{user_id}", tag = "organization",
    security(("bearer" = [])),
    params(OrgScoped, ("user_id" = Uuid, Path, description = "The member")),
    responses(
        (status = 204, description = "Removed"),
        (status = 403, description = "`forbidden`: the caller lacks `members.manage`, or a permission the member's role holds", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`last_owner`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: not a member", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn remove_member(
    State(state): State<AppState>,
    OrgCaller(call): OrgCaller,
    Path(user_id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    state
        .kernel
        .members()
        .remove(&call, UserId::from_uuid(user_id))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct MemberSessionsEnded {
    /// How many of the member's live sessions in this organisation ended.
    sessions_ended: usize,
}

/// Ends a member's sessions in this organisation (those whose tokens are for it; their sessions
/// in other organisations stay, but cannot switch into this one): their access and refresh
/// tokens are refused from the next request, on every instance. Audited in the organisation's
/// chain. Needs `members.manage`, and to be an owner for an owner's sessions.
#[utoipa::path(delete, path = "/v1/organization/members/{user_id}/sessions", tag = "organization",
    security(("bearer" = [])),
    params(OrgScoped, ("user_id" = Uuid, Path, description = "The member")),
    responses(
        (status = 200, description = "Ended", body = MemberSessionsEnded),
        (status = 403, description = "`forbidden`: the caller lacks `members.manage`, or a permission the member's role holds, or the member is an owner and the caller is not; `step_up_required`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: not a member", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn end_member_sessions(
    State(state): State<AppState>,
    OrgCaller(call): OrgCaller,
    Path(user_id): Path<Uuid>,
) -> Result<Json<MemberSessionsEnded>, ApiError> {
    let sessions_ended = state
        .kernel
        .members()
        .end_sessions(&call, UserId::from_uuid(user_id))
        .await?;
    Ok(Json(MemberSessionsEnded { sessions_ended }))
}

#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CustomRole {
    /// 1 to 40 of `a-z`, `0-9`, `_` and `-`, starting with a letter; not a built-in role's name.
    #[schema(pattern = r"^[a-z][a-z0-9_-]{0,39}$")]
    name: String,
    /// Names from the permission catalogue (docs/API.md).
    #[schema(value_type = Vec<super::PermissionName>)]
    permissions: Vec<String>,
}

/// Defines a custom role as a named permission set. Needs `roles.manage`; nobody grants what
/// they do not hold.
#[utoipa::path(post, path = "/v1/organization/roles", tag = "organization",
    security(("bearer" = [])), params(OrgScoped), request_body = CustomRole,
    responses(
        (status = 201, description = "Created", body = CustomRole),
        (status = 409, description = "The name exists", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown permission or bad name", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn create_role(
    State(state): State<AppState>,
    OrgCaller(call): OrgCaller,
    ApiJson(req): ApiJson<CustomRole>,
) -> Result<Created<CustomRole>, ApiError> {
    let r = state
        .kernel
        .members()
        .create_role(&call, &req.name, &req.permissions)
        .await?;
    Ok(Created(CustomRole {
        name: r.name,
        permissions: r.permissions,
    }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RolePermissions {
    /// Names from the permission catalogue (docs/API.md) or the product's declared permissions.
    #[schema(value_type = Vec<super::PermissionName>)]
    permissions: Vec<String>,
}

/// Replaces a custom role's permissions. Needs `roles.manage`, and the caller must hold every
/// permission the role grants before and after (members holding it gain or lose permissions at
/// their next request).
#[utoipa::path(patch, path = "/v1/organization/roles/{name}", tag = "organization",
    security(("bearer" = [])), params(OrgScoped, ("name" = String, Path, description = "The custom role")),
    request_body = RolePermissions,
    responses(
        (status = 200, description = "Updated", body = CustomRole),
        (status = 403, description = "`forbidden`: the role grants a permission the caller lacks", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such custom role", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown permission, a permission the caller lacks, or a built-in role", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn update_role(
    State(state): State<AppState>,
    OrgCaller(call): OrgCaller,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<RolePermissions>,
) -> Result<Json<CustomRole>, ApiError> {
    let r = state
        .kernel
        .members()
        .update_role(&call, &name, &req.permissions)
        .await?;
    Ok(Json(CustomRole {
        name: r.name,
        permissions: r.permissions,
    }))
}

/// Deletes a custom role that no member holds and no pending invitation gives. Needs
/// `roles.manage` and every permission the role grants.
#[utoipa::path(delete, path = "/v1/organization/roles/{name}", tag = "organization",
    security(("bearer" = [])), params(OrgScoped, ("name" = String, Path, description = "The custom role")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "`forbidden`: the role grants a permission the caller lacks", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such custom role", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`conflict`: members or pending invitations hold the role", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn delete_role(
    State(state): State<AppState>,
    OrgCaller(call): OrgCaller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.kernel.members().delete_role(&call, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct RoleList {
    items: Vec<CustomRole>,
    next_cursor: Option<String>,
}

/// The organisation's custom roles. Needs `org.read`.
#[utoipa::path(get, path = "/v1/organization/roles", tag = "organization",
    security(("bearer" = [])), params(OrgScoped),
    responses((status = 200, description = "Custom roles", body = RoleList)))]
pub(crate) async fn list_roles(
    State(state): State<AppState>,
    OrgCaller(call): OrgCaller,
) -> Result<Json<RoleList>, ApiError> {
    let roles = state.kernel.members().list_roles(&call).await?;
    Ok(Json(RoleList {
        items: roles
            .into_iter()
            .map(|r| CustomRole {
                name: r.name,
                permissions: r.permissions,
            })
            .collect(),
        next_cursor: None,
    }))
}

/// The organisation's security policy.
#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SecurityPolicy {
    /// Every member must have a confirmed second factor; until they enrol one they may only
    /// enrol it (`second_factor_enrolment_required` on everything else). API keys are not
    /// affected.
    require_second_factor: bool,
}

/// The organisation's security policy. Needs `org.read`.
#[utoipa::path(get, path = "/v1/organization/security-policy", tag = "organization",
    security(("bearer" = [])), params(OrgScoped),
    responses(
        (status = 200, description = "The policy", body = SecurityPolicy),
        (status = 403, description = "`forbidden`, or `second_factor_enrolment_required`", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn security_policy(
    State(state): State<AppState>,
    OrgCaller(call): OrgCaller,
) -> Result<Json<SecurityPolicy>, ApiError> {
    let required = state.kernel.members().second_factor_policy(&call).await?;
    Ok(Json(SecurityPolicy {
        require_second_factor: required,
    }))
}

/// Sets the organisation's security policy. Owners only, with a second factor checked within
/// the step-up window (`POST /v1/auth/step-up`; turning the requirement off: or, for an owner
/// without a factor, a recent password). Audited as `organization.security_policy_changed`.
#[utoipa::path(put, path = "/v1/organization/security-policy", tag = "organization",
    security(("bearer" = [])), params(OrgScoped), request_body = SecurityPolicy,
    responses(
        (status = 200, description = "The policy now", body = SecurityPolicy),
        (status = 403, description = "`forbidden`: not an owner; `step_up_required`: no recent second factor", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn set_security_policy(
    State(state): State<AppState>,
    OrgCaller(call): OrgCaller,
    ApiJson(req): ApiJson<SecurityPolicy>,
) -> Result<Json<SecurityPolicy>, ApiError> {
    let required = state
        .kernel
        .members()
        .set_second_factor_policy(&call, req.require_second_factor)
        .await?;
    Ok(Json(SecurityPolicy {
        require_second_factor: required,
    }))
}

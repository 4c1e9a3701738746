//! Invitations: made by a member who may grant the role, mailed to the invited address, listed
//! and revoked by members who manage members, accepted once by the holder of the mailed token.

use std::fmt;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use gatehouse_core::PageRequest;
use gatehouse_crypto::SecretString;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::auth::{OrgCaller, OrgScoped};
use crate::extract::RequestMeta;
use crate::json::{ApiJson, Created};
use crate::problem::{ApiError, Problem};
use crate::routes::organization::PageQuery;
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct InvitationRequest {
    #[schema(format = Email, max_length = 254)]
    email: String,
    /// `owner`, `admin`, `member`, `viewer`, or a custom role's name.
    #[schema(pattern = r"^[a-z][a-z0-9_-]{0,39}$")]
    role: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct InvitationResponse {
    id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
}

impl fmt::Debug for InvitationResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InvitationResponse")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Invites an email address with a role and mails it the one-time link (never to the inviter).
/// Needs `members.manage` (and ownership to invite an owner).
#[utoipa::path(post, path = "/v1/organization/invitations", tag = "organization",
    security(("bearer" = [])), params(OrgScoped), request_body = InvitationRequest,
    responses(
        (status = 201, description = "Invited; the link is mailed to the address", body = InvitationResponse),
        (status = 403, description = "`forbidden`, or `wrong_audience` under impersonation", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: `email` is not an address, or `role` is neither built in nor one of the organisation's custom roles", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn invite(
    State(state): State<AppState>,
    OrgCaller(call): OrgCaller,
    ApiJson(req): ApiJson<InvitationRequest>,
) -> Result<Created<InvitationResponse>, ApiError> {
    let issued = state
        .kernel
        .members()
        .invite(&call, &req.email, &req.role)
        .await?;
    Ok(Created(InvitationResponse {
        id: issued.id,
        expires_at: issued.expires_at,
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AcceptRequest {
    token: String,
    /// For a new account: the name to create it with (1 to 200 characters once trimmed, no
    /// control characters).
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    name: Option<String>,
    /// A new account's password, or an existing account's current one.
    #[schema(format = Password)]
    password: String,
}

impl fmt::Debug for AcceptRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AcceptRequest([redacted])")
    }
}

/// Named apart from the password reset's `Accepted`, whose schema would otherwise take its place.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = InvitationAccepted)]
pub(crate) struct Accepted {
    user_id: Uuid,
    organization_id: Uuid,
}

/// Accepts an invitation, creating the account or linking an existing one (proved by its
/// password). The token works once, and accepting it verifies the address it was mailed to. It
/// is refused (404) once revoked, or when its inviter no longer holds the role it grants.
#[utoipa::path(post, path = "/v1/invitations/accept", tag = "organization",
    request_body = AcceptRequest,
    responses(
        (status = 200, description = "Joined", body = Accepted),
        (status = 401, description = "Wrong password for the existing account", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown, expired, used or revoked token, or an inviter who no longer holds the role", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`conflict`: the invitation was used meanwhile, or the account is already a member", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: a new account's `name` or `password` fails its rule", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`overloaded`: password hashing is saturated; retry after `Retry-After`", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn accept(
    State(state): State<AppState>,
    RequestMeta(meta): RequestMeta,
    ApiJson(req): ApiJson<AcceptRequest>,
) -> Result<Json<Accepted>, ApiError> {
    let (user, org) = state
        .kernel
        .members()
        .accept_invitation(
            &SecretString::from(req.token),
            req.name,
            SecretString::from(req.password),
            &meta,
        )
        .await?;
    Ok(Json(Accepted {
        user_id: user.as_uuid(),
        organization_id: org.as_uuid(),
    }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Invitation {
    id: Uuid,
    email: String,
    role: String,
    invited_by: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct InvitationPage {
    items: Vec<Invitation>,
    next_cursor: Option<String>,
}

/// Pending invitations (neither accepted nor expired), oldest first. Needs `members.manage`.
#[utoipa::path(get, path = "/v1/organization/invitations", tag = "organization",
    security(("bearer" = [])), params(PageQuery, OrgScoped),
    responses(
        (status = 200, description = "A page of pending invitations", body = InvitationPage),
        (status = 403, description = "`forbidden`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: `cursor` is not one this server issued, or `limit` is not 1 to 200", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list_invitations(
    State(state): State<AppState>,
    OrgCaller(call): OrgCaller,
    Query(q): Query<PageQuery>,
) -> Result<Json<InvitationPage>, ApiError> {
    let page = PageRequest::parse(q.cursor.as_deref(), q.limit)?;
    let found = state.kernel.members().list_invitations(&call, page).await?;
    Ok(Json(InvitationPage {
        items: found
            .items
            .into_iter()
            .map(|i| Invitation {
                id: i.id,
                email: i.email,
                role: i.role,
                invited_by: i.invited_by.as_uuid(),
                created_at: i.created_at,
                expires_at: i.expires_at,
            })
            .collect(),
        next_cursor: found.next_cursor,
    }))
}

/// Revokes a pending invitation: its mailed link stops working. Needs `members.manage`.
#[utoipa::path(delete, path = "/v1/organization/invitations/{id}", tag = "organization",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The invitation"), OrgScoped),
    responses(
        (status = 204, description = "Revoked"),
        (status = 403, description = "`forbidden`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No pending invitation with this id", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn revoke_invitation(
    State(state): State<AppState>,
    OrgCaller(call): OrgCaller,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    state.kernel.members().revoke_invitation(&call, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

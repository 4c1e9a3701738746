//! The signed-in user and their sessions (devices).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::auth::EnrolmentCaller;
use crate::problem::{ApiError, Problem};
use crate::state::AppState;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Membership {
    organization_id: Uuid,
    role: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Me {
    user_id: Uuid,
    email: String,
    name: String,
    organization_id: Option<Uuid>,
    session_id: Uuid,
    /// Set under impersonation: the operator acting as this user.
    impersonator_id: Option<Uuid>,
    memberships: Vec<Membership>,
}

/// The caller's account and memberships (to a session an organisation's single sign-on began,
/// only that organisation's).
#[utoipa::path(get, path = "/v1/me", tag = "me", security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller", body = Me),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn me(
    State(state): State<AppState>,
    caller: EnrolmentCaller,
) -> Result<Json<Me>, ApiError> {
    let p = &caller.call.principal;
    let me = state.kernel.members().me(&caller.call).await?;
    Ok(Json(Me {
        user_id: me.user_id.as_uuid(),
        email: me.email,
        name: me.name,
        organization_id: p.org.map(|o| o.as_uuid()),
        session_id: p.session_id,
        impersonator_id: p.impersonator,
        memberships: me
            .memberships
            .into_iter()
            .map(|(o, role)| Membership {
                organization_id: o.as_uuid(),
                role,
            })
            .collect(),
    }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Session {
    id: Uuid,
    device_name: String,
    user_agent: Option<String>,
    ip: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    last_seen_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
    /// The session making this request.
    current: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct SessionList {
    items: Vec<Session>,
    next_cursor: Option<String>,
}

/// The caller's live sessions, newest first (at most 500; `next_cursor` is always null).
#[utoipa::path(get, path = "/v1/me/sessions", tag = "me", security(("bearer" = [])),
    responses((status = 200, description = "Live sessions (to a session an organisation's single sign-on began, only those begun through the same sign-on)", body = SessionList)))]
pub(crate) async fn sessions(
    State(state): State<AppState>,
    caller: EnrolmentCaller,
) -> Result<Json<SessionList>, ApiError> {
    let views = state.kernel.sessions().list(&caller.call).await?;
    Ok(Json(session_list(views)))
}

/// The list answer for sessions (also the operators' `GET /admin/v1/sessions`).
pub(crate) fn session_list(views: Vec<gatehouse_core::identity::SessionView>) -> SessionList {
    SessionList {
        items: views
            .into_iter()
            .map(|s| Session {
                id: s.id,
                device_name: s.device_name,
                user_agent: s.user_agent,
                ip: s.ip,
                created_at: s.created_at,
                last_seen_at: s.last_seen_at,
                expires_at: s.expires_at,
                current: s.current,
            })
            .collect(),
        next_cursor: None,
    }
}

/// Ends one of the caller's sessions; its tokens are refused from the next request on. Ending
/// the caller's own session is signing out; ending another needs a second factor checked within
/// the step-up window (an account without one: a password checked within it), as ending all the
/// others does. A session begun through an organisation's single sign-on (confined to it) ends
/// only sessions begun through the same sign-on.
#[utoipa::path(delete, path = "/v1/me/sessions/{id}", tag = "me", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Session id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 403, description = "`step_up_required`: another session, and no recent second factor (or password, for an account without one); `POST /v1/auth/step-up`. `sso_refused`: the caller's session began through an organisation's single sign-on and the other session did not begin through the same", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such session of the caller", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn revoke(
    State(state): State<AppState>,
    caller: EnrolmentCaller,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    state.kernel.sessions().revoke(&caller.call, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Revoked {
    revoked: usize,
}

impl Revoked {
    pub(crate) fn new(revoked: usize) -> Self {
        Self { revoked }
    }
}

/// Ends every session of the caller except this one. Needs a second factor checked within the
/// step-up window (an account without one: a password checked within it, at sign-in or step-up).
/// Refused to a session begun through an organisation's single sign-on: it is confined to that
/// organisation, and the account's other sessions are outside it (it may end those begun through
/// the same sign-on one by one).
#[utoipa::path(post, path = "/v1/me/sessions/revoke-others", tag = "me", security(("bearer" = [])),
    responses(
        (status = 200, description = "How many were revoked", body = Revoked),
        (status = 403, description = "`step_up_required`: no recent second factor (or password, for an account without one); `POST /v1/auth/step-up`. `sso_refused`: the session began through an organisation's single sign-on (confined to it)", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn revoke_others(
    State(state): State<AppState>,
    caller: EnrolmentCaller,
) -> Result<Json<Revoked>, ApiError> {
    let revoked = state.kernel.sessions().revoke_others(&caller.call).await?;
    Ok(Json(Revoked::new(revoked)))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct SsoLink {
    /// The link's id (a digest of the provider's issuer and the person's subject there).
    id: String,
    issuer: String,
    /// The organisation whose single sign-on made the link; null: a platform provider.
    organization_id: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct SsoLinkList {
    items: Vec<SsoLink>,
}

/// The caller's links to identities at external providers (which sign the account in), oldest
/// first. A link ends with the membership of the organisation whose sign-on made it.
#[utoipa::path(get, path = "/v1/me/sso/links", tag = "me", security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's links (to a session an organisation's single sign-on began, only the links that sign-on made)", body = SsoLinkList),
        (status = 403, description = "`forbidden`: an API key or an impersonation", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn sso_links(
    State(state): State<AppState>,
    caller: crate::auth::Caller,
) -> Result<Json<SsoLinkList>, ApiError> {
    let links = state.kernel.sso().links(&caller.call).await?;
    Ok(Json(SsoLinkList {
        items: links
            .into_iter()
            .map(|l| SsoLink {
                id: l.id,
                issuer: l.issuer,
                organization_id: l.organization_id.map(|o| o.as_uuid()),
                created_at: l.created_at,
            })
            .collect(),
    }))
}

/// Ends one of the caller's links: that identity no longer signs the account in. Audited
/// (`sso.identity_unlinked`, on the chain of the organisation whose sign-on made it). A session
/// begun through an organisation's single sign-on ends only the links that sign-on made.
#[utoipa::path(delete, path = "/v1/me/sso/links/{id}", tag = "me", security(("bearer" = [])),
    params(("id" = String, Path, description = "The link's id")),
    responses(
        (status = 204, description = "Unlinked"),
        (status = 403, description = "`forbidden`: an API key or an impersonation. `sso_refused`: the session began through an organisation's single sign-on and the link is not one that sign-on made", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such link of the caller", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn sso_unlink(
    State(state): State<AppState>,
    caller: crate::auth::Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.kernel.sso().unlink(&caller.call, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

//! Share links (F1): `/v1/records/{id}/share-links` for the record's writers, and
//! `/v1/share/...` for whoever holds a link, without an account.

use std::fmt;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use gatehouse_core::Error;
use gatehouse_core::page::PageRequest;
use gatehouse_core::product::NewShareLink;
use gatehouse_core::store::ShareLinkRow;
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

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateShareLink {
    /// Asked of whoever opens the link: 8 to 256 characters, not a common password.
    #[schema(format = Password, min_length = 8, max_length = 256)]
    password: Option<String>,
    /// The first instant the link is refused; at most `share.max_ttl_days` ahead.
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
    /// Opens allowed in all (1 to 1000000); unbounded when absent.
    #[schema(minimum = 1, maximum = 1_000_000)]
    max_views: Option<u32>,
}

impl fmt::Debug for CreateShareLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreateShareLink")
            .field("expires_at", &self.expires_at)
            .field("max_views", &self.max_views)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ShareLink {
    id: Uuid,
    record_id: Uuid,
    /// Whether opening asks for a password.
    password: bool,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
    max_views: Option<u32>,
    views: u32,
    /// `user:{uuid}` or `key:{uuid}`.
    created_by: String,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    revoked_at: Option<OffsetDateTime>,
}

impl From<ShareLinkRow> for ShareLink {
    fn from(l: ShareLinkRow) -> Self {
        Self {
            id: l.id,
            record_id: l.record_id,
            password: l.password_hash.is_some(),
            expires_at: l.expires_at,
            max_views: l.max_views,
            views: l.views,
            created_by: l.created_by,
            created_at: l.created_at,
            revoked_at: l.revoked_at,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct IssuedShareLink {
    /// The link's token (`gsl_` and 43 characters), shown this once: the product builds its
    /// own URL around it and opens it with `POST /v1/share/{token}`.
    token: String,
    #[serde(flatten)]
    link: ShareLink,
}

/// Makes a share link to a record the caller may change (its owner; for a record that is not
/// private, a holder of its type's write permission).
#[utoipa::path(post, path = "/v1/records/{id}/share-links", tag = "share-links", security(("bearer" = [])),
    params(OrgScoped, ("id" = Uuid, Path, description = "The record")), request_body = CreateShareLink,
    responses(
        (status = 201, description = "The link; its token is shown this once", body = IssuedShareLink),
        (status = 403, description = "`forbidden`: the caller may read but not change the record", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such record the caller may read", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: an expiry in the past or beyond the bound, a weak password, `max_views` out of range", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn create(
    State(state): State<AppState>,
    OrgCaller(call): OrgCaller,
    Path(id): Path<Uuid>,
    ApiJson(req): ApiJson<CreateShareLink>,
) -> Result<Created<IssuedShareLink>, ApiError> {
    let made = state
        .kernel
        .share_links()
        .create(
            &call,
            id,
            NewShareLink {
                password: req.password.map(SecretString::from),
                expires_at: req.expires_at,
                max_views: req.max_views,
            },
        )
        .await?;
    Ok(Created(IssuedShareLink {
        token: made.token.expose().to_owned(),
        link: made.link.into(),
    }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ShareLinkPage {
    items: Vec<ShareLink>,
    next_cursor: Option<String>,
}

/// A record's share links, newest first, without their tokens.
#[utoipa::path(get, path = "/v1/records/{id}/share-links", tag = "share-links", security(("bearer" = [])),
    params(OrgScoped, ("id" = Uuid, Path, description = "The record"), PageQuery),
    responses(
        (status = 200, description = "A page of links", body = ShareLinkPage),
        (status = 403, description = "`forbidden`: the caller may read but not change the record", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such record the caller may read", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: a bad cursor or limit", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list(
    State(state): State<AppState>,
    OrgCaller(call): OrgCaller,
    Path(id): Path<Uuid>,
    Query(q): Query<PageQuery>,
) -> Result<Json<ShareLinkPage>, ApiError> {
    let page = PageRequest::parse(q.cursor.as_deref(), q.limit)?;
    let found = state.kernel.share_links().list(&call, id, page).await?;
    Ok(Json(ShareLinkPage {
        items: found.items.into_iter().map(ShareLink::from).collect(),
        next_cursor: found.next_cursor,
    }))
}

/// Revokes a link; viewers it let in are refused from their next request.
#[utoipa::path(delete, path = "/v1/records/{id}/share-links/{link_id}", tag = "share-links", security(("bearer" = [])),
    params(OrgScoped, ("id" = Uuid, Path, description = "The record"), ("link_id" = Uuid, Path, description = "The link")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No such record or link", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`conflict`: already revoked", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn revoke(
    State(state): State<AppState>,
    OrgCaller(call): OrgCaller,
    Path((id, link_id)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode, ApiError> {
    state
        .kernel
        .share_links()
        .revoke(&call, id, link_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SetSharePassword {
    /// The new password (8 to 256 characters), or `null` to open without one.
    #[schema(format = Password, min_length = 8, max_length = 256)]
    password: Option<String>,
}

impl fmt::Debug for SetSharePassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SetSharePassword([redacted])")
    }
}

/// Sets, changes or removes a link's password; viewers it let in before are refused from their
/// next request.
#[utoipa::path(put, path = "/v1/records/{id}/share-links/{link_id}/password", tag = "share-links", security(("bearer" = [])),
    params(OrgScoped, ("id" = Uuid, Path, description = "The record"), ("link_id" = Uuid, Path, description = "The link")),
    request_body = SetSharePassword,
    responses(
        (status = 200, description = "The link", body = ShareLink),
        (status = 404, description = "No such record or link", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`conflict`: the link is revoked", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: a weak password", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn set_password(
    State(state): State<AppState>,
    OrgCaller(call): OrgCaller,
    Path((id, link_id)): Path<(Uuid, Uuid)>,
    ApiJson(req): ApiJson<SetSharePassword>,
) -> Result<Json<ShareLink>, ApiError> {
    let link = state
        .kernel
        .share_links()
        .set_password(&call, id, link_id, req.password.map(SecretString::from))
        .await?;
    Ok(Json(link.into()))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct OpenShareLink {
    /// The link's password, when it has one.
    #[schema(format = Password, max_length = 1024)]
    password: Option<String>,
}

impl fmt::Debug for OpenShareLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OpenShareLink([redacted])")
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ViewerPass {
    /// A viewer pass (`gsv_...`): `Authorization: Bearer` on `GET /v1/share/record`.
    viewer_token: String,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
    record_id: Uuid,
}

/// Opens a share link: no account needed. Wrong passwords lock out like sign-in (per link and
/// per address, growing delays). Counts one view.
#[utoipa::path(post, path = "/v1/share/{token}", tag = "share-links",
    params(("token" = String, Path, description = "The link's token")), request_body = OpenShareLink,
    responses(
        (status = 200, description = "A viewer pass for the record", body = ViewerPass),
        (status = 401, description = "`unauthenticated` (the link asks for a password) or `invalid_credentials` (a wrong one)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such link", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "`link_ended`: revoked, expired, out of views, or its record is gone", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`too_many_attempts`: locked out after wrong passwords; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn open(
    State(state): State<AppState>,
    RequestMeta(meta): RequestMeta,
    Path(token): Path<String>,
    ApiJson(req): ApiJson<OpenShareLink>,
) -> Result<Json<ViewerPass>, ApiError> {
    if req.password.as_ref().is_some_and(|p| p.len() > 1024) {
        return Err(Error::invalid("password", "must be at most 1024 bytes").into());
    }
    let pass = state
        .kernel
        .share_links()
        .open(&token, req.password.map(SecretString::from), &meta)
        .await?;
    Ok(Json(ViewerPass {
        viewer_token: pass.token.expose().to_owned(),
        expires_at: pass.expires_at,
        record_id: pass.record_id,
    }))
}

fn viewer_token(headers: &HeaderMap) -> Result<&str, Error> {
    let missing = || Error::Unauthenticated("use Authorization: Bearer <viewer token>");
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(missing)?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Ok(token.trim()),
        _ => Err(missing()),
    }
}

/// What a viewer sees of a shared record: its content and what it is, not who owns it, who
/// else may read it or how it is filed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct SharedRecord {
    id: Uuid,
    #[serde(rename = "type")]
    kind: String,
    external_id: String,
    content: Option<serde_json::Value>,
    #[serde(with = "time::serde::rfc3339")]
    updated_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    expires_at: Option<OffsetDateTime>,
    /// `share_link:{id}`.
    via: String,
}

/// The shared record, read-only, for the holder of a live viewer pass. A pass whose link was
/// revoked, or whose password changed, is refused.
#[utoipa::path(get, path = "/v1/share/record", tag = "share-links", security(("bearer" = [])),
    responses(
        (status = 200, description = "The record's content and what it is", body = SharedRecord),
        (status = 401, description = "`unauthenticated`: no pass, or one that is invalid or has ended", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "The record is gone", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn view(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<SharedRecord>, ApiError> {
    let token = viewer_token(&headers)?;
    let view = state.kernel.share_links().view(token).await?;
    Ok(Json(SharedRecord {
        id: view.row.id,
        kind: view.row.kind,
        external_id: view.row.external_id,
        content: view.content,
        updated_at: view.row.updated_at,
        expires_at: view.row.expires_at,
        via: view.via,
    }))
}

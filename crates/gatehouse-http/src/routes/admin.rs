//! The operator API: user import and impersonation (operators' own sign-in and sessions are in
//! `admin_sessions`). Only operator tokens (their own audience and tier) pass; tenant tokens get
//! 403 `wrong_audience`.

use std::fmt;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use gatehouse_core::identity::ImportedUser;
use gatehouse_core::{OrgId, UserId};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::OperatorCaller;
use crate::json::ApiJson;
use crate::problem::{ApiError, Problem};
use crate::routes::auth::{SessionMode, TokenResponse, session_response};
use crate::state::AppState;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ImportUser {
    email: String,
    name: String,
    /// A bcrypt (`$2a$`, `$2b$`, `$2y$`) or Argon2id PHC hash; bcrypt is replaced by Argon2id at
    /// the first sign-in.
    password_hash: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ImportRequest {
    /// At most 1000.
    #[schema(max_items = 1000)]
    users: Vec<ImportUser>,
    /// Accept hashes below today's floor (bcrypt cost under 10, Argon2id under OWASP's
    /// minimum); each is replaced by an Argon2id hash at its user's first sign-in. Default false.
    #[serde(default)]
    allow_weak_hashes: bool,
}

impl fmt::Debug for ImportRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImportRequest")
            .field("users", &self.users.len())
            .field("allow_weak_hashes", &self.allow_weak_hashes)
            .finish()
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ImportResult {
    email: String,
    user_id: Option<Uuid>,
    /// Why this user was not imported: `invalid_email`, `invalid_name`, `unsupported_hash`,
    /// `weak_hash` (below the floor, without `allow_weak_hashes`), `hash_too_costly` (bcrypt
    /// cost over 14, Argon2id over 256 MiB, 16 passes or 16 lanes), `email_taken`.
    error: Option<&'static str>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ImportResponse {
    items: Vec<ImportResult>,
}

const MAX_IMPORT: usize = 1000;

/// Imports users with password hashes from another system, each on its own.
#[utoipa::path(post, path = "/admin/v1/users/import", tag = "admin", security(("bearer" = [])),
    request_body = ImportRequest,
    responses(
        (status = 200, description = "One result per user", body = ImportResponse),
        (status = 403, description = "Not an operator token", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: more than 1000 users", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn import(
    State(state): State<AppState>,
    OperatorCaller(call): OperatorCaller,
    ApiJson(mut req): ApiJson<ImportRequest>,
) -> Result<Json<ImportResponse>, ApiError> {
    if req.users.len() > MAX_IMPORT {
        return Err(gatehouse_core::Error::invalid("users", "at most 1000 per request").into());
    }
    let users = req
        .users
        .drain(..)
        .map(|u| ImportedUser {
            email: u.email,
            name: u.name,
            password_hash: u.password_hash,
        })
        .collect();
    let out = state
        .kernel
        .operators()
        .import_users(&call, users, req.allow_weak_hashes)
        .await?;
    Ok(Json(ImportResponse {
        items: out
            .into_iter()
            .map(|o| ImportResult {
                email: o.email,
                user_id: o.user_id.map(|u| u.as_uuid()),
                error: o.error,
            })
            .collect(),
    }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ImpersonationRequest {
    user_id: Uuid,
    organization_id: Uuid,
    /// Recorded in both audit chains: 3 to 500 characters once trimmed.
    #[schema(min_length = 3, max_length = 500)]
    reason: String,
}

/// Starts impersonating a member: a 30-minute token (no refresh token) for the organisation, whose
/// every action is audited with both identities. Needs a recent step-up.
#[utoipa::path(post, path = "/admin/v1/impersonations", tag = "admin", security(("bearer" = [])),
    request_body = ImpersonationRequest,
    responses(
        (status = 201, description = "The impersonation token", body = TokenResponse),
        (status = 403, description = "Not an operator token (`wrong_audience`), or `step_up_required`: the operator's last second factor (or, without one where none is required, password) is older than the step-up window; `POST /admin/v1/auth/step-up` first", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "The user is not a member", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: `reason` is not 3 to 500 characters", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn impersonate(
    State(state): State<AppState>,
    OperatorCaller(call): OperatorCaller,
    ApiJson(req): ApiJson<ImpersonationRequest>,
) -> Result<Response, ApiError> {
    let issued = state
        .kernel
        .operators()
        .impersonate(
            &call,
            UserId::from_uuid(req.user_id),
            OrgId::from_uuid(req.organization_id),
            &req.reason,
        )
        .await?;
    Ok(session_response(
        issued,
        SessionMode::Bearer,
        StatusCode::CREATED,
    ))
}

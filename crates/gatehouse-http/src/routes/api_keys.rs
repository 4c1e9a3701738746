//! API keys (B1) on the tenant API, and their verification on the service API.

use std::fmt;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use gatehouse_core::PageRequest;
use gatehouse_core::api_keys::{KeyEnv, NewApiKey};
use gatehouse_core::store::ApiKeyRecord;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::auth::{OrgCaller, OrgScoped, ServiceProof};
use crate::json::{ApiJson, Created, JsonOk};
use crate::problem::{ApiError, Problem};
use crate::routes::organization::PageQuery;
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateApiKey {
    /// 1 to 200 characters once trimmed, no control characters.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    name: String,
    /// Names from the permission catalogue, at least one; at most what the creator holds.
    #[schema(value_type = Vec<super::PermissionName>, min_items = 1)]
    permissions: Vec<String>,
    /// 1 to 100 bytes (UTF-8), no control characters.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*$"
    )]
    namespace: Option<String>,
    /// In the future.
    #[serde(default, with = "time::serde::rfc3339::option")]
    expires_at: Option<OffsetDateTime>,
    /// Requests per minute for this key, overriding the organisation's plan.
    #[schema(minimum = 1)]
    rate_limit: Option<u32>,
    /// `live` (default) or `test`: the key's prefix, `gk_live_` or `gk_test_`.
    #[schema(value_type = Option<KeyEnvironment>)]
    environment: Option<String>,
}

/// The environments a key is made for, as `environment` takes them.
#[derive(Debug, utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // for the document: `KeyEnv::parse` reads the text
pub(crate) enum KeyEnvironment {
    Live,
    Test,
}

/// A key as listed: never the key itself.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ApiKeyView {
    id: Uuid,
    name: String,
    prefix: String,
    last4: String,
    permissions: Vec<String>,
    namespace: Option<String>,
    rate_limit: Option<u32>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    expires_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    revoked_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    last_used_at: Option<OffsetDateTime>,
}

impl From<ApiKeyRecord> for ApiKeyView {
    fn from(k: ApiKeyRecord) -> Self {
        Self {
            id: k.id,
            name: k.name,
            prefix: k.prefix,
            last4: k.last4,
            permissions: k.permissions,
            namespace: k.namespace,
            rate_limit: k.rate_limit,
            created_at: k.created_at,
            expires_at: k.expires_at,
            revoked_at: k.revoked_at,
            last_used_at: k.last_used_at,
        }
    }
}

/// A new key: shown once, here.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct IssuedKey {
    /// The key. Store it now: Gatehouse keeps only its SHA-256.
    key: String,
    #[serde(flatten)]
    view: ApiKeyView,
}

impl fmt::Debug for IssuedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedKey")
            .field("id", &self.view.id)
            .finish_non_exhaustive()
    }
}

/// Creates an API key. Needs `api_keys.manage`.
#[utoipa::path(post, path = "/v1/api-keys", tag = "api-keys", security(("bearer" = [])), params(OrgScoped),
    request_body = CreateApiKey,
    responses(
        (status = 201, description = "The key, shown once", body = IssuedKey),
        (status = 403, description = "`forbidden`, or `wrong_audience` under impersonation", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown permission, or one the creator does not hold", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn create(
    State(state): State<AppState>,
    OrgCaller(call): OrgCaller,
    ApiJson(req): ApiJson<CreateApiKey>,
) -> Result<Created<IssuedKey>, ApiError> {
    let env = match req.environment.as_deref() {
        None => KeyEnv::Live,
        Some(e) => KeyEnv::parse(e)
            .ok_or_else(|| gatehouse_core::Error::invalid("environment", "must be live or test"))?,
    };
    let issued = state
        .kernel
        .api_keys()
        .create(
            &call,
            NewApiKey {
                name: req.name,
                permissions: req.permissions,
                namespace: req.namespace,
                expires_at: req.expires_at,
                rate_limit: req.rate_limit,
                env,
            },
        )
        .await?;
    Ok(Created(IssuedKey {
        key: issued.key.expose().to_owned(),
        view: issued.record.into(),
    }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ApiKeyPage {
    items: Vec<ApiKeyView>,
    next_cursor: Option<String>,
}

/// The organisation's keys, newest first (prefix and last four characters only). Needs
/// `api_keys.manage`.
#[utoipa::path(get, path = "/v1/api-keys", tag = "api-keys", security(("bearer" = [])),
    params(OrgScoped, PageQuery),
    responses(
        (status = 200, description = "A page of keys", body = ApiKeyPage),
        (status = 422, description = "`validation_failed`: `cursor` is not one this server issued, or `limit` is not 1 to 200", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list(
    State(state): State<AppState>,
    OrgCaller(call): OrgCaller,
    Query(q): Query<PageQuery>,
) -> Result<Json<ApiKeyPage>, ApiError> {
    let page = PageRequest::parse(q.cursor.as_deref(), q.limit)?;
    let found = state.kernel.api_keys().list(&call, page).await?;
    Ok(Json(ApiKeyPage {
        items: found.items.into_iter().map(ApiKeyView::from).collect(),
        next_cursor: found.next_cursor,
    }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RotateRequest {
    /// How long the old key keeps working (0 to 2592000).
    #[schema(minimum = 0, maximum = 2_592_000)]
    grace_seconds: i64,
}

/// Issues a replacement key with the same grants; the old one works until the grace period ends.
#[utoipa::path(post, path = "/v1/api-keys/{id}/rotate", tag = "api-keys", security(("bearer" = [])),
    params(OrgScoped, ("id" = Uuid, Path, description = "The key")), request_body = RotateRequest,
    responses(
        (status = 201, description = "The new key, shown once", body = IssuedKey),
        (status = 403, description = "`forbidden` (the caller lacks `api_keys.manage` or one of the key's permissions), or `wrong_audience` under impersonation", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such usable key", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: `grace_seconds` is not 0 to 2592000", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn rotate(
    State(state): State<AppState>,
    OrgCaller(call): OrgCaller,
    Path(id): Path<Uuid>,
    ApiJson(req): ApiJson<RotateRequest>,
) -> Result<Created<IssuedKey>, ApiError> {
    let issued = state
        .kernel
        .api_keys()
        .rotate(&call, id, time::Duration::seconds(req.grace_seconds))
        .await?;
    Ok(Created(IssuedKey {
        key: issued.key.expose().to_owned(),
        view: issued.record.into(),
    }))
}

/// Revokes a key; it is refused from the next request on.
#[utoipa::path(delete, path = "/v1/api-keys/{id}", tag = "api-keys", security(("bearer" = [])),
    params(OrgScoped, ("id" = Uuid, Path, description = "The key")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No such key", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn revoke(
    State(state): State<AppState>,
    OrgCaller(call): OrgCaller,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    state.kernel.api_keys().revoke(&call, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct VerifyKeyRequest {
    key: String,
}

impl fmt::Debug for VerifyKeyRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VerifyKeyRequest([redacted])")
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct VerifiedKey {
    valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    organization: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    permissions: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<String>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    expires_at: Option<OffsetDateTime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rate_limit: Option<u32>,
}

/// Verifies an API key for one of your services. 200 either way: `valid` says which (false
/// also while the member the key acts for must enrol a second factor and has not).
#[utoipa::path(post, path = "/internal/v1/api-keys/verify", tag = "internal",
    security(("service" = [])), request_body = VerifyKeyRequest,
    responses(
        (status = 200, description = "Whether the key is valid, and what it may do", body = VerifiedKey),
        (status = 401, description = "Missing or wrong `X-Service-Auth`", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn verify(
    State(state): State<AppState>,
    _service: ServiceProof,
    ApiJson(req): ApiJson<VerifyKeyRequest>,
) -> Result<JsonOk<VerifiedKey>, ApiError> {
    let verified = state.kernel.api_keys().verify_acting(&req.key).await;
    gatehouse_core::telemetry::metrics::auth("api_key", verified.is_ok());
    match verified {
        // What the key may do now (bounded by its creator's current permissions), and its own
        // rate only where it applies (below the organisation's plan).
        Ok((k, acting)) => Ok(JsonOk(VerifiedKey {
            valid: true,
            key_id: Some(k.id),
            organization: Some(k.org_id.as_uuid()),
            permissions: Some(acting),
            namespace: k.namespace.clone(),
            expires_at: k.expires_at,
            rate_limit: k.rate_limit.filter(|_| {
                state
                    .rate_limits
                    .as_ref()
                    .is_none_or(|l| l.policy.for_api_key(k.org_id, k.rate_limit).name == "key")
            }),
        })),
        // A suspended key, also one acting for a member who must enrol a second factor.
        Err(
            gatehouse_core::Error::Unauthenticated(_)
            | gatehouse_core::Error::SecondFactorEnrolmentRequired(_),
        ) => Ok(JsonOk(VerifiedKey {
            valid: false,
            key_id: None,
            organization: None,
            permissions: None,
            namespace: None,
            expires_at: None,
            rate_limit: None,
        })),
        Err(e) => Err(e.into()),
    }
}

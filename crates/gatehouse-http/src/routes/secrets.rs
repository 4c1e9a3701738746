//! The shared-secrets vault (D2): metadata on `/v1`, the value only through reveal (gated,
//! audited) or, for the deployment's own services acting for a person, `/internal/v1/.../use`.

use std::fmt;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gatehouse_core::secrets::{NewSecret, SecretVersionView, SecretView};
use gatehouse_core::{Error, PageRequest};
use gatehouse_crypto::SecretBytes;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::auth::{OnBehalfOf, OrgCaller, OrgScoped};
use crate::json::{ApiJson, Created};
use crate::problem::{ApiError, Problem};
use crate::routes::organization::PageQuery;
use crate::state::AppState;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateSecret {
    /// 1 to 128 of letters, digits, `_ - . /`; unique in the organisation.
    #[schema(pattern = r"^[A-Za-z0-9_./-]{1,128}$")]
    name: String,
    /// The value (UTF-8, 1 byte to 64 KiB). Never shown again except by reveal.
    #[schema(min_length = 1, max_length = 65536)]
    value: String,
    /// 1 to 200 characters once trimmed, no control characters.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    description: Option<String>,
    /// In the future.
    #[serde(default, with = "time::serde::rfc3339::option")]
    expires_at: Option<OffsetDateTime>,
}

impl fmt::Debug for CreateSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreateSecret")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateSecret {
    /// The new value (UTF-8, 1 byte to 64 KiB): becomes the next version.
    #[schema(min_length = 1, max_length = 65536)]
    value: String,
}

impl fmt::Debug for UpdateSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UpdateSecret([redacted])")
    }
}

/// A secret's metadata: never its value.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Secret {
    id: Uuid,
    name: String,
    description: Option<String>,
    current_version: u32,
    created_by: String,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    updated_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    expires_at: Option<OffsetDateTime>,
}

impl From<SecretView> for Secret {
    fn from(s: SecretView) -> Self {
        Self {
            id: s.id,
            name: s.name,
            description: s.description,
            current_version: s.current_version,
            created_by: s.created_by,
            created_at: s.created_at,
            updated_at: s.updated_at,
            expires_at: s.expires_at,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct SecretVersion {
    version: u32,
    created_by: String,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
}

impl From<SecretVersionView> for SecretVersion {
    fn from(v: SecretVersionView) -> Self {
        Self {
            version: v.version,
            created_by: v.created_by,
            created_at: v.created_at,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct SecretDetail {
    #[serde(flatten)]
    secret: Secret,
    /// Every version, oldest first (metadata only).
    versions: Vec<SecretVersion>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct SecretList {
    items: Vec<Secret>,
    next_cursor: Option<String>,
}

/// The value, for reveal and use.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct SecretValue {
    value: String,
    version: Option<u32>,
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue([redacted])")
    }
}

fn value_response(value: &SecretBytes, version: Option<u32>) -> Result<Response, ApiError> {
    let text = std::str::from_utf8(value.expose())
        .map_err(|_| Error::Internal("a stored secret is not UTF-8".to_owned()))?;
    let mut res = (
        StatusCode::OK,
        Json(SecretValue {
            value: text.to_owned(),
            version,
        }),
    )
        .into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

/// Creates a secret (version 1). Needs `secrets.manage`.
#[utoipa::path(post, path = "/v1/secrets", tag = "secrets", security(("bearer" = [])), params(OrgScoped),
    request_body = CreateSecret,
    responses(
        (status = 201, description = "Created (metadata only)", body = Secret),
        (status = 403, description = "`forbidden`, or `wrong_audience` under impersonation", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The name is taken", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "`keys_shredded`: the organisation's keys were destroyed", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: `name`, `value`, `description` or `expires_at` fails its rule", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn create(
    State(state): State<AppState>,
    OrgCaller(call): OrgCaller,
    ApiJson(req): ApiJson<CreateSecret>,
) -> Result<Created<Secret>, ApiError> {
    let view = state
        .kernel
        .secrets()
        .create(
            &call,
            NewSecret {
                name: req.name,
                value: SecretBytes::new(req.value.into_bytes()),
                description: req.description,
                expires_at: req.expires_at,
            },
        )
        .await?;
    Ok(Created(view.into()))
}

/// Lists the organisation's secrets (metadata). Needs `secrets.use`.
#[utoipa::path(get, path = "/v1/secrets", tag = "secrets", security(("bearer" = [])),
    params(OrgScoped, PageQuery),
    responses(
        (status = 200, description = "A page", body = SecretList),
        (status = 422, description = "`validation_failed`: `cursor` is not one this server issued, or `limit` is not 1 to 200", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list(
    State(state): State<AppState>,
    OrgCaller(call): OrgCaller,
    Query(q): Query<PageQuery>,
) -> Result<Json<SecretList>, ApiError> {
    let page = PageRequest::parse(q.cursor.as_deref(), q.limit)?;
    let page = state.kernel.secrets().list(&call, page).await?;
    Ok(Json(SecretList {
        items: page.items.into_iter().map(Secret::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// One secret's metadata and versions. Needs `secrets.use`.
#[utoipa::path(get, path = "/v1/secrets/{id}", tag = "secrets", security(("bearer" = [])),
    params(OrgScoped, ("id" = Uuid, Path)),
    responses(
        (status = 200, description = "Metadata only", body = SecretDetail),
        (status = 404, description = "No such secret here", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn get(
    State(state): State<AppState>,
    OrgCaller(call): OrgCaller,
    Path(id): Path<Uuid>,
) -> Result<Json<SecretDetail>, ApiError> {
    let (secret, versions) = state.kernel.secrets().get(&call, id).await?;
    Ok(Json(SecretDetail {
        secret: secret.into(),
        versions: versions.into_iter().map(SecretVersion::from).collect(),
    }))
}

/// Stores a new version of the value; earlier versions stay. Needs `secrets.manage`.
#[utoipa::path(put, path = "/v1/secrets/{id}", tag = "secrets", security(("bearer" = [])),
    params(OrgScoped, ("id" = Uuid, Path)),
    request_body = UpdateSecret,
    responses(
        (status = 200, description = "The new current version (metadata)", body = Secret),
        (status = 403, description = "`forbidden`, or `wrong_audience` under impersonation", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such secret here", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`conflict`: the secret changed meanwhile; read it again and retry", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "`keys_shredded`: the organisation's keys were destroyed", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: `value` is empty or over 64 KiB", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn update(
    State(state): State<AppState>,
    OrgCaller(call): OrgCaller,
    Path(id): Path<Uuid>,
    ApiJson(req): ApiJson<UpdateSecret>,
) -> Result<Json<Secret>, ApiError> {
    let view = state
        .kernel
        .secrets()
        .update(&call, id, SecretBytes::new(req.value.into_bytes()))
        .await?;
    Ok(Json(view.into()))
}

/// Deletes a secret; its values are destroyed. Needs `secrets.manage`.
#[utoipa::path(delete, path = "/v1/secrets/{id}", tag = "secrets", security(("bearer" = [])),
    params(OrgScoped, ("id" = Uuid, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such secret here", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn delete(
    State(state): State<AppState>,
    OrgCaller(call): OrgCaller,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    state.kernel.secrets().delete(&call, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RevealRequest {
    /// Default: the current version.
    #[schema(minimum = 1)]
    version: Option<u32>,
}

/// Shows the value once to a person with `secrets.reveal` and (by default) a recent second
/// factor. Audited as `secret.revealed`.
#[utoipa::path(post, path = "/v1/secrets/{id}/reveal", tag = "secrets", security(("bearer" = [])),
    params(OrgScoped, ("id" = Uuid, Path)),
    request_body(content = Option<RevealRequest>, description = "Optional: none, `null` or `{}` reveals the current version"),
    responses(
        (status = 200, description = "The value", body = SecretValue),
        (status = 403, description = "`forbidden` or `step_up_required`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such secret or version here", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`conflict`: the secret has expired", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "`keys_shredded`: the organisation's keys were destroyed", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: the body is neither empty, `null`, `{}` nor `{\"version\": n}`", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn reveal(
    State(state): State<AppState>,
    OrgCaller(call): OrgCaller,
    Path(id): Path<Uuid>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    // The body is optional: none (or `null`) means the current version.
    let version = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        serde_json::from_slice::<Option<RevealRequest>>(&body)
            .map_err(|_| Error::invalid("version", "send {} or {\"version\": n}"))?
            .and_then(|r| r.version)
    };
    let value = state.kernel.secrets().reveal(&call, id, version).await?;
    value_response(&value, version)
}

/// For the deployment's own services: the value of a secret, for the person whose access
/// token is in `x-gatehouse-on-behalf-of` and who holds `secrets.use` in its organisation.
/// Audited as `secret.used` with the service proved by its secret (the secret file's name) and,
/// as `service_label`, what `x-gatehouse-service` says.
#[utoipa::path(post, path = "/internal/v1/secrets/{id}/use", tag = "internal",
    security(("service" = [])),
    params(
        ("id" = Uuid, Path),
        ("x-gatehouse-on-behalf-of" = String, Header, description = "The person's access token"),
        ("x-gatehouse-service" = Option<String>, Header, description = "The calling service's name"),
    ),
    responses(
        (status = 200, description = "The value", body = SecretValue),
        (status = 401, description = "Service authentication or the person's token failed", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The person lacks `secrets.use`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such secret in the person's organisation", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`conflict`: the secret has expired", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "`keys_shredded`: the organisation's keys were destroyed", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn use_secret(
    State(state): State<AppState>,
    OnBehalfOf { call, person }: OnBehalfOf,
    Path(id): Path<Uuid>,
) -> Result<Response, ApiError> {
    let value = state
        .kernel
        .secrets()
        .use_on_behalf(&call, &person, id)
        .await?;
    value_response(&value, None)
}

//! The app registry on the operator API (ASVS 9.2.4): register, list and remove the downstream
//! apps whose audience a client may ask a token for (`resource` on `POST /v1/auth/refresh`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use gatehouse_core::store::AppRecord;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::auth::OperatorCaller;
use crate::json::ApiJson;
use crate::problem::{ApiError, Problem};
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RegisterApp {
    /// 1 to 200 characters.
    #[schema(min_length = 1, max_length = 200)]
    name: String,
    /// The app's audience: an absolute URI without a fragment (`https://billing.example.com`,
    /// `urn:example:billing`), at most 255 characters, taken exactly as written. Tokens issued
    /// for the app carry it as `aud`; clients ask for it as `resource`.
    #[schema(min_length = 1, max_length = 255)]
    audience: String,
}

/// A registered app.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct AppView {
    id: Uuid,
    name: String,
    audience: String,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
}

impl From<AppRecord> for AppView {
    fn from(a: AppRecord) -> Self {
        Self {
            id: a.id,
            name: a.name,
            audience: a.audience,
            created_at: a.created_at,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct AppList {
    items: Vec<AppView>,
}

/// Registers a downstream app. Audited on the operators' chain (`app.registered`).
#[utoipa::path(post, path = "/admin/v1/apps", tag = "admin", security(("bearer" = [])),
    request_body = RegisterApp,
    responses(
        (status = 201, description = "Registered", body = AppView),
        (status = 403, description = "Not an operator token (`wrong_audience`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`conflict`: an app with this audience is registered", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: the name, or an audience that is not an absolute URI without a fragment, or is Gatehouse's own", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn register(
    State(state): State<AppState>,
    OperatorCaller(call): OperatorCaller,
    ApiJson(req): ApiJson<RegisterApp>,
) -> Result<Response, ApiError> {
    let app = state
        .kernel
        .apps()
        .register(&call, &req.name, &req.audience)
        .await?;
    Ok((StatusCode::CREATED, Json(AppView::from(app))).into_response())
}

/// Every registered app, oldest first.
#[utoipa::path(get, path = "/admin/v1/apps", tag = "admin", security(("bearer" = [])),
    responses(
        (status = 200, description = "The registry", body = AppList),
        (status = 403, description = "Not an operator token (`wrong_audience`)", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list(
    State(state): State<AppState>,
    OperatorCaller(call): OperatorCaller,
) -> Result<Json<AppList>, ApiError> {
    let apps = state.kernel.apps().list(&call).await?;
    Ok(Json(AppList {
        items: apps.into_iter().map(AppView::from).collect(),
    }))
}

/// Removes an app: a refresh asking for its audience is `invalid_target` from now on, and tokens
/// already issued for it are refused at verify and by its services (the app itself accepts them
/// until they expire). Audited (`app.removed`).
#[utoipa::path(delete, path = "/admin/v1/apps/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The app")),
    responses(
        (status = 204, description = "Removed"),
        (status = 403, description = "Not an operator token (`wrong_audience`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such app", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn remove(
    State(state): State<AppState>,
    OperatorCaller(call): OperatorCaller,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    state.kernel.apps().remove(&call, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

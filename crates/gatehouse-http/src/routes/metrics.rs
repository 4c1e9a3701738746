//! E3: the Prometheus metrics, at `/internal/v1/metrics` for a scraper holding a service secret,
//! and at `/metrics` on the operator's separate metrics listener (see [`crate::metrics_router`]).

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gatehouse_core::telemetry::metrics;

use crate::auth::ServiceProof;
use crate::problem::{ApiError, Problem};
use crate::state::AppState;

/// The process's metrics in the Prometheus text format (version 0.0.4). 404 when metrics are
/// switched off.
#[utoipa::path(get, path = "/internal/v1/metrics", tag = "internal",
    security(("service" = [])),
    responses(
        (status = 200, description = "The metrics", body = String, content_type = "text/plain; version=0.0.4"),
        (status = 401, description = "Missing or wrong `X-Service-Auth`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Metrics are switched off", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn internal(
    State(state): State<AppState>,
    _service: ServiceProof,
) -> Result<Response, ApiError> {
    scrape(&state).await
}

/// `/metrics` on the metrics listener: no authentication (the listener is the boundary).
pub(crate) async fn open(State(state): State<AppState>) -> Result<Response, ApiError> {
    scrape(&state).await
}

async fn scrape(state: &AppState) -> Result<Response, ApiError> {
    if !metrics::enabled() {
        return Err(gatehouse_core::Error::NotFound("metrics").into());
    }
    // The outbox depth costs one small query per scrape; a store that cannot answer shows as 0
    // here and as failing in readiness.
    let outbox = state
        .kernel
        .store()
        .mail_backlog()
        .await
        .map_or(0, |b| b.pending);
    let text = metrics::render(metrics::Snapshot {
        hash_queue_depth: state.kernel.passwords().pending(),
        mail_outbox_depth: outbox,
    });
    let mut res = (StatusCode::OK, text).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(metrics::CONTENT_TYPE),
    );
    Ok(res)
}

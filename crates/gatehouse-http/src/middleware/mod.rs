//! Middleware applied to every route and to the fallback, outermost first: the edge (request id,
//! access log, problem bodies for bare error statuses, security headers); CORS; timeout; body
//! limit.

pub(crate) mod cors;
pub(crate) mod problems;
pub(crate) mod rate_limit;
pub(crate) mod request_id;
pub(crate) mod security_headers;
pub(crate) mod traceparent;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use crate::settings::HttpSettings;
use crate::state::AppState;

pub(crate) fn apply(router: Router<AppState>, s: &HttpSettings) -> Router<AppState> {
    let mut r = router
        .layer(DefaultBodyLimit::max(s.body_limit_bytes))
        .layer(RequestBodyLimitLayer::new(s.body_limit_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            s.request_timeout,
        ));
    // With no origin configured there is no CORS layer, and so nothing to strip either.
    if let Some(cors) = cors::layer(&s.cors_origins) {
        r = r.layer(cors).layer(from_fn_with_state(
            s.cors_origins.clone(),
            cors::strip_for_disallowed_origins,
        ));
    }
    r.layer(from_fn_with_state(
        request_id::Sinks {
            access_log: s.access_log.clone(),
            spans: s.span_sink.clone(),
        },
        request_id::layer,
    ))
}

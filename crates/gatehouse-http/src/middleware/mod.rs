//! Middleware applied to every route and to the fallback, outermost first: the edge (request id,
//! body limit, timeout, problem bodies for bare error statuses, security headers, metrics and
//! the access log, in one layer: see `edge.rs`); then CORS, when origins are configured.

pub(crate) mod cors;
pub(crate) mod edge;
pub(crate) mod problems;
pub(crate) mod rate_limit;
pub(crate) mod request_id;
pub(crate) mod revocations;
pub(crate) mod security_headers;
pub(crate) mod traceparent;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;

use crate::settings::HttpSettings;

/// axum's extractors refuse bodies over 2 MiB unless told otherwise.
const AXUM_DEFAULT_BODY_LIMIT: usize = 2 * 1024 * 1024;

pub(crate) fn apply<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    s: &HttpSettings,
) -> Router<S> {
    let mut r = router;
    // The edge cuts bodies off at the configured limit; the extractors' own limit only needs
    // raising when the configured one is higher (one layer less on every request otherwise).
    if s.body_limit_bytes > AXUM_DEFAULT_BODY_LIMIT {
        r = r.layer(DefaultBodyLimit::max(s.body_limit_bytes));
    }
    // With no origin configured there is no CORS layer, and so nothing to strip either.
    if let Some(cors) = cors::layer(&s.cors_origins) {
        r = r.layer(cors).layer(from_fn_with_state(
            s.cors_origins.clone(),
            cors::strip_for_disallowed_origins,
        ));
    }
    r.layer(edge::EdgeLayer(Arc::new(edge::EdgeSettings {
        access_log: s.access_log.clone(),
        spans: s.span_sink.clone(),
        body_limit: s.body_limit_bytes,
        timeout: s.request_timeout,
        trusted_proxies: s.trusted_proxies.clone(),
    })))
}

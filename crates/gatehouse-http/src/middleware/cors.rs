//! C6: CORS for an explicit allow-list of origins. A request from any other origin gets no CORS
//! header at all, preflight included.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::Method;
use axum::http::header::{self, HeaderName};
use axum::middleware::Next;
use axum::response::Response;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::settings::CorsOrigins;

pub(crate) fn layer(origins: &CorsOrigins) -> Option<CorsLayer> {
    if origins.list().is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins.list().iter().cloned()))
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("x-organization-id"),
                HeaderName::from_static("traceparent"),
                // A cookie-mode browser app sends it with every change (see `auth::CSRF_HEADER`).
                HeaderName::from_static("x-csrf-token"),
            ])
            .expose_headers([
                HeaderName::from_static("x-request-id"),
                header::RETRY_AFTER,
                HeaderName::from_static("ratelimit"),
                HeaderName::from_static("ratelimit-policy"),
            ])
            .allow_credentials(true)
            .max_age(Duration::from_secs(600)),
    )
}

pub(crate) async fn strip_for_disallowed_origins(
    State(origins): State<CorsOrigins>,
    req: Request,
    next: Next,
) -> Response {
    let disallowed = req
        .headers()
        .get(header::ORIGIN)
        .is_some_and(|o| !origins.allows(o));
    let mut res = next.run(req).await;
    if disallowed {
        let names: Vec<HeaderName> = res
            .headers()
            .keys()
            .filter(|k| k.as_str().starts_with("access-control-"))
            .cloned()
            .collect();
        for name in names {
            res.headers_mut().remove(name);
        }
    }
    res
}

use axum::http::StatusCode;

use crate::problem::ApiError;

/// No route matched. A `CONNECT` (authority-form, as a proxy client sends it) names no path at
/// all: it is a method Gatehouse never serves, so it gets 405 like a `CONNECT` to a known path.
pub(crate) async fn not_found(method: axum::http::Method) -> ApiError {
    if method == axum::http::Method::CONNECT {
        ApiError::for_status(StatusCode::METHOD_NOT_ALLOWED)
    } else {
        ApiError::for_status(StatusCode::NOT_FOUND)
    }
}

/// What the surface filter needs: which paths this listener serves, and the service that answers
/// (and limits) a path that matches nothing.
#[derive(Clone)]
pub(crate) struct Hidden {
    pub(crate) surface: crate::Surface,
    pub(crate) unmatched: axum::routing::MethodRouter,
}

/// Hides the paths another listener owns (see `Surface`): they are answered by the unmatched
/// path's own service (the same 404, the same per-address limit), inside the same middleware
/// (request id, security headers, access line).
pub(crate) async fn surface_filter(
    axum::extract::State(Hidden { surface, unmatched }): axum::extract::State<Hidden>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let path = req.uri().path();
    let admin = path == "/admin" || path.starts_with("/admin/");
    let probe = path.starts_with("/health/");
    let hidden = match surface {
        crate::Surface::All => false,
        crate::Surface::Tenant => admin,
        crate::Surface::Admin => !(admin || probe),
    };
    if hidden {
        let Ok(res) = tower::ServiceExt::oneshot(unmatched, req).await;
        return res;
    }
    next.run(req).await
}

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

/// Hides the paths another listener owns (see `Surface`): they get the 404 an unknown path gets,
/// inside the same middleware (request id, security headers, access line).
pub(crate) async fn surface_filter(
    axum::extract::State(surface): axum::extract::State<crate::Surface>,
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
        return axum::response::IntoResponse::into_response(ApiError::for_status(
            StatusCode::NOT_FOUND,
        ));
    }
    next.run(req).await
}

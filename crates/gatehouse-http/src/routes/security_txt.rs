//! `/.well-known/security.txt` (RFC 9116), rendered from configuration at start.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::problem::{ApiError, Problem};
use crate::state::AppState;

/// How to report a vulnerability in this deployment (RFC 9116). 404 when not configured.
#[utoipa::path(get, path = "/.well-known/security.txt", tag = "health",
    responses(
        (status = 200, description = "The file", body = String, content_type = "text/plain; charset=utf-8"),
        (status = 404, description = "Not configured", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn serve(State(state): State<AppState>) -> Result<Response, ApiError> {
    let Some(text) = &state.security_txt else {
        return Err(gatehouse_core::Error::NotFound("security.txt").into());
    };
    let mut res = (StatusCode::OK, text.to_string()).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=86400"),
    );
    res.extensions_mut()
        .insert(crate::middleware::security_headers::PublicDocument);
    Ok(res)
}

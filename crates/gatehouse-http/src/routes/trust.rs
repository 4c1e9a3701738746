//! The public trust page (H3): `GET /trust` (HTML) and `GET /trust.md` (markdown), when
//! `[trust_page]` turns it on; otherwise both are the 404 any unknown path gets. The report
//! behind them is reused for the configured period (see `crate::trust`).

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::problem::{ApiError, Problem};
use crate::state::AppState;
use crate::trust;

/// Which rendering a request asked for.
#[derive(Clone, Copy)]
enum Form {
    Html,
    Markdown,
}

async fn render(state: &AppState, form: Form) -> Result<Response, ApiError> {
    let Some(page) = &state.trust_page else {
        return Err(ApiError::for_status(StatusCode::NOT_FOUND));
    };
    let posture = super::posture::registry(state)?;
    let Some(report) = page.report(posture, state.kernel.clock()).await else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "posture_unavailable",
            "the posture report could not be made; retry shortly",
        ));
    };
    let declared = &page.settings.declarations;
    let cache_secs = page.settings.cache.as_secs();
    let (body, content_type) = match form {
        Form::Html => (
            trust::html_page(&report, declared, cache_secs),
            "text/html; charset=utf-8",
        ),
        Form::Markdown => (
            trust::markdown_page(&report, declared, cache_secs),
            "text/markdown; charset=utf-8",
        ),
    };
    let mut res = (StatusCode::OK, body).into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if matches!(form, Form::Html) {
        res.extensions_mut()
            .insert(crate::middleware::security_headers::PagePolicy(
                trust::html_policy(),
            ));
    }
    Ok(res)
}

/// Every control's status in plain language, beside the operator's declarations (which are
/// shown as declarations, not as checked facts). Static HTML without script; 404 unless
/// `[trust_page] enabled = true`.
#[utoipa::path(get, path = "/trust", tag = "trust",
    responses(
        (status = 200, description = "The page", body = String, content_type = "text/html; charset=utf-8"),
        (status = 404, description = "`not_found`: the trust page is not enabled", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`posture_unavailable`: the server is still starting; `Retry-After` given", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn html(State(state): State<AppState>) -> Result<Response, ApiError> {
    render(&state, Form::Html).await
}

/// The trust page as markdown: the same rows and declarations.
#[utoipa::path(get, path = "/trust.md", tag = "trust",
    responses(
        (status = 200, description = "The page as CommonMark", body = String, content_type = "text/markdown; charset=utf-8"),
        (status = 404, description = "`not_found`: the trust page is not enabled", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`posture_unavailable`: the server is still starting; `Retry-After` given", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn markdown(State(state): State<AppState>) -> Result<Response, ApiError> {
    render(&state, Form::Markdown).await
}

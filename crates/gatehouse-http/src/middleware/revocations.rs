//! With the Redis fan-out on, a request that may have revoked something (any method but `GET`,
//! `HEAD` and `OPTIONS`) answers only once its revocations are published (at most two seconds):
//! when the caller sees the answer, every other instance has been sent the message, so the next
//! request to any of them is refused, not served from a stale cache.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::state::AppState;

pub(crate) async fn published_before_answer(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let safe = matches!(
        *request.method(),
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    );
    let response = next.run(request).await;
    if !safe {
        state.kernel.flush_revocations().await;
    }
    response
}

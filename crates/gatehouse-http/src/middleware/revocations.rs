//! With the Redis fan-out on, a request that published a revocation answers only once the
//! publish has been sent to Redis (at most two seconds): by then Redis has passed it to every
//! instance subscribed at that moment, so the caller's next request elsewhere is, in all but a
//! race with the receiving instance's subscriber task, refused rather than served from a stale
//! cache. A failed publish, or an instance whose subscription is reconnecting, falls back to the
//! caches' age bounds. Requests that published nothing never wait.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::state::AppState;

pub(crate) async fn published_before_answer(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let (response, published) = gatehouse_core::identity::noting_publishes(next.run(request)).await;
    if published {
        state.kernel.flush_revocations().await;
    }
    response
}

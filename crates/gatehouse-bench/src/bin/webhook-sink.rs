//! A webhook receiver for `bench/links.py`: answers every POST with 204 and counts them;
//! `GET /count` answers the count and the instants (unix nanoseconds) of the first and the latest
//! request, so the harness measures delivery throughput from the receiver's side.
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};

#[derive(Default)]
struct Seen {
    count: AtomicU64,
    first: AtomicU64,
    last: AtomicU64,
}

fn nanos() -> u64 {
    // The wall clock is what the harness compares with; this binary has no injected clock.
    #[allow(clippy::disallowed_methods)]
    let now = std::time::SystemTime::now();
    now.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8090".to_owned());
    let seen = Arc::new(Seen::default());
    let app = Router::new()
        .route(
            "/hook",
            post(
                |State(s): State<Arc<Seen>>, _body: axum::body::Bytes| async move {
                    let t = nanos();
                    let _ = s
                        .first
                        .compare_exchange(0, t, Ordering::Relaxed, Ordering::Relaxed);
                    s.last.fetch_max(t, Ordering::Relaxed);
                    s.count.fetch_add(1, Ordering::Relaxed);
                    StatusCode::NO_CONTENT
                },
            ),
        )
        .route(
            "/count",
            get(|State(s): State<Arc<Seen>>| async move {
                format!(
                    "{} {} {}",
                    s.count.load(Ordering::Relaxed),
                    s.first.load(Ordering::Relaxed),
                    s.last.load(Ordering::Relaxed)
                )
            }),
        )
        .with_state(seen);
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, app).await
}

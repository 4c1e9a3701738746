//! The bare baseline for `bench/run.py`: axum on tokio's default runtime answering
//! `GET /health/live` with the same JSON body as Gatehouse, and nothing else: no middleware, no
//! store, no logging. Gatehouse's figures are reported as a ratio to this one, measured in the
//! same run on the same machine.
#![forbid(unsafe_code)]

use axum::Router;
use axum::routing::get;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8089".to_owned());
    let app = Router::new().route(
        "/health/live",
        get(|| async { axum::Json(serde_json_free_body()) }),
    );
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, app).await
}

/// The same bytes Gatehouse sends, built without pulling serde derive into the baseline.
fn serde_json_free_body() -> std::collections::BTreeMap<&'static str, &'static str> {
    std::collections::BTreeMap::from([("status", "ok")])
}

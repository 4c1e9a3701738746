//! Request ids and the access log (E2). The id is the trace id of a valid incoming W3C
//! `traceparent`, or a fresh random one; it is returned as `x-request-id`, put in problem bodies,
//! and carried by the span that every log line of the request is written in.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use super::traceparent;

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being handled, when called inside one.
pub(crate) fn current() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

fn fresh_id() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_ok() {
        return bytes.iter().map(|b| format!("{b:02x}")).collect();
    }
    // Ids only correlate logs; without randomness a process-local counter still does that.
    static FALLBACK: AtomicU64 = AtomicU64::new(1);
    format!("{:032x}", FALLBACK.fetch_add(1, Ordering::Relaxed))
}

pub(crate) async fn layer(req: Request, next: Next) -> Response {
    let incoming = req
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(traceparent::parse);
    let id = incoming
        .as_ref()
        .map_or_else(fresh_id, |t| t.trace_id.clone());
    let parent = incoming.map(|t| t.parent_id);
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        parent_span_id = parent.as_deref().unwrap_or(""),
        method = %req.method(),
        route = %route,
        org_id = tracing::field::Empty,
        user_id = tracing::field::Empty,
    );
    let started = Instant::now();
    let mut res = REQUEST_ID
        .scope(id.clone(), next.run(req))
        .instrument(span.clone())
        .await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert("x-request-id", v);
    }
    let status = res.status().as_u16();
    let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    span.in_scope(|| {
        if status >= 500 {
            tracing::error!(status, latency_us = micros, "request completed");
        } else {
            tracing::info!(status, latency_us = micros, "request completed");
        }
    });
    res
}

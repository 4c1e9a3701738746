//! Request ids, the access log (E2) and the request metrics (E3). The id is the trace id of a
//! valid incoming W3C `traceparent`, or a fresh random one; it is returned as `x-request-id`, put
//! in problem bodies, and kept with the method and route in the task-local
//! [`RequestInfo`](gatehouse_core::telemetry::RequestInfo) that the log formatter reads, so every
//! log line of the request carries them, and the caller and stage timings once known. (A `tracing` span per request did the
//! same at about 15 % of verify throughput: the formatter serialised its fields for every request,
//! logged inside it or not.)

use std::hash::{BuildHasher, RandomState};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

use gatehouse_core::telemetry::metrics;

use super::{problems, security_headers, traceparent};
use crate::settings::{AccessLine, AccessLog};

pub use gatehouse_core::telemetry::RequestInfo;

/// The id of the request being handled, when called inside one.
pub(crate) fn current() -> Option<String> {
    gatehouse_core::telemetry::current().map(|r| r.request_id.clone())
}

/// The request being handled by the calling task, if any (for log formatters).
pub fn current_request() -> Option<Arc<RequestInfo>> {
    gatehouse_core::telemetry::current()
}

/// A fresh 128-bit id: a process-wide counter through SipHash under keys the OS seeded once.
/// Ids are not secrets, so they need to be unique and well spread (W3C trace ids), not
/// unguessable; this costs no system call per request, unlike asking the OS for randomness.
fn fresh_id() -> String {
    static KEYS: OnceLock<RandomState> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let keys = KEYS.get_or_init(RandomState::new);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let high = keys.hash_one((n, 0u8));
    let low = keys.hash_one((n, 1u8));
    format!("{high:016x}{low:016x}")
}

/// The edge of every request: request id and access log around the problem-body and
/// security-header steps. One middleware rather than three keeps the per-request cost down.
/// Where finished requests are reported besides the metrics.
#[derive(Debug, Clone)]
pub(crate) struct Sinks {
    pub access_log: Option<Arc<dyn AccessLog>>,
    pub spans: Option<Arc<dyn AccessLog>>,
}

pub(crate) async fn layer(
    State(Sinks { access_log, spans }): State<Sinks>,
    req: Request,
    next: Next,
) -> Response {
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
    let method = req.method().clone();
    let info = Arc::new(RequestInfo {
        request_id: id.clone(),
        parent_span_id: parent,
        method: method.as_str().to_owned(),
        route: route.clone(),
        ..RequestInfo::default()
    });
    let started = Instant::now();
    let res = gatehouse_core::telemetry::scope(Arc::clone(&info), async move {
        let res = next.run(req).await;
        problems::ensure_problem_body(res)
    })
    .await;
    let mut res = res;
    security_headers::apply(res.headers_mut());
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert("x-request-id", v);
    }
    let elapsed = started.elapsed();
    let organization = info.organization.get().copied();
    metrics::request(
        &route,
        method.as_str(),
        res.status().as_str(),
        elapsed,
        organization,
    );
    let status = res.status().as_u16();
    let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    // Written after the task-local scope ends: the access line names its fields itself.
    let line = AccessLine {
        request_id: &id,
        method: method.as_str(),
        route: &route,
        status,
        latency_us: micros,
        info: &info,
    };
    if let Some(spans) = &spans {
        spans.record(&line);
    }
    if let Some(log) = &access_log {
        log.record(&line);
    } else if status >= 500 {
        tracing::error!(request_id = %id, method = %method, route = %route, status, latency_us = micros, organization_id = ?organization, user_id = ?info.user.get(), stages = ?info.stages.nonzero(), "request completed");
    } else {
        tracing::info!(request_id = %id, method = %method, route = %route, status, latency_us = micros, organization_id = ?organization, user_id = ?info.user.get(), stages = ?info.stages.nonzero(), "request completed");
    }
    res
}

#[cfg(test)]
mod tests {
    use super::fresh_id;

    #[test]
    fn fresh_ids_are_32_hex_and_distinct() {
        let ids: std::collections::HashSet<String> = (0..10_000).map(|_| fresh_id()).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(
            ids.iter()
                .all(|i| i.len() == 32 && i.bytes().all(|b| b.is_ascii_hexdigit()))
        );
    }
}

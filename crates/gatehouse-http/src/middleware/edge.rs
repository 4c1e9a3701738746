//! The edge of every request, as one tower layer: request id and task-local request info, the
//! body limit, the request timeout, problem bodies for bare error statuses, security headers,
//! `x-request-id`, request metrics, the access line and the span.
//!
//! Why one hand-written layer rather than `from_fn` plus tower-http's timeout and limit layers:
//! axum wraps every route in a boxed, cloned service per layer, so each layer cost every request
//! a clone, an allocation and a boxed future. Together they were about a quarter of the
//! instructions `/health/live` took (docs/BENCHMARKS.md, session 5).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, HttpBody as _};
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use gatehouse_core::telemetry::{self, RequestInfo, metrics};
use tower::{Layer, Service};

use super::{problems, request_id, security_headers, traceparent};
use crate::settings::{AccessLine, AccessLog};

/// What the edge needs, shared by every route's copy of the layer.
#[derive(Debug)]
pub(crate) struct EdgeSettings {
    pub access_log: Option<Arc<dyn AccessLog>>,
    pub spans: Option<Arc<dyn AccessLog>>,
    pub body_limit: usize,
    pub timeout: Duration,
    /// For the client address every access line carries (`extract::client_ip`).
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

#[derive(Debug, Clone)]
pub(crate) struct EdgeLayer(pub Arc<EdgeSettings>);

impl<S> Layer<S> for EdgeLayer {
    type Service = Edge<S>;

    fn layer(&self, inner: S) -> Edge<S> {
        Edge {
            inner,
            settings: Arc::clone(&self.0),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Edge<S> {
    inner: S,
    settings: Arc<EdgeSettings>,
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

impl<S> Service<Request> for Edge<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let started = Instant::now();
        let info = Arc::new(request_info(&req, &self.settings.trusted_proxies));
        let settings = Arc::clone(&self.settings);
        let limit = settings.body_limit;
        // A declared length over the limit is refused before the handler runs; a body without
        // one is cut off at the limit as it is read (the extractors answer 413).
        let inner = if req.body().size_hint().lower() > u64::try_from(limit).unwrap_or(u64::MAX) {
            None
        } else if req.body().is_end_stream() {
            Some(self.inner.call(req))
        } else {
            Some(
                self.inner
                    .call(req.map(|b| Body::new(http_body_util::Limited::new(b, limit)))),
            )
        };
        let timeout = settings.timeout;
        Box::pin(async move {
            let res = telemetry::scope(Arc::clone(&info), async move {
                let res = match inner {
                    None => bare(StatusCode::PAYLOAD_TOO_LARGE),
                    Some(fut) => match tokio::time::timeout(timeout, fut).await {
                        Ok(Ok(res)) => res,
                        Ok(Err(never)) => match never {},
                        Err(_) => bare(StatusCode::SERVICE_UNAVAILABLE),
                    },
                };
                problems::ensure_problem_body(res)
            })
            .await;
            Ok(finish(&settings, &info, started, res))
        })
    }
}

/// A status with no body yet; `ensure_problem_body` gives it its problem document.
fn bare(status: StatusCode) -> Response {
    let mut res = Response::new(Body::empty());
    *res.status_mut() = status;
    res
}

/// The request id is always fresh; a valid incoming `traceparent` gives the trace id and parent
/// span beside it.
fn request_info(req: &Request, trusted_proxies: &[std::net::IpAddr]) -> RequestInfo {
    let incoming = req
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(traceparent::parse);
    let (trace_id, parent_span_id) = match incoming {
        Some(t) => (Some(t.trace_id), Some(t.parent_id)),
        None => (None, None),
    };
    let request_id = request_id::fresh_id();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str());
    RequestInfo {
        request_id,
        trace_id,
        parent_span_id,
        method: req.method().as_str().to_owned(),
        route: route.to_owned(),
        client_ip: client_ip(req, trusted_proxies),
        ..RequestInfo::default()
    }
}

/// The client address (the trusted-proxy rule of `extract::client_ip`). The peer address is
/// only looked up when it is there (a connection through `conn.rs` always has it).
fn client_ip(req: &Request, trusted_proxies: &[std::net::IpAddr]) -> Option<std::net::IpAddr> {
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    if trusted_proxies.is_empty() {
        return peer.map(|p| p.to_canonical());
    }
    let forwarded = crate::extract::forwarded_for(req.headers());
    crate::extract::client_ip(peer, forwarded.as_deref(), trusted_proxies)
}

fn finish(
    settings: &EdgeSettings,
    info: &RequestInfo,
    started: Instant,
    mut res: Response,
) -> Response {
    let public_document = res
        .extensions()
        .get::<security_headers::PublicDocument>()
        .is_some();
    let policy = res
        .extensions_mut()
        .remove::<security_headers::PagePolicy>()
        .map(|p| p.0);
    let headers = res.headers_mut();
    headers.reserve(security_headers::COUNT + 1);
    security_headers::apply(headers, public_document, policy);
    if let Ok(v) = HeaderValue::from_str(&info.request_id) {
        headers.insert(REQUEST_ID, v);
    }
    let elapsed = started.elapsed();
    let organization = info.organization.get().copied();
    metrics::request(
        &info.route,
        &info.method,
        res.status().as_str(),
        elapsed,
        organization,
    );
    let status = res.status().as_u16();
    let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    // Written after the task-local scope ends: the access line names its fields itself.
    let line = AccessLine {
        request_id: &info.request_id,
        method: &info.method,
        route: &info.route,
        status,
        latency_us: micros,
        info,
    };
    if let Some(spans) = &settings.spans {
        spans.record(&line);
    }
    if let Some(log) = &settings.access_log {
        log.record(&line);
    } else if status >= 500 {
        tracing::error!(request_id = %info.request_id, method = %info.method, route = %info.route, status, latency_us = micros, client_ip = %info.client_ip.map_or_else(String::new, |i| i.to_string()), organization_id = ?organization, user_id = ?info.user.get(), stages = ?info.stages.nonzero(), "request completed");
    } else {
        tracing::info!(request_id = %info.request_id, method = %info.method, route = %info.route, status, latency_us = micros, client_ip = %info.client_ip.map_or_else(String::new, |i| i.to_string()), organization_id = ?organization, user_id = ?info.user.get(), stages = ?info.stages.nonzero(), "request completed");
    }
    res
}

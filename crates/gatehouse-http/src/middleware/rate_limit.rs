//! Rate limiting at the edge (C5). Every matched route but the probes is limited per client
//! address and endpoint class here; once a caller is authenticated, the extractors add the
//! per-user or per-key (plan) decision through [`limit_principal`]. The response carries the
//! `RateLimit-Policy` and `RateLimit` fields of the IETF httpapi draft
//! (draft-ietf-httpapi-ratelimit-headers) for the most constraining decision, and a refusal is
//! 429 with `Retry-After`.

use std::sync::{Arc, Mutex};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use gatehouse_core::identity::Principal;
use gatehouse_core::limits::{Decision, EndpointClass, NamedQuota, RateLimitStore, RatePolicy};

use crate::extract::client_ip;
use crate::problem::ApiError;
use crate::state::AppState;

/// The limiter and its policy, shared by the middleware and the extractors.
#[derive(Debug)]
pub struct RateLimiting {
    pub store: Arc<dyn RateLimitStore>,
    pub policy: RatePolicy,
}

/// The decisions taken for one request, most constraining reported.
#[derive(Debug, Clone, Default)]
pub(crate) struct Decisions(Arc<Mutex<Vec<(NamedQuota, Decision)>>>);

fn class_of(method: &Method, route: &str) -> Option<EndpointClass> {
    if route.starts_with("/health/")
        || route == "/openapi.json"
        || route.starts_with("/.well-known/")
    {
        return None;
    }
    if route.starts_with("/internal/") {
        // Services authenticate with a shared secret; their own quotas are theirs to set.
        return None;
    }
    let auth = matches!(
        route,
        "/v1/auth/signup"
            | "/v1/auth/login"
            | "/v1/auth/refresh"
            | "/v1/invitations/accept"
            | "/admin/v1/auth/login"
    );
    Some(if auth {
        EndpointClass::Auth
    } else if route.starts_with("/admin/") {
        EndpointClass::Admin
    } else if matches!(*method, Method::GET | Method::HEAD) {
        EndpointClass::Read
    } else {
        EndpointClass::Write
    })
}

fn now_us(state: &AppState) -> i64 {
    gatehouse_core::clock::unix_micros(state.kernel.clock().now())
}

async fn decide(
    limits: &RateLimiting,
    key: &str,
    named: NamedQuota,
    now: i64,
    decisions: Option<&Decisions>,
) -> Result<(), ApiError> {
    // The store never fails a request: the Redis store falls back in-process by itself; an
    // error here (a bug) lets the request through rather than locking everyone out.
    let Ok(d) = limits.store.decide(key, named.quota, now).await else {
        tracing::warn!(key, "rate-limit decision failed; request let through");
        return Ok(());
    };
    if let Some(all) = decisions
        && let Ok(mut v) = all.0.lock()
    {
        v.push((named, d));
    }
    if d.allowed {
        Ok(())
    } else {
        let secs = (d.retry_after_us + 999_999) / 1_000_000;
        Err(gatehouse_core::Error::RateLimited {
            retry_after_secs: u32::try_from(secs.max(1)).unwrap_or(u32::MAX),
        }
        .into())
    }
}

/// The per-address limit, and the headers for whatever was decided.
pub(crate) async fn layer(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let Some(limits) = state.rate_limits.as_ref() else {
        return next.run(req).await;
    };
    let class = req
        .extensions()
        .get::<MatchedPath>()
        .and_then(|p| class_of(req.method(), p.as_str()));
    let Some(class) = class else {
        return next.run(req).await;
    };
    let limits = Arc::clone(limits);
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let forwarded = req
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok());
    let ip = client_ip(peer, forwarded, &state.trusted_proxies)
        .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
    let decisions = Decisions::default();
    req.extensions_mut().insert(decisions.clone());
    let mut res = match limits.policy.for_ip(class) {
        Some(named) => {
            let key = format!("ip:{ip}:{}", class.as_str());
            match decide(&limits, &key, named, now_us(&state), Some(&decisions)).await {
                Ok(()) => next.run(req).await,
                Err(refused) => refused.into_response(),
            }
        }
        None => next.run(req).await,
    };
    add_headers(&mut res, &decisions);
    res
}

fn add_headers(res: &mut Response, decisions: &Decisions) {
    let Ok(all) = decisions.0.lock() else {
        return;
    };
    // The most constraining: a refusal, else the fewest remaining.
    let Some((named, d)) = all
        .iter()
        .min_by_key(|(_, d)| (d.allowed, d.remaining))
        .cloned()
    else {
        return;
    };
    let window = named.quota.window_us / 1_000_000;
    let reset = (d.reset_us.max(0) + 999_999) / 1_000_000;
    let policy = format!("\"{}\";q={};w={window}", named.name, named.quota.limit);
    let current = format!("\"{}\";r={};t={reset}", named.name, d.remaining);
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&policy) {
        h.insert("ratelimit-policy", v);
    }
    if let Ok(v) = HeaderValue::from_str(&current) {
        h.insert("ratelimit", v);
    }
}

/// The per-user or per-API-key decision, taken by the authentication extractors. Operators are
/// not limited here (their API has its own per-address class).
pub(crate) async fn limit_principal(
    state: &AppState,
    parts: &axum::http::request::Parts,
    principal: &Principal,
) -> Result<(), ApiError> {
    let Some(limits) = state.rate_limits.as_ref() else {
        return Ok(());
    };
    let decisions = parts.extensions.get::<Decisions>();
    let (key, named) = if principal.api_key_permissions.is_some() {
        let Some(org) = principal.org else {
            return Ok(());
        };
        (
            format!("key:{}", principal.subject),
            limits.policy.for_api_key(org, principal.api_key_rate_limit),
        )
    } else if principal.tier == gatehouse_core::store::Tier::Operator {
        return Ok(());
    } else {
        (
            format!("user:{}", principal.subject),
            limits.policy.for_user(),
        )
    };
    decide(limits, &key, named, now_us(state), decisions).await
}

//! Rate limiting at the edge (C5). Every matched route but the probes is limited per client
//! address and endpoint class here; once a caller is authenticated, the extractors add the
//! per-user or per-key (plan) decision through [`limit_principal`]. The response carries the
//! `RateLimit-Policy` and `RateLimit` fields of the IETF httpapi draft
//! (draft-ietf-httpapi-ratelimit-headers) for the most constraining decision, and a refusal is
//! 429 with `Retry-After`.

use std::sync::{Arc, Mutex};

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use gatehouse_core::identity::Principal;
use gatehouse_core::limits::{
    Decision, EndpointClass, NamedQuota, RateLimitStore, RatePolicy, address_subject,
};

use crate::extract::client_ip;
use crate::problem::ApiError;
use crate::route_facts::RouteFacts;
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

fn now_us(state: &AppState) -> i64 {
    gatehouse_core::clock::unix_micros(state.kernel.clock().now())
}

async fn decide(
    limits: &RateLimiting,
    key: &str,
    named: NamedQuota,
    now: i64,
    decisions: Option<&Decisions>,
    fail_closed: bool,
) -> Result<(), ApiError> {
    // The Redis store falls back in-process by itself, so an error here means no decision
    // could be taken at all. The auth class (sign-in, second step, password reset, operator
    // sign-in, ...) is refused then (ASVS 16.5.3): a guesser must not gain from a limiter
    // that is down. Every other class is let through rather than locking everyone out.
    let d = match limits.store.decide(key, named.quota, now).await {
        Ok(d) => d,
        Err(e) if fail_closed => {
            tracing::error!(error = %e, "rate-limit decision failed on an auth route; request refused");
            gatehouse_core::telemetry::metrics::error("rate_limits");
            return Err(gatehouse_core::Error::DependencyUnavailable(
                "the rate limiter is unavailable; try again shortly",
            )
            .into());
        }
        Err(e) => {
            tracing::warn!(error = %e, "rate-limit decision failed; request let through");
            return Ok(());
        }
    };
    if let Some(all) = decisions
        && let Ok(mut v) = all.0.lock()
    {
        v.push((named, d));
    }
    if d.allowed {
        Ok(())
    } else {
        // The key's prefix (`ip`, `user`, `key`) names the limit; it never carries the subject.
        gatehouse_core::telemetry::metrics::rate_limit_refused(
            key.split(':').next().unwrap_or("other"),
        );
        let secs = d.retry_after_us.saturating_add(999_999) / 1_000_000;
        Err(gatehouse_core::Error::RateLimited {
            retry_after_secs: u32::try_from(secs.max(1)).unwrap_or(u32::MAX),
        }
        .into())
    }
}

/// The per-address limit as a tower layer: requests that are not limited (probes, JWKS,
/// OpenAPI, the service API) go straight to the route with no extra allocation; the rest get the
/// per-address decision and, on the way out, the headers for whatever was decided.
#[derive(Debug, Clone)]
pub(crate) struct RateLimitLayer {
    pub(crate) state: AppState,
    /// Each route's class, as declared beside the route.
    pub(crate) facts: Arc<RouteFacts>,
    /// Set on the fallback's layer: the request matched no route, and counts as a read (GET,
    /// HEAD) or a write (anything else).
    pub(crate) unmatched: bool,
}

impl<S> tower::Layer<S> for RateLimitLayer {
    type Service = RateLimitService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimitService {
            inner,
            state: self.state.clone(),
            facts: Arc::clone(&self.facts),
            unmatched: self.unmatched,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct RateLimitService<S> {
    inner: S,
    state: AppState,
    facts: Arc<RouteFacts>,
    unmatched: bool,
}

type Boxed = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Response, std::convert::Infallible>> + Send>,
>;

impl<S> tower::Service<Request> for RateLimitService<S>
where
    S: tower::Service<Request, Response = Response, Error = std::convert::Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = futures_util::future::Either<S::Future, Boxed>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let class = if self.unmatched {
            Some(RouteFacts::unmatched_class(req.method()))
        } else {
            req.extensions()
                .get::<MatchedPath>()
                .and_then(|p| self.facts.class(req.method(), p.as_str()))
        };
        match (self.state.rate_limits.clone(), class) {
            (Some(limits), Some(class)) => {
                // The ready inner service goes with this request; a fresh clone stays.
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                let state = self.state.clone();
                futures_util::future::Either::Right(Box::pin(limited(
                    state, limits, class, req, inner,
                )))
            }
            _ => futures_util::future::Either::Left(self.inner.call(req)),
        }
    }
}

async fn limited<S>(
    state: AppState,
    limits: Arc<RateLimiting>,
    class: EndpointClass,
    mut req: Request,
    mut inner: S,
) -> Result<Response, std::convert::Infallible>
where
    S: tower::Service<Request, Response = Response, Error = std::convert::Infallible>,
{
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let forwarded = crate::extract::forwarded_for(req.headers());
    let ip = client_ip(peer, forwarded.as_deref(), &state.trusted_proxies)
        .map_or_else(|| "unknown".to_owned(), address_subject);
    let decisions = Decisions::default();
    req.extensions_mut().insert(decisions.clone());
    let mut res = match limits.policy.for_ip(class) {
        Some(named) => {
            let key = format!("ip:{ip}:{}", class.as_str());
            let fail_closed = class == EndpointClass::Auth;
            match decide(
                &limits,
                &key,
                named,
                now_us(&state),
                Some(&decisions),
                fail_closed,
            )
            .await
            {
                Ok(()) => inner.call(req).await?,
                Err(refused) => refused.into_response(),
            }
        }
        None => inner.call(req).await?,
    };
    add_headers(&mut res, &decisions);
    Ok(res)
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
    let reset = d.reset_us.max(0).saturating_add(999_999) / 1_000_000;
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
    decide(limits, &key, named, now_us(state), decisions, false).await
}

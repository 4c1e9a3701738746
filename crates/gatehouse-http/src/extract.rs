//! Extractors: what handlers take from a request besides its body.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::USER_AGENT;
use axum::http::request::Parts;
use gatehouse_core::RequestContext;

use crate::middleware::request_id;

/// The request id, peer IP and user agent, for audit events. The peer is the TCP peer; trusting
/// `X-Forwarded-For` from configured proxies arrives with the rate-limiting work.
#[derive(Debug, Clone)]
pub struct RequestMeta(pub RequestContext);

const MAX_USER_AGENT: usize = 512;

impl<S: Send + Sync> FromRequestParts<S> for RequestMeta {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip().to_string());
        let user_agent = parts
            .headers
            .get(USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.chars().take(MAX_USER_AGENT).collect());
        Ok(Self(RequestContext {
            request_id: request_id::current(),
            ip,
            user_agent,
        }))
    }
}

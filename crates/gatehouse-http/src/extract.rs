//! Extractors: what handlers take from a request besides its body.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::USER_AGENT;
use axum::http::request::Parts;
use gatehouse_core::RequestContext;

use crate::middleware::request_id;
use crate::state::AppState;

/// The request id, client IP and user agent, for audit events and per-address limits. The client
/// IP is the TCP peer, unless the peer is a configured trusted proxy: then it is the nearest
/// address in `X-Forwarded-For` that is not itself a trusted proxy. `X-Forwarded-For` from any
/// other peer is ignored (anyone can send it).
#[derive(Debug, Clone)]
pub struct RequestMeta(pub RequestContext);

const MAX_USER_AGENT: usize = 512;

/// The client address for a request from `peer` carrying `forwarded_for`.
pub(crate) fn client_ip(
    peer: Option<IpAddr>,
    forwarded_for: Option<&str>,
    trusted: &[IpAddr],
) -> Option<IpAddr> {
    // An IPv4 client on a dual-stack socket appears as ::ffff:a.b.c.d: compare as IPv4.
    let peer = peer?.to_canonical();
    if !trusted.contains(&peer) {
        return Some(peer);
    }
    let Some(chain) = forwarded_for else {
        return Some(peer);
    };
    // Right to left: the rightmost entries were added by our own proxies.
    for hop in chain.rsplit(',') {
        match hop.trim().parse::<IpAddr>().map(|ip| ip.to_canonical()) {
            Ok(ip) if trusted.contains(&ip) => {}
            Ok(ip) => return Some(ip),
            // A malformed entry: nothing to its left can be trusted either.
            Err(_) => return Some(peer),
        }
    }
    Some(peer)
}

/// Every `X-Forwarded-For` line, in order, as one list (a proxy may add its own line rather than
/// append to the client's; reading only the first would believe the client).
pub(crate) fn forwarded_for(headers: &axum::http::HeaderMap) -> Option<String> {
    let lines: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    (!lines.is_empty()).then(|| lines.join(","))
}

/// The client address of a request (the trusted-proxy rule above), as text.
pub(crate) fn client_address(parts: &Parts, state: &AppState) -> Option<String> {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    let forwarded = forwarded_for(&parts.headers);
    client_ip(peer, forwarded.as_deref(), &state.trusted_proxies).map(|ip| ip.to_string())
}

/// A request context without the user agent, for recording a security event from an extractor
/// that holds only a shared borrow of the request.
pub(crate) fn security_context(parts: &Parts, state: &AppState) -> RequestContext {
    RequestContext {
        request_id: request_id::current(),
        ip: client_address(parts, state),
        user_agent: None,
    }
}

impl FromRequestParts<AppState> for RequestMeta {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let ip = client_address(parts, state);
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

#[cfg(test)]
mod tests {
    use super::client_ip;
    use std::net::IpAddr;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let proxy = ip("10.0.0.1");
        let trusted = [proxy];
        // Untrusted peer: the header is ignored.
        assert_eq!(
            client_ip(Some(ip("203.0.113.9")), Some("1.2.3.4"), &trusted),
            Some(ip("203.0.113.9"))
        );
        // Trusted peer: the nearest untrusted hop.
        assert_eq!(
            client_ip(Some(proxy), Some("1.2.3.4, 198.51.100.7"), &trusted),
            Some(ip("198.51.100.7"))
        );
        assert_eq!(
            client_ip(Some(proxy), Some("198.51.100.7, 10.0.0.1"), &trusted),
            Some(ip("198.51.100.7"))
        );
        // Garbage stops the walk at the proxy itself.
        assert_eq!(
            client_ip(Some(proxy), Some("1.2.3.4, nonsense"), &trusted),
            Some(proxy)
        );
        assert_eq!(client_ip(Some(proxy), None, &trusted), Some(proxy));
        // A mapped IPv4 peer is the IPv4 proxy.
        assert_eq!(
            client_ip(Some(ip("::ffff:10.0.0.1")), Some("1.2.3.4"), &trusted),
            Some(ip("1.2.3.4"))
        );
    }
}

//! H1: the security headers every response carries, errors and 404s included.

use axum::http::header::{self, HeaderName};
use axum::http::{HeaderMap, HeaderValue};

/// How many headers [`apply`] sets.
pub(crate) const COUNT: usize = 9;

// Built at compile time: `HeaderValue::from_static` checks every byte when it runs, which cost
// more than the rest of the edge together when it ran per response.
const HEADERS: [(HeaderName, HeaderValue); COUNT] = [
    (
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000; includeSubDomains"),
    ),
    (
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        ),
    ),
    (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
    (
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    ),
    (
        header::REFERRER_POLICY,
        HeaderValue::from_static("strict-origin-when-cross-origin"),
    ),
    (
        HeaderName::from_static("permissions-policy"),
        HeaderValue::from_static("camera=(), microphone=(), geolocation=(), payment=(), usb=()"),
    ),
    (
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    ),
    (
        HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("same-origin"),
    ),
    // API responses carry tokens and personal data: no cache may keep them.
    (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
];

/// Marks a response as a public document (the JWKS, security.txt) whose own `Cache-Control`
/// the edge keeps. Any other response gets `no-store`, whatever its handler set.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PublicDocument;

/// A page's own `Content-Security-Policy`, set as a response extension (the trust page's, which
/// allows its one stylesheet by hash). A header a handler sets is replaced like any other: only
/// this marker changes the policy, so no handler loosens it by accident.
#[derive(Debug, Clone)]
pub(crate) struct PagePolicy(pub(crate) HeaderValue);

pub(crate) fn apply(headers: &mut HeaderMap, public_document: bool, policy: Option<HeaderValue>) {
    let mut policy = policy;
    for (name, value) in HEADERS {
        if public_document && name == header::CACHE_CONTROL && headers.contains_key(&name) {
            continue;
        }
        if name == header::CONTENT_SECURITY_POLICY
            && let Some(own) = policy.take()
        {
            headers.insert(name, own);
            continue;
        }
        headers.insert(name, value);
    }
}

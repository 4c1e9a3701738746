//! The bare baseline for `bench/run.py`: axum on tokio's default runtime answering
//! `GET /health/live` with the same JSON body as Gatehouse, and nothing else: no middleware, no
//! store, no logging. Gatehouse's figures are reported as a ratio to this one, measured in the
//! same run on the same machine.
//!
//! Two more routes answer with the bytes Gatehouse answers and do nothing else, to show what the
//! size of a request and its answer alone costs the server and the load generator on this
//! machine: `GET /sized` with those of an API-key verify (headers and body, 901 bytes);
//! `POST /sized-internal` and `POST /sized-transit` read the body they are sent and answer with as
//! many bytes as an internal key verify (735) and a transit encrypt of 256 bytes (995).
#![forbid(unsafe_code)]

use axum::Router;
use axum::routing::{get, post};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8089".to_owned());
    let app = Router::new()
        .route(
            "/health/live",
            get(|| async { axum::Json(serde_json_free_body()) }),
        )
        .route(
            "/sized",
            get(|| async { (SECURITY_HEADERS, VERIFY_HEADERS, VERIFY_BODY) }),
        )
        .route(
            "/sized-internal",
            post(|body: axum::body::Bytes| async move {
                let _read = body.len();
                (SECURITY_HEADERS, INTERNAL_HEADERS, INTERNAL_BODY)
            }),
        )
        .route(
            "/sized-transit",
            post(|body: axum::body::Bytes| async move {
                let _read = body.len();
                (SECURITY_HEADERS, TRANSIT_HEADERS, transit_body())
            }),
        );
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, app).await
}

/// The same bytes Gatehouse sends, built without pulling serde derive into the baseline.
fn serde_json_free_body() -> std::collections::BTreeMap<&'static str, &'static str> {
    std::collections::BTreeMap::from([("status", "ok")])
}

/// What Gatehouse sends on every answer (H1), with the same values.
const SECURITY_HEADERS: [(&str, &str); 9] = [
    (
        "strict-transport-security",
        "max-age=31536000; includeSubDomains",
    ),
    (
        "content-security-policy",
        "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    ),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "strict-origin-when-cross-origin"),
    (
        "permissions-policy",
        "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
    ),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
    ("cache-control", "no-store"),
];

const VERIFY_HEADERS: [(&str, &str); 5] = [
    ("content-type", "application/json"),
    ("x-gatehouse-user", "01a23850-bf89-730b-8481-704afca40c82"),
    ("x-gatehouse-org", "01a23850-bf6f-756a-925a-94b3af3471f0"),
    ("x-gatehouse-roles", ""),
    ("x-request-id", "c8e7424a0f332a4e3a05f04f393d3ffd"),
];

const VERIFY_BODY: &str = "{\"user_id\":\"01a23850-bf89-730b-8481-704afca40c82\",\"organization_id\":\
    \"01a23850-bf6f-756a-925a-94b3af3471f0\",\"roles\":[],\"tier\":\"api_key\",\"permissions\":\
    [\"audit.read\",\"transit.encrypt\"]}";

const INTERNAL_HEADERS: [(&str, &str); 2] = [
    ("content-type", "application/json"),
    ("x-request-id", "550339c9babab1dae0e93470015d54dc"),
];

const INTERNAL_BODY: &str = "{\"valid\":true,\"key_id\":\"01a23887-87c3-7027-9907-861a5df41f11\",\
    \"organization\":\"01a23887-87a8-7e27-b23f-b15ec2f21195\",\"permissions\":\
    [\"audit.read\",\"transit.encrypt\"]}";

const TRANSIT_HEADERS: [(&str, &str); 2] = [
    ("content-type", "application/json"),
    ("x-request-id", "278416a8e18a28fc8480c75d1f3c1662"),
];

/// A transit answer's length: `{"ciphertext":"gh:v1:` and 400 base64url characters.
fn transit_body() -> String {
    let mut body = String::with_capacity(423);
    body.push_str("{\"ciphertext\":\"gh:v1:");
    body.extend(std::iter::repeat_n('A', 400));
    body.push_str("\"}");
    body
}

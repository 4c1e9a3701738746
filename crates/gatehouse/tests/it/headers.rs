//! H1: the security headers on every response, errors included.

use crate::support::{TestApp, header};

const EXPECTED: &[(&str, &str)] = &[
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

fn check(what: &str, headers: &[(String, String)]) {
    for (name, value) in EXPECTED {
        assert_eq!(header(headers, name), Some(*value), "{what}: {name}");
    }
    assert_eq!(
        header(headers, "x-request-id").map(str::len),
        Some(32),
        "{what}: x-request-id"
    );
}

fn collect(res: &reqwest::Response) -> Vec<(String, String)> {
    res.headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap().to_owned()))
        .collect()
}

#[tokio::test]
async fn on_200_404_405_and_413() {
    let app = TestApp::spawn_with(|c| c.body_limit_bytes = 1024).await;

    let ok = app.get("/health/live").await;
    assert_eq!(ok.status(), 200);
    check("200", &collect(&ok));

    let missing = app.get("/no/such/route").await;
    assert_eq!(missing.status(), 404);
    check("404", &collect(&missing));

    let wrong_method = app
        .client
        .delete(app.url("/health/live"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status(), 405);
    check("405", &collect(&wrong_method));

    let big = app
        .client
        .post(app.url("/v1/auth/signup"))
        .header("content-type", "application/json")
        .body(vec![b' '; 4096])
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), 413);
    check("413", &collect(&big));

    app.stop().await;
}

#[tokio::test]
async fn on_raw_protocol_errors_too() {
    let app = TestApp::spawn().await;
    let (status, headers, _) = app
        .raw(b"TRACE /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await;
    assert_eq!(status, 405);
    check("TRACE", &headers);
    app.stop().await;
}

#[tokio::test]
async fn public_documents_keep_their_own_cache_lifetime_and_everything_else_is_no_store() {
    let app = TestApp::spawn().await;
    let jwks = app.get("/.well-known/jwks.json").await;
    assert_eq!(jwks.status(), 200);
    assert_eq!(jwks.headers()["cache-control"], "public, max-age=60");
    // The other security headers are still there.
    assert_eq!(jwks.headers()["x-content-type-options"], "nosniff");
    let live = app.get("/health/live").await;
    assert_eq!(live.headers()["cache-control"], "no-store");
    app.stop().await;
}

#[tokio::test]
async fn security_txt_serves_the_configured_fields_and_is_absent_unconfigured() {
    let app = TestApp::spawn().await;
    let res = app.get("/.well-known/security.txt").await;
    crate::support::expect_problem(res, 404, "not_found").await;
    app.stop().await;

    let app = TestApp::spawn_with(|raw| {
        raw.security_txt.contact = vec!["mailto:security@example.com".into()];
        raw.security_txt.expires = Some("2099-01-01T00:00:00Z".into());
        raw.security_txt.policy = vec!["https://example.com/disclosure".into()];
        raw.security_txt.preferred_languages = vec!["en".into()];
    })
    .await;
    let res = app.get("/.well-known/security.txt").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "max-age=86400");
    assert_eq!(res.headers()["content-type"], "text/plain; charset=utf-8");
    let text = res.text().await.unwrap();
    // RFC 9116: one "Field: value" per line; Contact and Expires present, Expires in RFC 3339.
    let fields: Vec<(&str, &str)> = text
        .lines()
        .map(|l| l.split_once(": ").expect("field: value"))
        .collect();
    assert!(fields.contains(&("Contact", "mailto:security@example.com")));
    assert!(fields.contains(&("Expires", "2099-01-01T00:00:00Z")));
    assert!(fields.contains(&("Policy", "https://example.com/disclosure")));
    assert!(fields.contains(&("Preferred-Languages", "en")));
    app.stop().await;

    // A past Expires is refused when the configuration loads: the server does not start.
    let mut raw = crate::support::raw_config(&crate::support::temp_dir());
    raw.security_txt.contact = vec!["mailto:security@example.com".into()];
    raw.security_txt.expires = Some("2020-01-01T00:00:00Z".into());
    let err = gatehouse::Config::from_raw(raw, None).unwrap_err();
    assert!(err.0.starts_with("security_txt.expires:"), "{err}");
    let mut raw = crate::support::raw_config(&crate::support::temp_dir());
    raw.security_txt.expires = Some("2099-01-01T00:00:00Z".into());
    let err = gatehouse::Config::from_raw(raw, None).unwrap_err();
    assert!(err.0.starts_with("security_txt.contact:"), "{err}");
}

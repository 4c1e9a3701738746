//! C6: explicit origins only; any other origin gets no CORS header at all.

use crate::support::TestApp;

const ALLOWED: &str = "https://app.example.com";

async fn app() -> TestApp {
    TestApp::spawn_with(|c| c.cors_allowed_origins = vec![ALLOWED.to_owned()]).await
}

fn cors_headers(res: &reqwest::Response) -> Vec<String> {
    res.headers()
        .keys()
        .map(|k| k.as_str().to_owned())
        .filter(|k| k.starts_with("access-control-"))
        .collect()
}

#[tokio::test]
async fn allowed_origin_gets_cors_headers_and_preflight() {
    let app = app().await;
    let res = app
        .client
        .get(app.url("/health/live"))
        .header("origin", ALLOWED)
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["access-control-allow-origin"], ALLOWED);
    assert_eq!(res.headers()["access-control-allow-credentials"], "true");

    let pre = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/v1/auth/signup"))
        .header("origin", ALLOWED)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert!(pre.status().is_success(), "{}", pre.status());
    assert_eq!(pre.headers()["access-control-allow-origin"], ALLOWED);
    let methods = pre.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap();
    assert!(methods.contains("POST"), "{methods}");
    app.stop().await;
}

/// Issue 18, finding 13: a cookie-mode browser app on an allowed origin may send `x-csrf-token`
/// (every change it makes needs it).
#[tokio::test]
async fn the_csrf_header_is_allowed_cross_origin() {
    let app = app().await;
    let pre = app
        .client
        .request(
            reqwest::Method::OPTIONS,
            app.url("/v1/me/sessions/revoke-others"),
        )
        .header("origin", ALLOWED)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "x-csrf-token, content-type",
        )
        .send()
        .await
        .unwrap();
    assert!(pre.status().is_success(), "{}", pre.status());
    let allowed = pre.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(allowed.contains("x-csrf-token"), "{allowed}");
    app.stop().await;
}

#[tokio::test]
async fn other_origins_get_no_cors_headers() {
    let app = app().await;
    for origin in [
        "https://evil.example.com",
        "null",
        "https://app.example.com.evil.net",
    ] {
        let res = app
            .client
            .get(app.url("/health/live"))
            .header("origin", origin)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert!(
            cors_headers(&res).is_empty(),
            "{origin}: {:?}",
            cors_headers(&res)
        );

        let pre = app
            .client
            .request(reqwest::Method::OPTIONS, app.url("/v1/auth/signup"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .send()
            .await
            .unwrap();
        assert!(
            cors_headers(&pre).is_empty(),
            "{origin} preflight: {:?}",
            cors_headers(&pre)
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn no_configured_origins_means_no_cors_headers() {
    let app = TestApp::spawn().await;
    let res = app
        .client
        .get(app.url("/health/live"))
        .header("origin", ALLOWED)
        .send()
        .await
        .unwrap();
    assert!(cors_headers(&res).is_empty());
    app.stop().await;
}

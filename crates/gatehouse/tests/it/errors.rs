//! Bad input gets the right 4xx problem document: never a 5xx, never a crash.

use crate::support::{TestApp, assert_problem_shape, expect_problem, header, signup_body};

#[tokio::test]
async fn malformed_json_is_400() {
    let app = TestApp::spawn().await;
    let res = app
        .client
        .post(app.url("/v1/auth/signup"))
        .header("content-type", "application/json")
        .body("{\"email\": ")
        .send()
        .await
        .unwrap();
    expect_problem(res, 400, "malformed_json").await;
    app.stop().await;
}

#[tokio::test]
async fn wrong_content_type_is_415() {
    let app = TestApp::spawn().await;
    let res = app
        .client
        .post(app.url("/v1/auth/signup"))
        .header("content-type", "text/plain")
        .body(signup_body("a@example.com").to_string())
        .send()
        .await
        .unwrap();
    expect_problem(res, 415, "unsupported_media_type").await;
    let res = app
        .client
        .post(app.url("/v1/auth/signup"))
        .body(signup_body("a@example.com").to_string())
        .send()
        .await
        .unwrap();
    expect_problem(res, 415, "unsupported_media_type").await;
    app.stop().await;
}

#[tokio::test]
async fn oversized_body_is_413_with_and_without_content_length() {
    let app = TestApp::spawn_with(|c| c.body_limit_bytes = 2048).await;
    let huge = serde_json::json!({"email": "x".repeat(10_000)});
    let res = app.post_json("/v1/auth/signup", &huge).await;
    expect_problem(res, 413, "payload_too_large").await;

    // Chunked, so the limit is met while reading rather than from Content-Length.
    let body = "a".repeat(5000);
    let req = format!(
        "POST /v1/auth/signup HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
        body.len()
    );
    let (status, headers, text) = app.raw(req.as_bytes()).await;
    assert_eq!(status, 413);
    assert_eq!(
        header(&headers, "content-type"),
        Some("application/problem+json")
    );
    let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|_| {
        // A chunked reply carries its own framing; take the JSON object out of it.
        let start = text.find('{').unwrap();
        let end = text.rfind('}').unwrap();
        serde_json::from_str(&text[start..=end]).unwrap()
    });
    assert_problem_shape(&json, 413, "payload_too_large");
    app.stop().await;
}

#[tokio::test]
async fn unknown_route_is_404() {
    let app = TestApp::spawn().await;
    expect_problem(app.get("/v1/nothing-here").await, 404, "not_found").await;
    expect_problem(app.get("/admin/v1/nothing").await, 404, "not_found").await;
    app.stop().await;
}

async fn raw_problem(app: &TestApp, request: &str, status: u16, code: &str) {
    let (got, headers, body) = app.raw(request.as_bytes()).await;
    assert_eq!(got, status, "{request}: {body}");
    assert_eq!(
        header(&headers, "content-type"),
        Some("application/problem+json"),
        "{request}"
    );
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_problem_shape(&json, status, code);
}

#[tokio::test]
async fn trace_connect_and_made_up_methods_are_refused_with_problems() {
    let app = TestApp::spawn().await;
    raw_problem(
        &app,
        "TRACE /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        405,
        "method_not_allowed",
    )
    .await;
    raw_problem(
        &app,
        "TRACE /no/such HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        404,
        "not_found",
    )
    .await;
    raw_problem(
        &app,
        "FROBNICATE /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        405,
        "method_not_allowed",
    )
    .await;
    raw_problem(
        &app,
        "CONNECT /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        405,
        "method_not_allowed",
    )
    .await;
    // Authority-form CONNECT, as a proxy client would send it: 405 too (issue 18, finding 13).
    raw_problem(
        &app,
        "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nConnection: close\r\n\r\n",
        405,
        "method_not_allowed",
    )
    .await;
    // The server is still serving.
    assert_eq!(app.get("/health/live").await.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn validation_failures_are_422_and_never_echo_the_password() {
    let app = TestApp::spawn().await;
    let mut body = signup_body("not-an-email");
    let res = app.post_json("/v1/auth/signup", &body).await;
    let p = expect_problem(res, 422, "validation_failed").await;
    assert_eq!(p["field"], "email");

    body = signup_body("ok@example.com");
    body["password"] = serde_json::json!("short");
    let p = expect_problem(
        app.post_json("/v1/auth/signup", &body).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(p["field"], "password");
    assert!(!p.to_string().contains("\"short\""));

    body["password"] = serde_json::json!(98765432123_u64);
    let p = expect_problem(
        app.post_json("/v1/auth/signup", &body).await,
        422,
        "invalid_body",
    )
    .await;
    assert!(!p.to_string().contains("98765432123"), "{p}");

    let p = expect_problem(
        app.post_json(
            "/v1/auth/signup",
            &serde_json::json!({"email": "a@example.com"}),
        )
        .await,
        422,
        "invalid_body",
    )
    .await;
    assert!(
        p["detail"].as_str().unwrap().contains("missing field"),
        "{p}"
    );

    let mut extra = signup_body("b@example.com");
    extra["is_admin"] = serde_json::json!(true);
    let p = expect_problem(
        app.post_json("/v1/auth/signup", &extra).await,
        422,
        "invalid_body",
    )
    .await;
    assert!(
        p["detail"].as_str().unwrap().contains("unknown field"),
        "{p}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_request_slower_than_the_timeout_gets_a_503_problem() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn_with(|c| c.request_timeout_secs = 1).await;
    // Headers promise a body that never finishes arriving.
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(
            b"POST /v1/auth/signup HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\nConnection: close\r\n\r\n{\"email\":",
        )
        .await
        .unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut reply),
    )
    .await
    .unwrap()
    .unwrap();
    let reply = String::from_utf8_lossy(&reply);
    let (head, body) = reply.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/problem+json")
    );
    let json: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_problem_shape(&json, 503, "request_timeout");
    app.stop().await;
}

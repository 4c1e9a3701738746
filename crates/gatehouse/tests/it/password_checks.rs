//! New passwords (A1; ASVS 5.0 6.1.2, 6.2.11, 6.2.12): refused when built from the account's
//! context words, and, when configured, when a breached-password range service lists them,
//! asked by k-anonymity (5 hex characters of the SHA-1 leave the process, never the hash).

use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::HeaderMap;

use crate::support::{TestApp, expect_problem};

fn signup(email: &str, password: &str) -> serde_json::Value {
    serde_json::json!({
        "email": email,
        "password": password,
        "name": "Ada Lovelace",
        "organization_name": "Analytical Engines",
    })
}

#[tokio::test]
async fn passwords_built_from_the_accounts_context_words_are_refused() {
    let app = TestApp::spawn().await;
    for (email, password) in [
        ("ada.byron@example.com", "Ada.Byron-2024"),
        ("ada@example.com", "LovelaceLovelace"),
        ("ada@example.com", "analytical engines 1"),
        ("ada@babbage-works.example", "babbage-works!!"),
        // The product's name (`mail.product_name`, "Gatehouse" by default).
        ("ada@example.com", "Gatehouse#12345"),
    ] {
        let res = app
            .post_json("/v1/auth/signup", &signup(email, password))
            .await;
        let p = expect_problem(res, 422, "validation_failed").await;
        assert_eq!(p["field"], "password", "{password}");
        assert!(
            p["detail"].as_str().unwrap().contains("built from"),
            "{password}: {p}"
        );
    }
    // Context words with enough else around them pass.
    let res = app
        .post_json(
            "/v1/auth/signup",
            &signup("ada@example.com", "lovelace violet lantern orbit"),
        )
        .await;
    assert_eq!(res.status(), 202);
}

/// What the stand-in range service saw: each request's path and headers.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<(String, String)>>>);

async fn range(
    State((seen, body)): State<(Seen, String)>,
    Path(prefix): Path<String>,
    headers: HeaderMap,
) -> String {
    let headers = format!("{headers:?}");
    seen.0.lock().unwrap().push((prefix, headers));
    body
}

/// A local stand-in for a Pwned-Passwords-style range API, answering `body` for every prefix.
async fn stand_in(body: String) -> (String, Seen) {
    let seen = Seen::default();
    let router = axum::Router::new()
        .route("/range/{prefix}", axum::routing::get(range))
        .with_state((seen.clone(), body));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/range", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, seen)
}

fn sha1_hex(password: &str) -> String {
    gatehouse_crypto::sha1_hex_for_breach_lookup(password.as_bytes())
}

#[tokio::test]
async fn breached_passwords_are_refused_by_a_range_query_that_sends_only_a_prefix() {
    let breached = "tortoise lantern violet 77";
    let hash = sha1_hex(breached);
    // The breached suffix among others, as the real service answers (padding has count 0).
    let body = format!(
        "0018A45C4D1DEF81644B54AB7F969B88D65:3\r\n{}:12\r\nFFFF45C4D1DEF81644B54AB7F969B88D65:0\r\n",
        &hash[5..]
    );
    let (url, seen) = stand_in(body).await;
    let app = TestApp::spawn_with(|raw| {
        raw.passwords.breach_range_url = Some(url.clone());
    })
    .await;
    let res = app
        .post_json("/v1/auth/signup", &signup("one@example.com", breached))
        .await;
    let p = expect_problem(res, 422, "validation_failed").await;
    assert!(p["detail"].as_str().unwrap().contains("breach"), "{p}");
    let fine = "plum orbit cask forty seven";
    let res = app
        .post_json("/v1/auth/signup", &signup("two@example.com", fine))
        .await;
    assert_eq!(res.status(), 202);

    let seen = seen.0.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].0, &hash[..5]);
    assert_eq!(seen[1].0, &sha1_hex(fine)[..5]);
    for (prefix, headers) in &seen {
        assert_eq!(prefix.len(), 5);
        assert!(prefix.chars().all(|c| c.is_ascii_hexdigit()), "{prefix}");
        // Neither the full hash nor its suffix went anywhere.
        for full in [&hash, &sha1_hex(fine)] {
            assert!(!headers.contains(full.as_str()) && !headers.contains(&full[5..]));
        }
    }
    // Off by default: no request at all.
    let plain = TestApp::spawn().await;
    let res = plain
        .post_json("/v1/auth/signup", &signup("three@example.com", breached))
        .await;
    assert_eq!(res.status(), 202);
}

#[tokio::test]
async fn a_range_service_that_does_not_answer_is_allowed_or_refused_as_configured() {
    // Nothing listens here.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/range", l.local_addr().unwrap())
    };
    let open = TestApp::spawn_with(|raw| {
        raw.passwords.breach_range_url = Some(closed.clone());
        raw.passwords.breach_timeout_ms = 500;
    })
    .await;
    let res = open
        .post_json(
            "/v1/auth/signup",
            &signup("one@example.com", "plum orbit cask forty seven"),
        )
        .await;
    assert_eq!(res.status(), 202);
    let shut = TestApp::spawn_with(|raw| {
        raw.passwords.breach_range_url = Some(closed.clone());
        raw.passwords.breach_timeout_ms = 500;
        raw.passwords.breach_on_error = gatehouse::config::passwords::OnError::Refuse;
    })
    .await;
    let res = shut
        .post_json(
            "/v1/auth/signup",
            &signup("two@example.com", "plum orbit cask forty seven"),
        )
        .await;
    expect_problem(res, 503, "dependency_unavailable").await;
}

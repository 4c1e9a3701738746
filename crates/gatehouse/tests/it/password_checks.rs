//! New passwords (A1; ASVS 5.0 6.1.2, 6.2.11, 6.2.12): refused when built from the account's
//! context words, and, when configured, when a breached-password range service lists them,
//! asked by k-anonymity (5 hex characters of the SHA-1 leave the process, never the hash).

use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};

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

/// What the stand-in range service saw: each request's full URI (path and any query) and
/// headers.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<(String, String)>>>);

async fn range(
    State((seen, body)): State<(Seen, String)>,
    Path(_prefix): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> String {
    let headers = format!("{headers:?}");
    seen.0.lock().unwrap().push((uri.to_string(), headers));
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
        "0018A45C4D1DEF81644B54AB7F969B88D65:3\r\n{}:12\r\nFFFFF45C4D1DEF81644B54AB7F969B88D65:0\r\n",
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
    // The whole request target is the path and the 5 characters: no query, no suffix.
    assert_eq!(seen[0].0, format!("/range/{}", &hash[..5]));
    assert_eq!(seen[1].0, format!("/range/{}", &sha1_hex(fine)[..5]));
    for (uri, headers) in &seen {
        assert!(!uri.contains('?'), "{uri}");
        // Neither the full hash nor its suffix went anywhere, in any case.
        for full in [&hash, &sha1_hex(fine)] {
            for text in [uri.to_ascii_uppercase(), headers.to_ascii_uppercase()] {
                assert!(
                    !text.contains(full.as_str()) && !text.contains(&full[5..]),
                    "{text}"
                );
            }
        }
    }
}

/// Off unless `breach_range_url` is set: with the rest of the section set to refuse on any
/// failure and a stand-in listing the password, the password is accepted and the stand-in
/// hears nothing (a default URL, to a real service or any other, would be refused or
/// counted here).
#[tokio::test]
async fn without_a_range_url_no_range_query_is_made() {
    let breached = "tortoise lantern violet 77";
    let body = format!("{}:12\r\n", &sha1_hex(breached)[5..]);
    let (_url, seen) = stand_in(body).await;
    let plain = TestApp::spawn_with(|raw| {
        raw.passwords.breach_timeout_ms = 500;
        raw.passwords.breach_on_error = gatehouse::config::passwords::OnError::Refuse;
    })
    .await;
    let res = plain
        .post_json("/v1/auth/signup", &signup("three@example.com", breached))
        .await;
    assert_eq!(res.status(), 202);
    assert!(seen.0.lock().unwrap().is_empty());
}

/// An answer of the wrong shape (an error page served with 200) is a failure of the service,
/// not "not listed": refused when so configured.
#[tokio::test]
async fn a_range_answer_of_the_wrong_shape_is_a_failure_not_a_pass() {
    let (url, seen) = stand_in("<html>Service temporarily unavailable</html>".into()).await;
    let app = TestApp::spawn_with(|raw| {
        raw.passwords.breach_range_url = Some(url.clone());
        raw.passwords.breach_on_error = gatehouse::config::passwords::OnError::Refuse;
    })
    .await;
    let res = app
        .post_json(
            "/v1/auth/signup",
            &signup("one@example.com", "plum orbit cask forty seven"),
        )
        .await;
    expect_problem(res, 503, "dependency_unavailable").await;
    assert_eq!(seen.0.lock().unwrap().len(), 1);
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

//! Sign-in, per-device sessions and instant revocation (A5), and browser sessions with CSRF (A10).

use reqwest::Method;
use serde_json::json;

use crate::support::{PASSWORD, TestApp, expect_problem};

#[tokio::test]
async fn login_issues_tokens_that_verify_and_identify_the_caller() {
    let app = TestApp::spawn().await;
    let a = app.signup_login("ada@example.com", "laptop").await;

    let res = app
        .call(Method::GET, "/v1/auth/verify", &a.access, None, None)
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-gatehouse-user"], a.user.as_str());
    assert_eq!(res.headers()["x-gatehouse-org"], a.org.as_str());
    assert_eq!(res.headers()["x-gatehouse-roles"], "owner");
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["tier"], "customer");
    assert_eq!(body["session_id"], a.session.as_str());

    let me: serde_json::Value = app
        .call(Method::GET, "/v1/me", &a.access, None, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["email"], "ada@example.com");
    assert_eq!(me["memberships"][0]["role"], "owner");

    // No token, a malformed one, a tampered one: 401 problems.
    expect_problem(app.get("/v1/auth/verify").await, 401, "unauthenticated").await;
    let tampered = format!("{}x", a.access);
    for bad in ["nonsense", tampered.as_str()] {
        let res = app
            .call(Method::GET, "/v1/auth/verify", bad, None, None)
            .await;
        expect_problem(res, 401, "unauthenticated").await;
    }
    app.stop().await;
}

#[tokio::test]
async fn revoking_device_b_refuses_its_token_at_once_while_device_a_keeps_working() {
    let app = TestApp::spawn().await;
    let a = app.signup_login("ada@example.com", "laptop").await;
    let b = app
        .login("ada@example.com", PASSWORD, "phone", &a.user)
        .await;
    for s in [&a, &b] {
        let res = app
            .call(Method::GET, "/v1/auth/verify", &s.access, None, None)
            .await;
        assert_eq!(res.status(), 200);
    }

    let list: serde_json::Value = app
        .call(Method::GET, "/v1/me/sessions", &a.access, None, None)
        .await
        .json()
        .await
        .unwrap();
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    let phone = items.iter().find(|s| s["device_name"] == "phone").unwrap();
    assert_eq!(phone["id"], b.session.as_str());
    assert_eq!(phone["current"], false);

    let res = app
        .call(
            Method::DELETE,
            &format!("/v1/me/sessions/{}", b.session),
            &a.access,
            None,
            None,
        )
        .await;
    assert_eq!(res.status(), 204);
    // B's unexpired access token is refused on its very next request; A still works.
    let res = app
        .call(Method::GET, "/v1/auth/verify", &b.access, None, None)
        .await;
    expect_problem(res, 401, "unauthenticated").await;
    let res = app
        .call(Method::GET, "/v1/auth/verify", &a.access, None, None)
        .await;
    assert_eq!(res.status(), 200);
    // And B cannot refresh its way back.
    let res = app
        .post_json("/v1/auth/refresh", &json!({"refresh_token": b.refresh}))
        .await;
    expect_problem(res, 401, "unauthenticated").await;

    let events = app.audit_events(&a.org).await;
    assert!(events.iter().any(|e| e.action == "session.revoked"
        && e.resource_id == b.session
        && e.actor_id == a.user));
    app.stop().await;
}

#[tokio::test]
async fn refresh_rotates_and_reusing_a_spent_refresh_token_revokes_the_session() {
    let app = TestApp::spawn().await;
    let a = app.signup_login("ada@example.com", "laptop").await;

    let res = app
        .post_json("/v1/auth/refresh", &json!({"refresh_token": a.refresh}))
        .await;
    assert_eq!(res.status(), 200);
    let next: serde_json::Value = res.json().await.unwrap();
    let new_refresh = next["refresh_token"].as_str().unwrap();
    let new_access = next["access_token"].as_str().unwrap();
    assert_ne!(new_refresh, a.refresh);
    assert_eq!(next["session_id"], a.session.as_str());

    // The spent token comes back (it was copied): the whole session ends.
    let res = app
        .post_json("/v1/auth/refresh", &json!({"refresh_token": a.refresh}))
        .await;
    expect_problem(res, 401, "unauthenticated").await;
    for token in [new_access, a.access.as_str()] {
        let res = app
            .call(Method::GET, "/v1/auth/verify", token, None, None)
            .await;
        expect_problem(res, 401, "unauthenticated").await;
    }
    let res = app
        .post_json("/v1/auth/refresh", &json!({"refresh_token": new_refresh}))
        .await;
    expect_problem(res, 401, "unauthenticated").await;
    let events = app.audit_events(&a.org).await;
    let reuse = events
        .iter()
        .find(|e| e.action == "session.refresh_reused")
        .unwrap();
    assert_eq!(reuse.outcome, "denied");
    app.stop().await;
}

#[tokio::test]
async fn a_guessed_refresh_secret_is_refused_without_ending_the_session() {
    let app = TestApp::spawn().await;
    let a = app.signup_login("ada@example.com", "laptop").await;
    // The session id is not secret (it is the token's `sid`): a made-up secret for it must not
    // sign the user out.
    let forged = format!("grt_{}_{}", a.session.replace('-', ""), "x".repeat(43));
    let res = app
        .post_json("/v1/auth/refresh", &json!({"refresh_token": forged}))
        .await;
    expect_problem(res, 401, "unauthenticated").await;
    let res = app
        .call(Method::GET, "/v1/auth/verify", &a.access, None, None)
        .await;
    assert_eq!(res.status(), 200);
    let res = app
        .post_json("/v1/auth/refresh", &json!({"refresh_token": a.refresh}))
        .await;
    assert_eq!(res.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn logout_and_revoke_others_end_sessions() {
    let app = TestApp::spawn().await;
    let a = app.signup_login("ada@example.com", "laptop").await;
    let b = app
        .login("ada@example.com", PASSWORD, "phone", &a.user)
        .await;
    let c = app
        .login("ada@example.com", PASSWORD, "tablet", &a.user)
        .await;

    let res = app
        .call(
            Method::POST,
            "/v1/me/sessions/revoke-others",
            &a.access,
            None,
            None,
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<serde_json::Value>().await.unwrap()["revoked"], 2);
    for s in [&b, &c] {
        let res = app
            .call(Method::GET, "/v1/auth/verify", &s.access, None, None)
            .await;
        assert_eq!(res.status(), 401);
    }
    let res = app
        .call(Method::POST, "/v1/auth/logout", &a.access, None, None)
        .await;
    assert_eq!(res.status(), 204);
    let res = app
        .call(Method::GET, "/v1/auth/verify", &a.access, None, None)
        .await;
    assert_eq!(res.status(), 401);
    // Another user's session id is not ours to revoke.
    let other = app.signup_login("bob@example.com", "laptop").await;
    let mine = app.login("ada@example.com", PASSWORD, "new", &a.user).await;
    let res = app
        .call(
            Method::DELETE,
            &format!("/v1/me/sessions/{}", other.session),
            &mine.access,
            None,
            None,
        )
        .await;
    expect_problem(res, 404, "not_found").await;
    let res = app
        .call(Method::GET, "/v1/auth/verify", &other.access, None, None)
        .await;
    assert_eq!(res.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn access_tokens_expire_by_the_injected_clock_and_sessions_by_their_tier() {
    let app = TestApp::spawn().await;
    let a = app.signup_login("ada@example.com", "laptop").await;
    app.clock.advance(time::Duration::minutes(16));
    let res = app
        .call(Method::GET, "/v1/auth/verify", &a.access, None, None)
        .await;
    expect_problem(res, 401, "unauthenticated").await;
    // The session (7 days) lives on: refresh gives a fresh access token.
    let res = app
        .post_json("/v1/auth/refresh", &json!({"refresh_token": a.refresh}))
        .await;
    assert_eq!(res.status(), 200);
    let next: serde_json::Value = res.json().await.unwrap();
    assert_eq!(next["expires_in"], 900);
    app.clock.advance(time::Duration::days(7));
    let res = app
        .post_json(
            "/v1/auth/refresh",
            &json!({"refresh_token": next["refresh_token"]}),
        )
        .await;
    expect_problem(res, 401, "unauthenticated").await;
    app.stop().await;
}

#[tokio::test]
async fn cookie_sessions_need_the_csrf_token_for_state_changes() {
    let app = TestApp::spawn().await;
    let res = app
        .post_json(
            "/v1/auth/signup",
            &crate::support::signup_body("ada@example.com"),
        )
        .await;
    assert_eq!(res.status(), 202);
    let res = app
        .post_json(
            "/v1/auth/login",
            &json!({"email": "ada@example.com", "password": PASSWORD, "session_mode": "cookie"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let cookies: Vec<String> = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let body: serde_json::Value = res.json().await.unwrap();
    assert!(body.get("access_token").is_none() && body.get("refresh_token").is_none());
    let csrf = body["csrf_token"].as_str().unwrap().to_owned();
    let access = cookies
        .iter()
        .find(|c| c.starts_with("__Host-gatehouse_access="))
        .unwrap();
    for flag in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/"] {
        assert!(access.contains(flag), "{access}");
    }
    assert!(
        !access.contains("Domain"),
        "__Host- cookies carry no Domain"
    );
    let jar: String = cookies
        .iter()
        .map(|c| c.split(';').next().unwrap())
        .collect::<Vec<_>>()
        .join("; ");

    // Reading needs no CSRF token.
    let res = app
        .client
        .get(app.url("/v1/me"))
        .header("cookie", &jar)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // A state change without it, or with a wrong one, is refused.
    for header in [None, Some("forged")] {
        let mut req = app
            .client
            .post(app.url("/v1/me/sessions/revoke-others"))
            .header("cookie", &jar);
        if let Some(h) = header {
            req = req.header("x-csrf-token", h);
        }
        expect_problem(req.send().await.unwrap(), 403, "csrf_failed").await;
    }
    let res = app
        .client
        .post(app.url("/v1/me/sessions/revoke-others"))
        .header("cookie", &jar)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // Refresh from the cookie also needs the double-submitted token.
    let res = app
        .client
        .post(app.url("/v1/auth/refresh"))
        .header("cookie", &jar)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    expect_problem(res, 403, "csrf_failed").await;
    let res = app
        .client
        .post(app.url("/v1/auth/refresh"))
        .header("cookie", &jar)
        .header("x-csrf-token", &csrf)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    app.stop().await;
}

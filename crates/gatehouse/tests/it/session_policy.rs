//! Session policy (A5; ASVS 7.1.1, 7.1.2, 7.3.1): the inactivity limit on refresh and the cap
//! on an account's concurrent sessions, in both of its modes.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{PASSWORD, Signed, TestApp, expect_problem};

async fn refresh(app: &TestApp, token: &str) -> reqwest::Response {
    app.post_json("/v1/auth/refresh", &json!({"refresh_token": token}))
        .await
}

async fn verify(app: &TestApp, access: &str) -> u16 {
    app.call(Method::GET, "/v1/auth/verify", access, None, None)
        .await
        .status()
        .as_u16()
}

async fn login_events(app: &TestApp, org: &str) -> Vec<Value> {
    app.audit_events(org)
        .await
        .into_iter()
        .filter(|e| e.action == "user.login")
        .map(|e| serde_json::from_str(&e.details).unwrap())
        .collect()
}

#[tokio::test]
async fn a_refresh_after_the_idle_limit_is_refused_and_one_within_it_succeeds() {
    // The default limit: 30 minutes (NIST SP 800-63B, AAL2).
    let app = TestApp::spawn().await;
    let a = app.signup_login("ada@example.com", "laptop").await;

    // 29 idle minutes: within the limit.
    app.clock.advance(time::Duration::minutes(29));
    let res = refresh(&app, &a.refresh).await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let next: Value = res.json().await.unwrap();
    let next_refresh = next["refresh_token"].as_str().unwrap().to_owned();

    // The refresh itself was activity: 31 minutes after it the session is idle past the limit,
    // refused, and ended.
    app.clock.advance(time::Duration::minutes(31));
    let res = refresh(&app, &next_refresh).await;
    let body = expect_problem(res, 401, "unauthenticated").await;
    assert!(body["detail"].as_str().unwrap().contains("idle"), "{body}");
    let mut tx = app.kernel.store().begin().await.unwrap();
    let ended = tx
        .session(a.session.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    drop(tx);
    assert!(ended.revoked_at.is_some(), "the idle session was ended");
    assert!(
        app.audit_events(&a.org)
            .await
            .iter()
            .any(|e| e.action == "session.ended_idle"),
        "the ending is audited on the organisation's chain"
    );

    // Requests with the access token count too, before any flush has stored them: used at
    // minute 14 and refreshed at minute 34 (20 minutes after its last use), the session lives.
    let b = app
        .login("ada@example.com", PASSWORD, "phone", &a.user)
        .await;
    app.clock.advance(time::Duration::minutes(14));
    assert_eq!(verify(&app, &b.access).await, 200);
    app.clock.advance(time::Duration::minutes(20));
    let res = refresh(&app, &b.refresh).await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);

    // The limit is a ceiling (AAL2): idle exactly 30 minutes still refreshes, one second more
    // does not, with no grace for the activity flush.
    let c = app
        .login("ada@example.com", PASSWORD, "tablet", &a.user)
        .await;
    app.clock.advance(time::Duration::minutes(30));
    let res = refresh(&app, &c.refresh).await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let next: Value = res.json().await.unwrap();
    let next_refresh = next["refresh_token"].as_str().unwrap().to_owned();
    app.clock
        .advance(time::Duration::minutes(30) + time::Duration::seconds(1));
    let res = refresh(&app, &next_refresh).await;
    expect_problem(res, 401, "unauthenticated").await;
    app.stop().await;
}

#[tokio::test]
async fn over_the_session_cap_the_oldest_session_ends() {
    let app = TestApp::spawn_with(|raw| {
        raw.identity.max_sessions_per_account = Some(2);
    })
    .await;
    let one = app.signup_login("ada@example.com", "one").await;
    app.clock.advance(time::Duration::seconds(1));
    let two = app
        .login("ada@example.com", PASSWORD, "two", &one.user)
        .await;
    assert_eq!(verify(&app, &one.access).await, 200);
    // A third sign-in ends the oldest (one), whose access and refresh tokens are refused.
    app.clock.advance(time::Duration::seconds(1));
    let three = app
        .login("ada@example.com", PASSWORD, "three", &one.user)
        .await;
    assert_eq!(verify(&app, &one.access).await, 401);
    expect_problem(refresh(&app, &one.refresh).await, 401, "unauthenticated").await;
    for s in [&two, &three] {
        assert_eq!(verify(&app, &s.access).await, 200);
    }
    let ended: Vec<u64> = login_events(&app, &one.org)
        .await
        .iter()
        .map(|d| d["sessions_ended"].as_u64().unwrap())
        .collect();
    assert_eq!(
        ended,
        [1, 0, 0],
        "newest first: the third sign-in ended one"
    );
    let res = refresh(&app, &two.refresh).await;
    assert_eq!(res.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn over_the_session_cap_a_sign_in_is_refused_when_so_configured() {
    let app = TestApp::spawn_with(|raw| {
        raw.identity.max_sessions_per_account = Some(1);
        raw.identity.session_limit_action = "refuse".into();
    })
    .await;
    let one: Signed = app.signup_login("ada@example.com", "one").await;
    let res = app
        .post_json(
            "/v1/auth/login",
            &json!({"email": "ada@example.com", "password": PASSWORD, "device_name": "two"}),
        )
        .await;
    let body = expect_problem(res, 409, "session_limit_reached").await;
    assert!(
        body["detail"].as_str().unwrap().contains("at most 1"),
        "{body}"
    );
    // The live session is untouched.
    assert_eq!(verify(&app, &one.access).await, 200);
    // A wrong password still answers as a wrong password: the cap says nothing to a guesser.
    let res = app
        .post_json(
            "/v1/auth/login",
            &json!({"email": "ada@example.com", "password": "not the password at all"}),
        )
        .await;
    expect_problem(res, 401, "invalid_credentials").await;
    // Signing out makes room.
    let res = app
        .call(Method::POST, "/v1/auth/logout", &one.access, None, None)
        .await;
    assert!(res.status().is_success(), "{}", res.status());
    let two = app
        .login("ada@example.com", PASSWORD, "two", &one.user)
        .await;
    // A session idle past the limit can never be refreshed again, so it does not count.
    app.clock.advance(time::Duration::minutes(31));
    let three = app
        .login("ada@example.com", PASSWORD, "three", &one.user)
        .await;
    assert_eq!(verify(&app, &three.access).await, 200);
    expect_problem(refresh(&app, &two.refresh).await, 401, "unauthenticated").await;
    app.stop().await;
}

//! Operators (A9) and tiers (A6): separate accounts on their own audience, impersonation that is
//! short, never renewed and audited with both identities.

use gatehouse_crypto::SecretString;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{PASSWORD, Signed, TestApp, expect_problem};

async fn operator(app: &TestApp) -> (String, String) {
    let id = app
        .kernel
        .operators()
        .create(
            "ops@platform.example",
            "Platform Ops",
            SecretString::from(PASSWORD.to_owned()),
        )
        .await
        .unwrap();
    let res = app
        .post_json(
            "/admin/v1/auth/login",
            &json!({"email": "ops@platform.example", "password": PASSWORD}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    (
        id.to_string(),
        body["access_token"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn tenant_and_operator_tokens_each_work_only_on_their_own_api() {
    let app = TestApp::spawn().await;
    let a = app.signup_login("ada@example.com", "laptop").await;
    let (_, op) = operator(&app).await;

    let res = app
        .call(Method::GET, "/admin/v1/audit-logs", &a.access, None, None)
        .await;
    expect_problem(res, 403, "wrong_audience").await;
    let res = app
        .call(Method::GET, "/admin/v1/audit-logs", &op, None, None)
        .await;
    assert_eq!(res.status(), 200);
    let trail: Value = res.json().await.unwrap();
    assert!(
        trail["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "operator.login")
    );

    for path in ["/v1/organization/members", "/v1/me", "/v1/auth/verify"] {
        let res = app.call(Method::GET, path, &op, Some(&a.org), None).await;
        expect_problem(res, 403, "wrong_audience").await;
    }
    // The operator's account is not a user account: the tenant sign-in does not know it.
    let res = app
        .post_json(
            "/v1/auth/login",
            &json!({"email": "ops@platform.example", "password": PASSWORD}),
        )
        .await;
    expect_problem(res, 401, "invalid_credentials").await;
    app.stop().await;
}

#[tokio::test]
async fn impersonation_is_thirty_minutes_unrenewable_and_audited_with_both_identities() {
    // The customer's own session sits idle while the impersonation runs out: an hour's
    // inactivity limit keeps it refreshable (the limit has its own tests, session_policy.rs).
    let app = TestApp::spawn_with(|raw| raw.identity.idle_timeout_secs = 3_600).await;
    let a = app.signup_login("ada@example.com", "laptop").await;
    let (op_id, op) = operator(&app).await;

    let res = app
        .call(
            Method::POST,
            "/admin/v1/impersonations",
            &op,
            None,
            Some(json!({"user_id": a.user, "organization_id": a.org, "reason": "ticket 4711"})),
        )
        .await;
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    assert!(body.get("refresh_token").is_none(), "{body}");
    assert_eq!(body["expires_in"], 1800);
    let imp = Signed::from_login(&a.user, &body);

    let res = app
        .call(Method::GET, "/v1/auth/verify", &imp.access, None, None)
        .await;
    let who: Value = res.json().await.unwrap();
    assert_eq!(who["tier"], "impersonation");
    assert_eq!(who["impersonator_id"], op_id.as_str());
    assert_eq!(who["user_id"], a.user.as_str());

    // An action under impersonation carries both identities.
    let res = app
        .org_call(
            Method::POST,
            "/v1/organization/roles",
            &imp,
            Some(json!({"name": "support", "permissions": ["org.read"]})),
        )
        .await;
    assert_eq!(res.status(), 201);
    let events = app.audit_events(&a.org).await;
    let created = events.iter().find(|e| e.action == "role.created").unwrap();
    assert_eq!(created.actor_id, a.user);
    assert_eq!(created.impersonator_id.as_deref(), Some(op_id.as_str()));
    let started = events
        .iter()
        .find(|e| e.action == "impersonation.started")
        .unwrap();
    assert!(started.details.contains("ticket 4711"));
    assert_eq!(started.impersonator_id.as_deref(), Some(op_id.as_str()));

    // Refreshing is impossible: there is no refresh token, and switching is refused too.
    let res = app
        .call(
            Method::POST,
            "/v1/auth/switch-organization",
            &imp.access,
            None,
            Some(json!({"organization_id": a.org})),
        )
        .await;
    expect_problem(res, 403, "wrong_audience").await;

    // It cannot mint an API key that would outlive it.
    let res = app
        .org_call(
            Method::POST,
            "/v1/api-keys",
            &imp,
            Some(json!({"name": "stay", "permissions": ["audit.read"]})),
        )
        .await;
    expect_problem(res, 403, "wrong_audience").await;

    // Valid for 30 minutes, then over for good.
    app.clock.advance(time::Duration::minutes(29));
    let res = app
        .call(Method::GET, "/v1/auth/verify", &imp.access, None, None)
        .await;
    assert_eq!(res.status(), 200);
    app.clock.advance(time::Duration::minutes(2));
    let res = app
        .call(Method::GET, "/v1/auth/verify", &imp.access, None, None)
        .await;
    expect_problem(res, 401, "unauthenticated").await;
    // The customer's own session (7 days) is unaffected by the impersonation's end.
    let res = app
        .post_json("/v1/auth/refresh", &json!({"refresh_token": a.refresh}))
        .await;
    assert_eq!(res.status(), 200);
    app.stop().await;
}

/// Issue 18, finding 3: nothing made under an impersonation outlives it. Creating or rotating an
/// API key, inviting someone and storing a secret's value are refused, however the route is
/// otherwise authorized.
#[tokio::test]
async fn an_impersonation_makes_no_credential_that_would_outlive_it() {
    // No step-up list, so nothing but the impersonation rule stands in the way of each attempt.
    let app = TestApp::spawn_with(|raw| {
        raw.identity.step_up_permissions = Vec::new();
        crate::product::declare_reports(raw);
        raw.webhooks.allow_http = true;
        raw.webhooks.allow_loopback = true;
    })
    .await;
    let a = app.signup_login("ada@example.com", "laptop").await;
    // Issue 21: a share link and a webhook endpoint (and its secret) outlive a session too.
    let res = app
        .org_call(
            Method::POST,
            "/v1/records",
            &a,
            Some(json!({"type": "report", "external_id": "r1", "level": "private"})),
        )
        .await;
    assert_eq!(res.status(), 201);
    let record_id = res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = app
        .org_call(
            Method::POST,
            "/v1/webhooks/endpoints",
            &a,
            Some(json!({"url": "http://127.0.0.1:9/in", "event_types": ["member.added"]})),
        )
        .await;
    assert_eq!(res.status(), 201);
    let endpoint_id = res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let in_an_hour = (gatehouse_core::Clock::now(&app.clock) + time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let res = app
        .org_call(
            Method::POST,
            "/v1/api-keys",
            &a,
            Some(json!({"name": "ci", "permissions": ["org.read"]})),
        )
        .await;
    assert_eq!(res.status(), 201);
    let key_id = res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = app
        .org_call(
            Method::POST,
            "/v1/secrets",
            &a,
            Some(json!({"name": "db", "value": "first"})),
        )
        .await;
    assert_eq!(res.status(), 201);
    let secret_id = res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let (_, op) = operator(&app).await;
    let res = app
        .call(
            Method::POST,
            "/admin/v1/impersonations",
            &op,
            None,
            Some(json!({"user_id": a.user, "organization_id": a.org, "reason": "ticket 4712"})),
        )
        .await;
    assert_eq!(res.status(), 201);
    let imp = Signed::from_login(&a.user, &res.json::<Value>().await.unwrap());

    let attempts = [
        (
            Method::POST,
            format!("/v1/api-keys/{key_id}/rotate"),
            json!({"grace_seconds": 2_592_000}),
        ),
        (
            Method::POST,
            "/v1/api-keys".to_owned(),
            json!({"name": "mine", "permissions": ["org.read"]}),
        ),
        (
            Method::POST,
            "/v1/organization/invitations".to_owned(),
            json!({"email": "friend@example.com", "role": "admin"}),
        ),
        (
            Method::POST,
            "/v1/secrets".to_owned(),
            json!({"name": "other", "value": "x"}),
        ),
        (
            Method::PUT,
            format!("/v1/secrets/{secret_id}"),
            json!({"value": "second"}),
        ),
        (
            Method::POST,
            format!("/v1/records/{record_id}/share-links"),
            json!({"expires_at": in_an_hour}),
        ),
        (
            Method::POST,
            "/v1/webhooks/endpoints".to_owned(),
            json!({"url": "http://127.0.0.1:9/other", "event_types": ["member.added"]}),
        ),
        (
            Method::PATCH,
            format!("/v1/webhooks/endpoints/{endpoint_id}"),
            json!({"url": "http://127.0.0.1:9/moved"}),
        ),
        (
            Method::POST,
            format!("/v1/webhooks/endpoints/{endpoint_id}/rotate-secret"),
            json!({}),
        ),
    ];
    for (method, path, body) in attempts {
        let res = app.org_call(method, &path, &imp, Some(body)).await;
        expect_problem(res, 403, "wrong_audience").await;
    }
    // The owner's own session still may.
    let res = app
        .org_call(
            Method::POST,
            &format!("/v1/api-keys/{key_id}/rotate"),
            &a,
            Some(json!({"grace_seconds": 0})),
        )
        .await;
    assert_eq!(res.status(), 201);
    app.stop().await;
}

#[tokio::test]
async fn a_tenant_token_cannot_impersonate() {
    let app = TestApp::spawn().await;
    let a = app.signup_login("ada@example.com", "laptop").await;
    let res = app
        .call(
            Method::POST,
            "/admin/v1/impersonations",
            &a.access,
            None,
            Some(json!({"user_id": a.user, "organization_id": a.org, "reason": "no"})),
        )
        .await;
    expect_problem(res, 403, "wrong_audience").await;
    app.stop().await;
}

#[tokio::test]
async fn the_operator_api_can_move_to_its_own_listener() {
    let app = TestApp::spawn_with(|raw| raw.admin_listen = Some("127.0.0.1:0".into())).await;
    let admin = app.admin_base.clone().unwrap();
    app.kernel
        .operators()
        .create(
            "ops@platform.example",
            "Platform Ops",
            SecretString::from(PASSWORD.to_owned()),
        )
        .await
        .unwrap();
    let login = json!({"email": "ops@platform.example", "password": PASSWORD});
    // Not on the public listener: the same 404 as a path that exists nowhere.
    let res = app.post_json("/admin/v1/auth/login", &login).await;
    let hidden = expect_problem(res, 404, "not_found").await;
    let res = app.post_json("/no/such/path", &login).await;
    let unknown = expect_problem(res, 404, "not_found").await;
    assert_eq!(hidden["detail"], unknown["detail"]);
    // On the operators' listener it works, and the tenant API is not there.
    let res = app
        .client
        .post(format!("{admin}/admin/v1/auth/login"))
        .json(&login)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = app
        .client
        .post(format!("{admin}/v1/auth/signup"))
        .json(&crate::support::signup_body("x@example.com"))
        .send()
        .await
        .unwrap();
    expect_problem(res, 404, "not_found").await;
    let res = app
        .client
        .get(format!("{admin}/health/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // The public listener still serves the tenant API.
    let res = app
        .post_json(
            "/v1/auth/signup",
            &crate::support::signup_body("x@example.com"),
        )
        .await;
    assert_eq!(res.status(), 202);
    app.stop().await;
}

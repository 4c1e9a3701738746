//! The shared-secrets vault (D2) over HTTP: use without seeing, gated reveal, versions, and
//! tenant isolation for tokens, API keys and on-behalf-of calls.

use reqwest::Method;
use serde_json::{Value, json};

use crate::mfa::{enrol, password_step, pyotp_now, second_step};
use crate::support::{Capture, Signed, TestApp, expect_problem};

const S1: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
const VALUE: &str = "postgres://app:planted-db-password-41x@db/prod";

async fn with_service() -> TestApp {
    let dir = crate::support::temp_dir();
    // The file's name is the service's name in the audit trail.
    let f = dir.join("deploy-bot.key");
    std::fs::write(&f, S1).unwrap();
    std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    TestApp::spawn_in(dir, |raw| raw.service_auth.secret_files = vec![f]).await
}

async fn create_secret(app: &TestApp, owner: &Signed, name: &str, value: &str) -> String {
    let res = app
        .org_call(
            Method::POST,
            "/v1/secrets",
            owner,
            Some(json!({"name": name, "value": value, "description": "the prod database"})),
        )
        .await;
    assert_eq!(res.status(), 201, "{:?}", res.text().await);
    let body: Value = res.json().await.unwrap();
    assert!(body.get("value").is_none());
    body["id"].as_str().unwrap().to_owned()
}

async fn use_as(app: &TestApp, id: &str, on_behalf: &str) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/internal/v1/secrets/{id}/use")))
        .header("x-service-auth", S1)
        .header("x-gatehouse-on-behalf-of", on_behalf)
        .header("x-gatehouse-service", "nightly sync")
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "current_thread")]
async fn a_member_uses_a_secret_through_a_service_without_ever_seeing_it() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(capture.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let app = with_service().await;
    let owner = app.signup_login("owner@example.com", "laptop").await;
    let id = create_secret(&app, &owner, "prod/db", VALUE).await;
    let member = app.add_member(&owner, "mia@example.com", "member").await;

    // Everything a member can reach on /v1: none of it carries the value.
    let mut bodies = Vec::new();
    for (method, path, body) in [
        (Method::GET, "/v1/secrets".to_owned(), None),
        (Method::GET, format!("/v1/secrets/{id}"), None),
        (
            Method::POST,
            format!("/v1/secrets/{id}/reveal"),
            Some(json!({})),
        ),
        (
            Method::PUT,
            format!("/v1/secrets/{id}"),
            Some(json!({"value": "x"})),
        ),
        (Method::DELETE, format!("/v1/secrets/{id}"), None),
        (Method::GET, "/v1/audit-logs".to_owned(), None),
    ] {
        let res = app.org_call(method, &path, &member, body).await;
        let status = res.status().as_u16();
        bodies.push((path, status, res.text().await.unwrap()));
    }
    assert_eq!(bodies[0].1, 200, "{bodies:?}");
    assert!(
        bodies[0].2.contains("prod/db"),
        "the member lists names: {bodies:?}"
    );
    assert_eq!(bodies[1].1, 200);
    assert!(bodies[1].2.contains("\"current_version\":1"));
    for (path, status, _) in &bodies[2..] {
        assert_eq!(*status, 403, "{path}");
    }
    for (path, _, body) in &bodies {
        assert!(
            !body.contains("planted-db-password"),
            "{path} leaked: {body}"
        );
    }

    // The service gets it, for the member.
    let res = use_as(&app, &id, &member.access).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["value"], VALUE);
    // Without the service secret, or with an API key on behalf, it does not.
    let res = app
        .client
        .post(app.url(&format!("/internal/v1/secrets/{id}/use")))
        .header("x-gatehouse-on-behalf-of", &member.access)
        .send()
        .await
        .unwrap();
    expect_problem(res, 401, "unauthenticated").await;
    let res = use_as(&app, &id, "").await;
    expect_problem(res, 401, "unauthenticated").await;
    // A viewer has no secrets.use: refused, audited.
    let viewer = app.add_member(&owner, "vic@example.com", "viewer").await;
    let res = use_as(&app, &id, &viewer.access).await;
    expect_problem(res, 403, "forbidden").await;

    // The audit trail names the person and the service.
    let events = app.audit_events(&owner.org).await;
    let used = events
        .iter()
        .find(|e| e.action == "secret.used")
        .expect("secret.used recorded");
    assert_eq!(used.actor_id, member.user);
    assert_eq!(used.resource_id, id);
    let details: Value = serde_json::from_str(&used.details).unwrap();
    // The service its secret proves, and what it said of itself.
    assert_eq!(details["service"], "deploy-bot");
    assert_eq!(details["service_label"], "nightly sync");
    assert_eq!(details["version"], 1);
    assert!(
        events
            .iter()
            .any(|e| e.action == "permission.denied" && e.actor_id == viewer.user)
    );
    for e in &events {
        assert!(!e.details.contains("planted-db-password"), "{e:?}");
    }
    app.stop().await;

    let logs = capture.text();
    assert!(logs.lines().count() > 10, "the capture saw the requests");
    assert!(
        !logs.contains("planted-db-password"),
        "a log line holds the value"
    );
}

#[tokio::test]
async fn reveal_needs_a_recent_second_factor_is_audited_and_refused_to_a_viewer() {
    let app = TestApp::spawn().await;
    let owner = app.signup_login("owner@example.com", "laptop").await;
    let id = create_secret(&app, &owner, "stripe", "sk_live_planted_41").await;
    let viewer = app.add_member(&owner, "vic@example.com", "viewer").await;
    let (secret, _) = enrol(&app, &owner).await;

    // Enrolled, and the session's second factor is not recent (the password sign-in predates
    // enrolment): refused, naming what is needed.
    let reveal = |who: Signed| {
        let path = format!("/v1/secrets/{id}/reveal");
        let app = &app;
        async move { app.org_call(Method::POST, &path, &who, None).await }
    };
    let fresh = {
        app.clock.advance(time::Duration::seconds(30));
        let token = password_step(&app, "owner@example.com").await;
        let res = second_step(&app, &token, json!({"code": pyotp_now(&app, &secret)})).await;
        let mut s = Signed::from_login(&owner.user, &res.json().await.unwrap());
        s.org = owner.org.clone();
        s
    };
    app.clock.advance(time::Duration::seconds(301));
    let res = reveal(fresh.clone()).await;
    let body = expect_problem(res, 403, "step_up_required").await;
    assert!(body["detail"].as_str().unwrap().contains("secrets.reveal"));
    assert!(!body.to_string().contains("sk_live"));

    let res = app
        .call(
            Method::POST,
            "/v1/auth/step-up",
            &fresh.access,
            None,
            Some(json!({"code": pyotp_now(&app, &secret)})),
        )
        .await;
    assert_eq!(res.status(), 200);
    let stepped: Value = res.json().await.unwrap();
    let mut stepped_up = fresh.clone();
    stepped_up.access = stepped["access_token"].as_str().unwrap().to_owned();
    let res = reveal(stepped_up.clone()).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["value"], "sk_live_planted_41");

    // Versions: a new value is version 2; version 1 stays revealable.
    let res = app
        .org_call(
            Method::PUT,
            &format!("/v1/secrets/{id}"),
            &owner,
            Some(json!({"value": "sk_live_planted_42"})),
        )
        .await;
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["current_version"], 2);
    let res = app
        .org_call(
            Method::POST,
            &format!("/v1/secrets/{id}/reveal"),
            &stepped_up,
            Some(json!({"version": 1})),
        )
        .await;
    assert_eq!(
        res.json::<Value>().await.unwrap()["value"],
        "sk_live_planted_41"
    );
    let res = reveal(stepped_up.clone()).await;
    assert_eq!(
        res.json::<Value>().await.unwrap()["value"],
        "sk_live_planted_42"
    );

    // A viewer: 403, audited.
    let res = reveal(viewer.clone()).await;
    expect_problem(res, 403, "forbidden").await;

    let events = app.audit_events(&owner.org).await;
    let revealed: Vec<_> = events
        .iter()
        .filter(|e| e.action == "secret.revealed")
        .collect();
    assert_eq!(revealed.len(), 3);
    assert!(revealed.iter().all(|e| e.actor_id == owner.user));
    assert!(
        events
            .iter()
            .any(|e| e.action == "permission.step_up_required")
    );
    assert!(events.iter().any(|e| e.action == "permission.denied"
        && e.actor_id == viewer.user
        && e.details.contains("secrets.reveal")));

    // Deleted: gone for everyone, value destroyed.
    let res = app
        .org_call(Method::DELETE, &format!("/v1/secrets/{id}"), &owner, None)
        .await;
    assert_eq!(res.status(), 204);
    let res = reveal(stepped_up).await;
    expect_problem(res, 404, "not_found").await;
    app.stop().await;
}

#[tokio::test]
async fn another_organisation_cannot_use_reveal_or_list_a_secret() {
    let app = with_service().await;
    let a = app.signup_login("a@example.com", "laptop").await;
    let id = create_secret(&app, &a, "a-only", "a-planted-value").await;
    let b = app.signup_login("b@example.com", "laptop").await;
    let res = app
        .org_call(
            Method::POST,
            "/v1/api-keys",
            &b,
            Some(json!({"name": "b", "permissions": ["secrets.use", "secrets.reveal", "secrets.manage"]})),
        )
        .await;
    assert_eq!(res.status(), 201);
    let b_key = res.json::<Value>().await.unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned();

    for token in [&b.access, &b_key] {
        let res = app
            .call(Method::GET, "/v1/secrets", token, Some(&b.org), None)
            .await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.json::<Value>().await.unwrap()["items"], json!([]));
        for (method, path) in [
            (Method::GET, format!("/v1/secrets/{id}")),
            (Method::PUT, format!("/v1/secrets/{id}")),
            (Method::DELETE, format!("/v1/secrets/{id}")),
        ] {
            let body = (method == Method::PUT).then(|| json!({"value": "overwrite"}));
            let res = app.call(method, &path, token, Some(&b.org), body).await;
            expect_problem(res, 404, "not_found").await;
        }
        // Naming A's organisation is refused before anything is looked up.
        let res = app
            .call(Method::GET, "/v1/secrets", token, Some(&a.org), None)
            .await;
        expect_problem(res, 403, "organization_mismatch").await;
    }
    // Reveal by B's owner (no second factor: refused before any lookup) and by B's key
    // (which cannot step up at all).
    let res = app
        .call(
            Method::POST,
            &format!("/v1/secrets/{id}/reveal"),
            &b.access,
            Some(&b.org),
            None,
        )
        .await;
    expect_problem(res, 403, "step_up_required").await;
    let res = app
        .call(
            Method::POST,
            &format!("/v1/secrets/{id}/reveal"),
            &b_key,
            Some(&b.org),
            None,
        )
        .await;
    expect_problem(res, 403, "step_up_required").await;
    // B's person on behalf: not found in B's organisation; B's API key on behalf: refused.
    let res = use_as(&app, &id, &b.access).await;
    expect_problem(res, 404, "not_found").await;
    let res = use_as(&app, &id, &b_key).await;
    expect_problem(res, 403, "wrong_audience").await;
    // A itself still can.
    let res = use_as(&app, &id, &a.access).await;
    assert_eq!(
        res.json::<Value>().await.unwrap()["value"],
        "a-planted-value"
    );
    app.stop().await;
}

/// The reveal body is optional, and utoipa documents an optional body as a nullable one, so
/// `null` means "no body" as an empty body does (it was refused with 422 before): none, `null`,
/// `{}` and `{"version": n}` are answered; anything else is 422 naming `version`.
#[tokio::test]
async fn reveal_takes_no_body_null_or_a_version_as_documented() {
    let app = TestApp::spawn().await;
    let owner = app.signup_login("owner@example.com", "laptop").await;
    let id = create_secret(&app, &owner, "stripe", "sk_live_planted_41").await;
    // Reveal needs a recent second factor: enrol one, then step up with a later code.
    let (secret, _) = enrol(&app, &owner).await;
    app.clock.advance(time::Duration::seconds(30));
    let res = app
        .call(
            Method::POST,
            "/v1/auth/step-up",
            &owner.access,
            None,
            Some(json!({"code": pyotp_now(&app, &secret)})),
        )
        .await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let stepped: Value = res.json().await.unwrap();
    let token = stepped["access_token"].as_str().unwrap().to_owned();
    let reveal = |body: Option<&'static str>| {
        let mut req = app
            .client
            .post(app.url(&format!("/v1/secrets/{id}/reveal")))
            .bearer_auth(&token)
            .header("x-organization-id", &owner.org);
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b);
        }
        req.send()
    };
    for body in [
        None,
        Some("null"),
        Some(" null "),
        Some("{}"),
        Some(r#"{"version": 1}"#),
    ] {
        let res = reveal(body).await.unwrap();
        let status = res.status();
        let v: Value = res.json().await.unwrap();
        assert_eq!(status, 200, "{body:?}: {v}");
        assert_eq!(v["value"], "sk_live_planted_41", "{body:?}");
    }
    for body in [r#"{"version": "1"}"#, "1", r#"{"other": 1}"#, "{"] {
        let res = reveal(Some(body)).await.unwrap();
        let problem = expect_problem(res, 422, "validation_failed").await;
        assert_eq!(problem["field"], "version", "{body}");
    }
    app.stop().await;
}

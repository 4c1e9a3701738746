//! Audiences (ASVS 9.2.4, in the spirit of RFC 8707): the app registry on the operator API, a
//! token for an app by `resource` on refresh, and where such a token is refused: Gatehouse's own
//! API, another app's service acting on a person's behalf, forward authentication for another
//! audience.

use reqwest::Method;
use serde_json::{Value, json};

use crate::api_keys::service_secret_file;
use crate::support::{Signed, TestApp, expect_problem, token_claims};

pub(crate) const BILLING: &str = "https://billing.example.com";
pub(crate) const REPORTS: &str = "urn:example:reports";
/// The secrets of the two services, `billing.key` and `reports.key`.
pub(crate) const BILLING_SECRET: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
pub(crate) const REPORTS_SECRET: &str = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";
const VALUE: &str = "smtp://mailer:planted-app-secret-77q@mail/prod";

/// A server with two services, each bound to its app, or (`bound` false) neither bound.
pub(crate) async fn with_services(bound: bool) -> TestApp {
    let dir = crate::support::temp_dir();
    let billing = service_secret_file(&dir, "billing.key", BILLING_SECRET);
    let reports = service_secret_file(&dir, "reports.key", REPORTS_SECRET);
    TestApp::spawn_in(dir, |raw| {
        raw.service_auth.secret_files = vec![billing, reports];
        if bound {
            raw.service_auth.apps = [
                ("billing".to_owned(), BILLING.to_owned()),
                ("reports".to_owned(), REPORTS.to_owned()),
            ]
            .into();
        }
    })
    .await
}

pub(crate) async fn register(
    app: &TestApp,
    operator: &str,
    name: &str,
    audience: &str,
) -> reqwest::Response {
    app.call(
        Method::POST,
        "/admin/v1/apps",
        operator,
        None,
        Some(json!({"name": name, "audience": audience})),
    )
    .await
}

pub(crate) async fn refresh(
    app: &TestApp,
    refresh_token: &str,
    resource: Option<&str>,
) -> reqwest::Response {
    let mut body = json!({"refresh_token": refresh_token});
    if let Some(r) = resource {
        body["resource"] = json!(r);
    }
    app.post_json("/v1/auth/refresh", &body).await
}

/// Refreshes `who`'s session for `resource`: (access token, the rotated refresh token).
pub(crate) async fn token_for(app: &TestApp, who: &Signed, resource: &str) -> (String, String) {
    let res = refresh(app, &who.refresh, Some(resource)).await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let body: Value = res.json().await.unwrap();
    (
        body["access_token"].as_str().unwrap().to_owned(),
        body["refresh_token"].as_str().unwrap().to_owned(),
    )
}

async fn create_secret(app: &TestApp, owner: &Signed) -> String {
    let res = app
        .org_call(
            Method::POST,
            "/v1/secrets",
            owner,
            Some(json!({"name": "mailer", "value": VALUE})),
        )
        .await;
    assert_eq!(res.status(), 201, "{:?}", res.text().await);
    res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn use_on_behalf(
    app: &TestApp,
    service_secret: &str,
    id: &str,
    token: &str,
) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/internal/v1/secrets/{id}/use")))
        .header("x-service-auth", service_secret)
        .header("x-gatehouse-on-behalf-of", token)
        .send()
        .await
        .unwrap()
}

pub(crate) async fn verify(app: &TestApp, token: &str, query: &str) -> reqwest::Response {
    app.call(
        Method::GET,
        &format!("/v1/auth/verify{query}"),
        token,
        None,
        None,
    )
    .await
}

#[tokio::test]
async fn operators_register_list_and_remove_apps_and_each_change_is_audited() {
    let app = TestApp::spawn().await;
    let operator = app.operator_token().await;
    let owner = app.signup_login("owner@example.com", "laptop").await;

    let res = register(&app, &operator, "Billing", BILLING).await;
    assert_eq!(res.status(), 201, "{:?}", res.text().await);
    let billing: Value = res.json().await.unwrap();
    assert_eq!(billing["audience"], BILLING);
    app.clock.advance(time::Duration::seconds(1));
    let res = register(&app, &operator, "Reports", REPORTS).await;
    assert_eq!(res.status(), 201);
    // One app per audience; an audience is an absolute URI without a fragment and not
    // Gatehouse's own.
    let res = register(&app, &operator, "Billing again", BILLING).await;
    expect_problem(res, 409, "conflict").await;
    for bad in [
        "billing",
        "https://app.example.com/#x",
        "gatehouse",
        "gatehouse-operators",
    ] {
        let res = register(&app, &operator, "Bad", bad).await;
        let body = expect_problem(res, 422, "validation_failed").await;
        assert_eq!(body["field"], "audience", "{bad}");
    }
    // Only operators: a tenant token, or none, is refused.
    let res = register(&app, &owner.access, "Mine", "https://mine.example.com").await;
    expect_problem(res, 403, "wrong_audience").await;
    let res = app.get("/admin/v1/apps").await;
    expect_problem(res, 401, "unauthenticated").await;

    let res = app
        .call(Method::GET, "/admin/v1/apps", &operator, None, None)
        .await;
    let list: Value = res.json().await.unwrap();
    let audiences: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["audience"].as_str().unwrap())
        .collect();
    assert_eq!(audiences, [BILLING, REPORTS]);

    let path = format!("/admin/v1/apps/{}", billing["id"].as_str().unwrap());
    let res = app.call(Method::DELETE, &path, &operator, None, None).await;
    assert_eq!(res.status(), 204);
    let res = app.call(Method::DELETE, &path, &operator, None, None).await;
    expect_problem(res, 404, "not_found").await;
    // Removed: no token is issued for it any more.
    let res = refresh(&app, &owner.refresh, Some(BILLING)).await;
    expect_problem(res, 400, "invalid_target").await;

    let res = app
        .call(Method::GET, "/admin/v1/audit-logs", &operator, None, None)
        .await;
    let trail: Value = res.json().await.unwrap();
    let actions: Vec<&str> = trail["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .filter(|a| a.starts_with("app."))
        .collect();
    assert_eq!(
        actions.iter().filter(|a| **a == "app.registered").count(),
        2,
        "{actions:?}"
    );
    assert!(actions.contains(&"app.removed"), "{actions:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_token_for_one_app_is_refused_by_v1_and_by_another_apps_service() {
    let app = with_services(true).await;
    let operator = app.operator_token().await;
    for (name, audience) in [("Billing", BILLING), ("Reports", REPORTS)] {
        assert_eq!(
            register(&app, &operator, name, audience).await.status(),
            201
        );
    }
    let owner = app.signup_login("owner@example.com", "laptop").await;
    let id = create_secret(&app, &owner).await;
    let (for_billing, _) = token_for(&app, &owner, BILLING).await;
    let claims = token_claims(&for_billing);
    assert_eq!(claims["aud"], BILLING);
    assert_eq!(claims["sub"], owner.user.as_str());
    assert_eq!(claims["org"], owner.org.as_str());

    // Gatehouse's own API accepts only its own audience.
    let res = app
        .call(Method::GET, "/v1/me", &for_billing, None, None)
        .await;
    expect_problem(res, 403, "wrong_audience").await;
    let res = app
        .call(
            Method::GET,
            "/v1/secrets",
            &for_billing,
            Some(&owner.org),
            None,
        )
        .await;
    expect_problem(res, 403, "wrong_audience").await;
    let res = app
        .call(Method::GET, "/admin/v1/apps", &for_billing, None, None)
        .await;
    expect_problem(res, 403, "wrong_audience").await;

    // On behalf of the person: billing's service accepts billing's token, and nothing else.
    let res = use_on_behalf(&app, BILLING_SECRET, &id, &for_billing).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["value"], VALUE);
    let res = use_on_behalf(&app, REPORTS_SECRET, &id, &for_billing).await;
    expect_problem(res, 403, "wrong_audience").await;
    let res = use_on_behalf(&app, BILLING_SECRET, &id, &owner.access).await;
    expect_problem(res, 403, "wrong_audience").await;
    // A token for reports (from the rotated session) works for reports' service only.
    let res = app
        .post_json(
            "/v1/auth/login",
            &json!({"email": "owner@example.com", "password": crate::support::PASSWORD}),
        )
        .await;
    let again = Signed::from_login(&owner.user, &res.json().await.unwrap());
    let (for_reports, _) = token_for(&app, &again, REPORTS).await;
    let res = use_on_behalf(&app, REPORTS_SECRET, &id, &for_reports).await;
    assert_eq!(res.status(), 200);
    let res = use_on_behalf(&app, BILLING_SECRET, &id, &for_reports).await;
    expect_problem(res, 403, "wrong_audience").await;

    // The check API takes the same view of a credential a bound service presents.
    let ask = |secret: &'static str, credential: String| {
        let app = &app;
        let org = owner.org.clone();
        async move {
            let res = app
                .client
                .post(app.url("/internal/v1/check"))
                .header("x-service-auth", secret)
                .json(&json!({
                    "organization_id": org,
                    "subject": {"credential": credential},
                    "checks": [{"action": "secrets.use"}],
                }))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            let body: Value = res.json().await.unwrap();
            body["results"][0]["allowed"] == true
        }
    };
    assert!(ask(BILLING_SECRET, for_billing.clone()).await);
    assert!(!ask(REPORTS_SECRET, for_billing.clone()).await);
    assert!(!ask(BILLING_SECRET, owner.access.clone()).await);

    // Forward authentication: `audience` names the app the proxy guards.
    let res = verify(&app, &for_billing, &format!("?audience={BILLING}")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-gatehouse-user"], owner.user.as_str());
    for (token, query) in [
        (&for_billing, String::new()),
        (&for_billing, format!("?audience={REPORTS}")),
        (&owner.access, format!("?audience={BILLING}")),
    ] {
        let res = verify(&app, token, &query).await;
        expect_problem(res, 403, "wrong_audience").await;
    }
    let res = verify(&app, &owner.access, "?audience=gatehouse").await;
    assert_eq!(res.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn a_service_bound_to_no_app_acts_only_on_tokens_for_gatehouse() {
    let app = with_services(false).await;
    let operator = app.operator_token().await;
    assert_eq!(
        register(&app, &operator, "Billing", BILLING).await.status(),
        201
    );
    let owner = app.signup_login("owner@example.com", "laptop").await;
    let id = create_secret(&app, &owner).await;
    // Today's behaviour for an unbound service: a token for Gatehouse's own audience.
    let res = use_on_behalf(&app, BILLING_SECRET, &id, &owner.access).await;
    assert_eq!(res.status(), 200);
    let (for_billing, _) = token_for(&app, &owner, BILLING).await;
    let res = use_on_behalf(&app, BILLING_SECRET, &id, &for_billing).await;
    expect_problem(res, 403, "wrong_audience").await;
    app.stop().await;
}

#[tokio::test]
async fn refresh_with_resource_rotates_the_refresh_token_and_an_unknown_one_is_invalid_target() {
    let app = TestApp::spawn().await;
    let operator = app.operator_token().await;
    assert_eq!(
        register(&app, &operator, "Billing", BILLING).await.status(),
        201
    );
    let owner = app.signup_login("owner@example.com", "laptop").await;

    // An unregistered resource: refused, and nothing rotated.
    let res = refresh(&app, &owner.refresh, Some("https://unknown.example.com")).await;
    let body = expect_problem(res, 400, "invalid_target").await;
    assert!(body["detail"].as_str().unwrap().contains("resource"));
    // Gatehouse's own audience as resource is a plain refresh.
    let res = refresh(&app, &owner.refresh, Some("gatehouse")).await;
    assert_eq!(res.status(), 200);
    let plain: Value = res.json().await.unwrap();
    assert_eq!(
        token_claims(plain["access_token"].as_str().unwrap())["aud"],
        "gatehouse"
    );
    let spent = owner.refresh.clone();
    let current = plain["refresh_token"].as_str().unwrap().to_owned();

    // For the app: a new refresh token, and the one presented is spent.
    let res = refresh(&app, &current, Some(BILLING)).await;
    assert_eq!(res.status(), 200);
    let for_app: Value = res.json().await.unwrap();
    let app_token = for_app["access_token"].as_str().unwrap().to_owned();
    assert_eq!(token_claims(&app_token)["aud"], BILLING);
    let rotated = for_app["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(rotated, current);
    // The rotated token refreshes without resource: a token for Gatehouse again.
    let res = refresh(&app, &rotated, None).await;
    assert_eq!(res.status(), 200);
    let back: Value = res.json().await.unwrap();
    let gatehouse_token = back["access_token"].as_str().unwrap().to_owned();
    assert_eq!(token_claims(&gatehouse_token)["aud"], "gatehouse");
    let res = app
        .call(Method::GET, "/v1/me", &gatehouse_token, None, None)
        .await;
    assert_eq!(res.status(), 200);
    // The refresh the app token came with is spent: presenting it again ends the session, and
    // with it the app's token.
    let res = refresh(&app, &rotated, Some(BILLING)).await;
    expect_problem(res, 401, "unauthenticated").await;
    let res = verify(&app, &app_token, &format!("?audience={BILLING}")).await;
    expect_problem(res, 401, "unauthenticated").await;
    let res = refresh(&app, &spent, None).await;
    expect_problem(res, 401, "unauthenticated").await;

    // The refresh for the app is on the organisation's audit trail, naming the resource.
    let events = app.audit_events(&owner.org).await;
    assert!(
        events
            .iter()
            .any(|e| e.action == "session.refreshed" && e.details.contains(BILLING)),
        "{events:?}"
    );

    // Cookie sessions keep Gatehouse's tokens: resource is refused there.
    let res = app
        .post_json(
            "/v1/auth/login",
            &json!({"email": "owner@example.com", "password": crate::support::PASSWORD, "session_mode": "cookie"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let cookies: Vec<String> = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .collect();
    let csrf = cookies
        .iter()
        .find_map(|c| c.strip_prefix("__Host-gatehouse_csrf="))
        .unwrap()
        .to_owned();
    let res = app
        .client
        .post(app.url("/v1/auth/refresh"))
        .header("cookie", cookies.join("; "))
        .header("x-csrf-token", csrf)
        .json(&json!({"resource": BILLING}))
        .send()
        .await
        .unwrap();
    let body = expect_problem(res, 422, "validation_failed").await;
    assert_eq!(body["field"], "resource");
    app.stop().await;
}

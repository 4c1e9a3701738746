//! What a token for an app is checked against besides its `aud`: the audience asked for must be
//! one an app may have (never Gatehouse's own or the operators'), its app must be registered now,
//! and the settings in force when it is signed decide, not those when the app was registered.
//! Audiences here are URI-shaped where it matters, so Gatehouse's own audiences are ones an app
//! could otherwise be registered with.

use std::sync::Arc;

use reqwest::Method;
use serde_json::{Value, json};

use crate::apps::{
    BILLING, BILLING_SECRET, REPORTS, refresh, register, token_for, verify, with_services,
};
use crate::support::{Signed, TestApp, expect_problem, token_claims};

const OWN: &str = "urn:gh:self";
const OPERATORS: &str = "urn:gh:self-operators";

/// The operators' chain's security events: (action, source) of each.
async fn security_sources(kernel: &Arc<gatehouse_core::Kernel>) -> Vec<(String, String)> {
    let mut tx = kernel.store().begin().await.unwrap();
    let ops = tx.operator_audit_events(0, 1000).await.unwrap();
    drop(tx);
    ops.iter()
        .filter_map(|e| {
            let details: Value = serde_json::from_str(&e.details).ok()?;
            // Beside the token's subject an address is kept only as a keyed digest.
            let source = details["source"]
                .as_str()
                .or_else(|| details["source_digest"].as_str())?;
            Some((e.action.clone(), source.to_owned()))
        })
        .collect()
}

/// A proxy's `?audience=` cannot turn forward authentication into an operator check, nor into
/// one for an app that is not registered (any more); each refusal is a security event.
#[tokio::test]
async fn verify_with_an_audience_admits_only_a_registered_apps_tokens_and_records_refusals() {
    let app = TestApp::spawn_with(|raw| raw.trusted_proxies = vec!["127.0.0.1".into()]).await;
    let operator = app.operator_token().await;
    let owner = app.signup_login("owner@example.com", "laptop").await;
    let verify_from = |token: String, query: String, source: &'static str| {
        let app = &app;
        async move {
            app.client
                .get(app.url(&format!("/v1/auth/verify{query}")))
                .bearer_auth(token)
                .header("x-forwarded-for", source)
                .send()
                .await
                .unwrap()
        }
    };
    // An operator token, asked for as the operators' audience, on the public listener.
    let res = verify_from(
        operator.clone(),
        "?audience=gatehouse-operators".into(),
        "198.51.100.21",
    )
    .await;
    expect_problem(res, 403, "wrong_audience").await;

    assert_eq!(
        register(&app, &operator, "Billing", BILLING).await.status(),
        201
    );
    let (for_billing, _) = token_for(&app, &owner, BILLING).await;
    let query = format!("?audience={BILLING}");
    let res = verify(&app, &for_billing, &query).await;
    assert_eq!(res.status(), 200);
    // Removed: the tokens already issued for it are refused at once (this instance forgets
    // what it cached; the others hear it through the fan-out).
    let list: Value = app
        .call(Method::GET, "/admin/v1/apps", &operator, None, None)
        .await
        .json()
        .await
        .unwrap();
    let id = list["items"][0]["id"].as_str().unwrap().to_owned();
    let res = app
        .call(
            Method::DELETE,
            &format!("/admin/v1/apps/{id}"),
            &operator,
            None,
            None,
        )
        .await;
    assert_eq!(res.status(), 204);
    let res = verify_from(for_billing.clone(), query.clone(), "198.51.100.22").await;
    let body = expect_problem(res, 403, "wrong_audience").await;
    assert!(
        body["detail"].as_str().unwrap().contains("registered"),
        "{body}"
    );
    // Registered again: admitted again.
    assert_eq!(
        register(&app, &operator, "Billing", BILLING).await.status(),
        201
    );
    assert_eq!(verify(&app, &for_billing, &query).await.status(), 200);

    let kernel = Arc::clone(&app.kernel);
    let dir = app.stop_keeping_data().await;
    let events = security_sources(&kernel).await;
    // One event per source (the operator's token names its subject, so each address is a
    // digest), and neither address in clear.
    let wrong: std::collections::BTreeSet<&str> = events
        .iter()
        .filter(|(a, _)| a == "token.wrong_audience")
        .map(|(_, s)| s.as_str())
        .collect();
    assert!(wrong.len() >= 2, "{events:?}");
    for source in ["198.51.100.21", "198.51.100.22"] {
        assert!(!wrong.contains(source), "{source} in clear: {events:?}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// A refused credential a service presents to the check API is a security event too.
#[tokio::test]
async fn the_check_api_records_a_refused_credential() {
    let app = with_services(true).await;
    let operator = app.operator_token().await;
    for (name, audience) in [("Billing", BILLING), ("Reports", REPORTS)] {
        assert_eq!(
            register(&app, &operator, name, audience).await.status(),
            201
        );
    }
    let owner = app.signup_login("owner@example.com", "laptop").await;
    // Billing's service presenting a token for Gatehouse's own API.
    let res = app
        .client
        .post(app.url("/internal/v1/check"))
        .header("x-service-auth", BILLING_SECRET)
        .json(&json!({
            "organization_id": owner.org,
            "subject": {"credential": owner.access},
            "checks": [{"action": "secrets.use"}],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["results"][0]["allowed"], false);
    let kernel = Arc::clone(&app.kernel);
    let dir = app.stop_keeping_data().await;
    let events = security_sources(&kernel).await;
    assert!(
        events.iter().any(|(a, _)| a == "token.wrong_audience"),
        "{events:?}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// With a URI as Gatehouse's own audience, neither it nor the operators' can be an app's: not
/// registered, not asked for on refresh, not asked for by a proxy.
#[tokio::test]
async fn a_uri_shaped_own_audience_and_the_operators_are_never_an_apps() {
    let app = TestApp::spawn_with(|raw| raw.identity.audience = OWN.to_owned()).await;
    let operator = app.operator_token().await;
    assert_eq!(token_claims(&operator)["aud"], OPERATORS);
    let owner = app.signup_login("owner@example.com", "laptop").await;
    assert_eq!(token_claims(&owner.access)["aud"], OWN);
    for own in [OWN, OPERATORS] {
        let res = register(&app, &operator, "Mine", own).await;
        let body = expect_problem(res, 422, "validation_failed").await;
        assert_eq!(body["field"], "audience", "{own}");
    }
    // Anything else URI-shaped is an app's.
    assert_eq!(
        register(&app, &operator, "Other", "urn:gh:other")
            .await
            .status(),
        201
    );
    let res = refresh(&app, &owner.refresh, Some(OPERATORS)).await;
    expect_problem(res, 400, "invalid_target").await;
    let res = verify(&app, &operator, &format!("?audience={OPERATORS}")).await;
    expect_problem(res, 403, "wrong_audience").await;
    // Its own audience asked for is the tenant API's check.
    let res = verify(&app, &owner.access, &format!("?audience={OWN}")).await;
    assert_eq!(res.status(), 200);
    app.stop().await;
}

/// An app registered while Gatehouse's audience was another is checked against today's settings
/// when a token is signed for it: once it equals the operators' audience, no token is issued.
#[tokio::test]
async fn an_app_that_became_gatehouses_own_audience_gets_no_token() {
    let first = TestApp::spawn_with(|raw| raw.identity.audience = "urn:gh:old".to_owned()).await;
    let operator = first.operator_token().await;
    assert_eq!(
        register(&first, &operator, "Clash", OPERATORS)
            .await
            .status(),
        201
    );
    let owner = first.signup_login("owner@example.com", "laptop").await;
    let dir = first.stop_keeping_data().await;
    let app = TestApp::spawn_in(dir, |raw| raw.identity.audience = OWN.to_owned()).await;
    let res = refresh(&app, &owner.refresh, Some(OPERATORS)).await;
    expect_problem(res, 400, "invalid_target").await;
    // Nothing rotated: the refresh token still gives a token for Gatehouse.
    let res = refresh(&app, &owner.refresh, None).await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        token_claims(body["access_token"].as_str().unwrap())["aud"],
        OWN
    );
    app.stop().await;
}

/// Two registrations that differ only in the case of the scheme or host, or a trailing slash,
/// are the same app; an audience is printable ASCII.
#[tokio::test]
async fn near_duplicate_and_non_ascii_audiences_are_refused() {
    let app = TestApp::spawn().await;
    let operator = app.operator_token().await;
    assert_eq!(
        register(&app, &operator, "Billing", BILLING).await.status(),
        201
    );
    for same in [
        "HTTPS://Billing.Example.com",
        "https://billing.example.com/",
    ] {
        let res = register(&app, &operator, "Again", same).await;
        expect_problem(res, 409, "conflict").await;
    }
    // A different path is a different app.
    assert_eq!(
        register(
            &app,
            &operator,
            "Path",
            "https://billing.example.com/Reports"
        )
        .await
        .status(),
        201
    );
    let res = register(&app, &operator, "Accent", "https://bïlling.example.com").await;
    let body = expect_problem(res, 422, "validation_failed").await;
    assert_eq!(body["field"], "audience");
    // A resource longer than any audience is refused before the registry is read.
    let owner: Signed = app.signup_login("owner@example.com", "laptop").await;
    let long = format!("https://{}.example.com", "a".repeat(300));
    let res = refresh(&app, &owner.refresh, Some(&long)).await;
    expect_problem(res, 400, "invalid_target").await;
    app.stop().await;
}

/// The posture report's B2 control.
async fn b2(app: &TestApp) -> Value {
    let token = app.operator_token().await;
    let report: Value = app
        .call(Method::GET, "/admin/v1/posture", &token, None, None)
        .await
        .json()
        .await
        .unwrap();
    report["controls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "B2")
        .unwrap()
        .clone()
}

/// Bindings are not looked up at load: posture control B2 warns about a service bound to an
/// audience no app is registered with, until an operator registers it.
#[tokio::test]
async fn b2_warns_while_a_bound_audience_is_not_registered() {
    let app = with_services(true).await;
    let operator = app.operator_token().await;
    assert_eq!(
        register(&app, &operator, "Billing", BILLING).await.status(),
        201
    );
    let control = b2(&app).await;
    assert_eq!(control["verdict"], "warn", "{control}");
    assert!(
        control["evidence"].as_str().unwrap().contains(REPORTS),
        "{control}"
    );
    assert_eq!(
        register(&app, &operator, "Reports", REPORTS).await.status(),
        201
    );
    let control = b2(&app).await;
    assert_eq!(control["verdict"], "pass", "{control}");
    app.stop().await;
}

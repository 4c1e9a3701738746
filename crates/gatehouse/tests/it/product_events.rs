//! The product's own events in the audit log (E1): ingested through the service API on behalf of
//! members and keys, with actor, action, resource, IP and request id, on a chain that verifies;
//! refused, with nothing written, when they name another organisation's people, keys, secrets or
//! records or pose as Gatehouse's own. Reading an audit export and using an API key are recorded
//! too.

use reqwest::Method;
use serde_json::{Value, json};

use crate::product::declare_reports;
use crate::support::{Signed, TestApp, expect_problem};

const S1: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";

async fn with_service() -> TestApp {
    let dir = crate::support::temp_dir();
    let f = dir.join("reporting.key");
    std::fs::write(&f, S1).unwrap();
    std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    TestApp::spawn_in(dir, |raw| {
        declare_reports(raw);
        raw.service_auth.secret_files = vec![f];
    })
    .await
}

async fn ingest(app: &TestApp, body: Value) -> reqwest::Response {
    app.client
        .post(app.url("/internal/v1/audit-events"))
        .header("x-service-auth", S1)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn api_key(app: &TestApp, owner: &Signed) -> (String, String) {
    let res = app
        .org_call(
            Method::POST,
            "/v1/api-keys",
            owner,
            Some(json!({"name": "reports", "permissions": ["audit.read"]})),
        )
        .await;
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    (
        body["id"].as_str().unwrap().to_owned(),
        body["key"].as_str().unwrap().to_owned(),
    )
}

async fn log(app: &TestApp, who: &Signed, query: &str) -> Vec<Value> {
    let res = app
        .org_call(
            Method::GET,
            &format!("/v1/audit-logs?limit=200{query}"),
            who,
            None,
        )
        .await;
    assert_eq!(res.status(), 200);
    res.json::<Value>().await.unwrap()["items"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn product_events_land_on_the_chain_with_actor_resource_ip_and_request_id() {
    let app = with_service().await;
    let owner = app.signup_login("owner@example.com", "laptop").await;
    let (key_id, _) = api_key(&app, &owner).await;
    let res = app
        .org_call(
            Method::POST,
            "/v1/records",
            &owner,
            Some(json!({"type": "report", "external_id": "q3", "level": "organization"})),
        )
        .await;
    assert_eq!(res.status(), 201);

    let res = ingest(
        &app,
        json!({"organization_id": owner.org, "events": [
            {"actor": {"user_id": owner.user}, "action": "report.run",
             "resource": {"type": "report", "id": "q3"},
             "detail": {"rows": 120}, "request_id": "prod-req-1",
             "ip": "203.0.113.7", "user_agent": "ReportsApp/2.1"},
            {"actor": {"api_key_id": key_id}, "action": "memory.export",
             "resource": {"type": "memory", "id": "m-77"}, "outcome": "denied",
             "ip": "2001:db8::5"},
        ]}),
    )
    .await;
    assert_eq!(res.status(), 201, "{:?}", res.text().await);
    assert_eq!(res.json::<Value>().await.unwrap()["appended"], 2);
    // One event alone, without a request id of its own: it carries this request's.
    let res = ingest(
        &app,
        json!({"organization_id": owner.org, "event":
            {"actor": {"user_id": owner.user}, "action": "report.shared",
             "resource": {"type": "organization", "id": owner.org}}}),
    )
    .await;
    assert_eq!(res.status(), 201);
    let request_id = res.headers()["x-request-id"].to_str().unwrap().to_owned();

    let events = log(&app, &owner, "").await;
    let find = |action: &str| {
        events
            .iter()
            .find(|e| e["action"] == action)
            .cloned()
            .unwrap_or_else(|| panic!("no {action} in {events:#?}"))
    };
    let run = find("report.run");
    assert_eq!(run["actor"]["type"], "user", "{run}");
    assert_eq!(run["actor"]["id"], owner.user.as_str());
    assert_eq!(run["resource"], json!({"type": "report", "id": "q3"}));
    assert_eq!(run["outcome"], "success");
    assert_eq!(run["request_id"], "prod-req-1");
    assert_eq!(run["ip"], "203.0.113.7");
    assert_eq!(run["user_agent"], "ReportsApp/2.1");
    assert_eq!(run["details"]["detail"], json!({"rows": 120}));
    assert_eq!(run["details"]["service"], "reporting");
    let export = find("memory.export");
    assert_eq!(export["actor"]["type"], "api_key");
    assert_eq!(export["actor"]["id"], key_id.as_str());
    assert_eq!(export["outcome"], "denied");
    assert_eq!(export["ip"], "2001:db8::5");
    let shared = find("report.shared");
    assert_eq!(shared["request_id"], request_id.as_str());
    assert!(shared["ip"].is_null());
    // At rest the address is sealed, not stored in the clear.
    let raw = app.audit_events(&owner.org).await;
    let stored = raw.iter().find(|e| e.action == "report.run").unwrap();
    assert!(!stored.details.contains("203.0.113.7"));
    assert!(
        !stored
            .personal
            .as_ref()
            .unwrap()
            .windows(11)
            .any(|w| w == b"203.0.113.7")
    );
    app.chain_verifies(&owner.org).await;
}

#[tokio::test]
async fn an_event_naming_another_organisations_resources_is_refused_and_nothing_is_written() {
    let app = with_service().await;
    let a = app.signup_login("a@example.com", "laptop").await;
    let b = app.signup_login("b@example.com", "laptop").await;
    let (b_key, _) = api_key(&app, &b).await;
    let res = app
        .org_call(
            Method::POST,
            "/v1/records",
            &b,
            Some(json!({"type": "report", "external_id": "b-only", "level": "public"})),
        )
        .await;
    assert_eq!(res.status(), 201);
    let res = app
        .org_call(
            Method::POST,
            "/v1/secrets",
            &b,
            Some(json!({"name": "b-secret", "value": "v"})),
        )
        .await;
    let b_secret = res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = log(&app, &a, "").await.len();
    let ok = json!({"actor": {"user_id": a.user}, "action": "report.run",
                    "resource": {"type": "widget", "id": "w1"}});
    let with = |field: &str, value: Value| {
        let mut e = ok.clone();
        e[field] = value;
        e
    };
    for (bad, field) in [
        (with("actor", json!({"user_id": b.user})), "actor"),
        (with("actor", json!({"api_key_id": b_key})), "actor"),
        (
            with("actor", json!({"user_id": a.user, "api_key_id": b_key})),
            "actor",
        ),
        (
            with("resource", json!({"type": "user", "id": b.user})),
            "resource",
        ),
        (
            with("resource", json!({"type": "api_key", "id": b_key})),
            "resource",
        ),
        (
            with("resource", json!({"type": "secret", "id": b_secret})),
            "resource",
        ),
        (
            with("resource", json!({"type": "report", "id": "b-only"})),
            "resource",
        ),
        (
            with("resource", json!({"type": "organization", "id": b.org})),
            "resource",
        ),
        (with("action", json!("user.login")), "action"),
        (with("action", json!("record.purged")), "action"),
        (with("action", json!("Report.Run")), "action"),
        (with("outcome", json!("maybe")), "outcome"),
        (with("ip", json!("not-an-ip")), "ip"),
        (with("detail", json!({"big": "x".repeat(5000)})), "detail"),
    ] {
        // A good event first: the call is all or nothing.
        let res = ingest(&app, json!({"organization_id": a.org, "events": [ok, bad]})).await;
        let problem = expect_problem(res, 422, "validation_failed").await;
        let text = problem.to_string();
        assert!(text.contains(field), "{field}: {text}");
    }
    for body in [
        json!({"organization_id": a.org, "events": []}),
        json!({"organization_id": a.org, "event": ok, "events": [ok]}),
        json!({"organization_id": a.org}),
    ] {
        expect_problem(ingest(&app, body).await, 422, "validation_failed").await;
    }
    let unknown = uuid::Uuid::new_v4();
    let res = ingest(&app, json!({"organization_id": unknown, "event": ok})).await;
    expect_problem(res, 404, "not_found").await;
    let res = app
        .client
        .post(app.url("/internal/v1/audit-events"))
        .header(
            "x-service-auth",
            "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=",
        )
        .json(&json!({"organization_id": a.org, "event": ok}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    // Nothing of any refused call reached A's log; the same event alone is accepted.
    assert_eq!(log(&app, &a, "").await.len(), before);
    let res = ingest(&app, json!({"organization_id": a.org, "event": ok})).await;
    assert_eq!(res.status(), 201);
    assert_eq!(log(&app, &a, "").await.len(), before + 1);
}

#[tokio::test]
async fn an_audit_export_and_a_keys_use_are_recorded() {
    let app = with_service().await;
    let owner = app.signup_login("owner@example.com", "laptop").await;
    let res = app
        .org_call(
            Method::GET,
            "/v1/audit-logs/export?action=member.",
            &owner,
            None,
        )
        .await;
    assert_eq!(res.status(), 200);
    let _ = res.text().await.unwrap();
    let exported = log(&app, &owner, "&action=audit.exported").await;
    assert_eq!(exported.len(), 1, "{exported:#?}");
    assert_eq!(exported[0]["actor"]["id"], owner.user.as_str());
    assert_eq!(exported[0]["details"]["filter"]["action"], "member.");

    // Five requests with a key: one aggregated event once usage is flushed, not five rows.
    let (key_id, key) = api_key(&app, &owner).await;
    for _ in 0..5 {
        let res = app
            .call(Method::GET, "/v1/audit-logs", &key, Some(&owner.org), None)
            .await;
        assert_eq!(res.status(), 200);
    }
    assert_eq!(app.kernel.api_keys().flush_usage().await.unwrap(), 1);
    let used = log(&app, &owner, "&action=api_key.used").await;
    assert_eq!(used.len(), 1, "{used:#?}");
    assert_eq!(used[0]["actor"]["id"], key_id.as_str());
    assert_eq!(used[0]["details"]["uses"], 5);
    // Nothing new since: no event at the next flush.
    assert_eq!(app.kernel.api_keys().flush_usage().await.unwrap(), 0);
    app.chain_verifies(&owner.org).await;
}

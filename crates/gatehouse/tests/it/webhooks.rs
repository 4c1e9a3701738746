//! Standard Webhooks over HTTP (issue 21, F3): signatures verified by the official libraries for
//! Python and JavaScript on receivers the tests start; a failing receiver gets the event later,
//! acknowledged exactly once, every attempt in the delivery log; a receiver down past the disable
//! period gets its endpoint disabled (an event, a mail); destinations resolving to forbidden
//! addresses are refused at creation and at delivery (a local DNS server answers a
//! public-looking name with a private address); rotation signs with both secrets.

use reqwest::Method;
use serde_json::{Value, json};

use crate::interop::{DnsServer, Received, WebhookReceiver, free_port};
use crate::support::{Signed, TestApp, expect_problem};

pub(crate) const S1: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";

pub(crate) async fn app_with(edit: impl FnOnce(&mut gatehouse::config::RawConfig)) -> TestApp {
    let dir = crate::support::temp_dir();
    let f = dir.join("billing.key");
    std::fs::write(&f, S1).unwrap();
    std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    TestApp::spawn_in(dir, move |raw| {
        raw.service_auth.secret_files = vec![f];
        raw.webhooks.allow_http = true;
        raw.webhooks.allow_loopback = true;
        raw.webhooks.poll_interval_ms = 100;
        raw.webhooks.retry_waits_secs = vec![1, 1, 1];
        raw.webhooks.product_event_types = vec!["invoice.paid".into(), "report.ready".into()];
        edit(raw);
    })
    .await
}

async fn endpoint(app: &TestApp, who: &Signed, url: &str, types: &[&str]) -> reqwest::Response {
    app.org_call(
        Method::POST,
        "/v1/webhooks/endpoints",
        who,
        Some(json!({"url": url, "event_types": types})),
    )
    .await
}

async fn created(app: &TestApp, who: &Signed, url: &str, types: &[&str]) -> Value {
    let res = endpoint(app, who, url, types).await;
    assert_eq!(res.status(), 201, "{:?}", res.text().await);
    res.json().await.unwrap()
}

pub(crate) async fn publish(app: &TestApp, org: &str, events: Value) -> Value {
    let res = app
        .client
        .post(app.url("/internal/v1/events"))
        .header("x-service-auth", S1)
        .json(&json!({"organization_id": org, "events": events}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202, "{:?}", res.text().await);
    res.json().await.unwrap()
}

async fn attempts(app: &TestApp, who: &Signed, endpoint: &str) -> Vec<Value> {
    let res = app
        .org_call(
            Method::GET,
            &format!("/v1/webhooks/endpoints/{endpoint}/attempts"),
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

fn acknowledged(r: &[Received], id: &str) -> usize {
    r.iter()
        .filter(|x| x.id == id && (200..300).contains(&x.status))
        .count()
}

#[tokio::test]
async fn official_libraries_verify_and_a_failing_receiver_gets_it_later_exactly_once() {
    let app = app_with(|_| {}).await;
    let owner = app.signup_login("owner@example.com", "laptop").await;
    let py = WebhookReceiver::python(2);
    let js = WebhookReceiver::node();
    let a = created(&app, &owner, &py.url("/hooks"), &["invoice.paid"]).await;
    let secret_a = a["secret"].as_str().unwrap();
    assert!(secret_a.starts_with("whsec_"), "{secret_a}");
    py.set_secrets(&[secret_a]);
    let b = created(
        &app,
        &owner,
        &js.url("/in"),
        &["invoice.paid", "member.added"],
    )
    .await;
    js.set_secrets(&[b["secret"].as_str().unwrap()]);
    // A listing never shows a secret.
    let res = app
        .org_call(Method::GET, "/v1/webhooks/endpoints", &owner, None)
        .await;
    let text = res.text().await.unwrap();
    assert!(!text.contains("whsec_"), "{text}");

    let published = publish(
        &app,
        &owner.org,
        json!([{"type": "invoice.paid", "data": {"invoice": "in_1", "cents": 4200}}]),
    )
    .await;
    assert_eq!(published, json!({"accepted": 1, "deliveries": 2}));
    // Gatehouse's own event: a member joins.
    app.add_member(&owner, "member@example.com", "member").await;

    let seen = js
        .wait_until("both events, verified", |r| {
            r.iter().filter(|x| x.verified).count() >= 2
        })
        .await;
    let mut kinds: Vec<_> = seen.iter().filter_map(|x| x.kind.clone()).collect();
    kinds.sort();
    assert_eq!(kinds, ["invoice.paid", "member.added"]);

    // The Python receiver refuses twice; each retry falls due a second later (this test's
    // schedule), by the injected clock.
    py.wait_until("the first attempt", |r| !r.is_empty()).await;
    for n in 2..=3 {
        app.clock.advance(time::Duration::seconds(2));
        py.wait_until("the next attempt", |r| r.len() >= n).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let got = py.received();
    assert_eq!(got.len(), 3, "{got:#?}");
    assert!(got.iter().all(|x| x.verified), "{got:#?}");
    let id = got[0].id.clone();
    assert!(
        got.iter().all(|x| x.id == id),
        "one webhook-id across retries"
    );
    assert_eq!(
        got.iter().map(|x| x.status).collect::<Vec<_>>(),
        [500, 500, 204]
    );
    assert_eq!(acknowledged(&got, &id), 1);
    // The log has every attempt, newest first.
    let log = attempts(&app, &owner, a["id"].as_str().unwrap()).await;
    let statuses: Vec<_> = log.iter().map(|x| x["status"].as_u64().unwrap()).collect();
    assert_eq!(statuses, [204, 500, 500]);
    assert!(log.iter().all(|x| x["message_id"] == id.as_str()));
    // Nothing more comes once acknowledged.
    app.clock.advance(time::Duration::seconds(10));
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(py.received().len(), 3);

    // A replay sends it again, with the same webhook-id.
    let delivery = log[0]["delivery_id"].as_str().unwrap();
    let res = app
        .org_call(
            Method::POST,
            &format!(
                "/v1/webhooks/endpoints/{}/deliveries/{delivery}/replay",
                a["id"].as_str().unwrap()
            ),
            &owner,
            None,
        )
        .await;
    assert_eq!(res.status(), 202);
    py.wait_until("the replay", |r| r.len() == 4).await;
    assert_eq!(py.received()[3].id, id);

    // Rotation: both secrets sign during the overlap, so a receiver still holding the old one
    // verifies, and one that switched verifies too.
    let res = app
        .org_call(
            Method::POST,
            &format!(
                "/v1/webhooks/endpoints/{}/rotate-secret",
                a["id"].as_str().unwrap()
            ),
            &owner,
            Some(json!({"overlap_seconds": 3600})),
        )
        .await;
    assert_eq!(res.status(), 200);
    let rotated: Value = res.json().await.unwrap();
    let new_secret = rotated["secret"].as_str().unwrap();
    assert_ne!(new_secret, secret_a);
    publish(
        &app,
        &owner.org,
        json!([{"type": "invoice.paid", "data": {"invoice": "in_2"}}]),
    )
    .await;
    let r = py
        .wait_until("the event after rotation", |r| r.len() == 5)
        .await;
    assert!(r[4].verified && r[4].signatures == 2, "{:?}", r[4]);
    py.set_secrets(&[new_secret]);
    publish(
        &app,
        &owner.org,
        json!([{"type": "invoice.paid", "data": {"invoice": "in_3"}}]),
    )
    .await;
    let r = py
        .wait_until("an event verified by the new secret", |r| r.len() == 6)
        .await;
    assert!(r[5].verified, "{:?}", r[5]);

    let events = app.audit_events(&owner.org).await;
    for action in [
        "webhook.endpoint_created",
        "webhook.events_published",
        "webhook.secret_rotated",
        "webhook.delivery_replayed",
    ] {
        assert!(events.iter().any(|e| e.action == action), "{action}");
    }
    app.chain_verifies(&owner.org).await;
    app.stop().await;
}

#[tokio::test]
async fn forbidden_destinations_are_refused_at_creation_and_at_delivery() {
    let dns = DnsServer::start(&json!({
        "hooks.public-looking.test.": {"A": ["10.0.0.1"]},
        "meta.public-looking.test.": {"A": ["93.184.216.34", "169.254.169.254"]},
        "rebind.public-looking.test.": {"A": ["93.184.216.34"]},
        "rebind-10.public-looking.test.": {"A": ["93.184.216.34"]},
        "rebind-meta.public-looking.test.": {"A": ["93.184.216.34"]},
        "rebind-v6.public-looking.test.": {"A": ["93.184.216.34"]},
        "v6.public-looking.test.": {"AAAA": ["::1"]},
    }));
    let dns_addr = dns.address();
    let app = app_with(move |raw| {
        raw.webhooks.allow_loopback = false;
        raw.webhooks.dns_servers = vec![dns_addr];
    })
    .await;
    let owner = app.signup_login("owner@example.com", "laptop").await;
    let port = free_port();
    for url in [
        format!("http://127.0.0.1:{port}/"),
        "http://10.0.0.1/".to_owned(),
        "http://169.254.169.254/latest/meta-data".to_owned(),
        format!("http://[::1]:{port}/"),
        "http://hooks.public-looking.test/".to_owned(),
        "http://meta.public-looking.test/".to_owned(),
        "http://v6.public-looking.test/".to_owned(),
        "http://nowhere.public-looking.test/".to_owned(),
        "ftp://hooks.example.com/".to_owned(),
        "http://user:pw@rebind.public-looking.test/".to_owned(),
    ] {
        let problem = expect_problem(
            endpoint(&app, &owner, &url, &["invoice.paid"]).await,
            422,
            "validation_failed",
        )
        .await;
        assert_eq!(problem["field"], "url", "{url}");
    }
    expect_problem(
        endpoint(
            &app,
            &owner,
            "http://rebind.public-looking.test/",
            &["invoice.nope"],
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    let res = app
        .org_call(Method::GET, "/v1/webhooks/endpoints", &owner, None)
        .await;
    assert_eq!(
        res.json::<Value>().await.unwrap()["items"],
        json!([]),
        "a refused endpoint was stored"
    );

    // Names that resolved to a public address at creation and, at delivery, to loopback,
    // 10.0.0.1, the metadata address and ::1: each attempt is refused before any connection (a
    // receiver listening on loopback hears nothing).
    let listener = WebhookReceiver::python(0);
    let mut rebound = Vec::new();
    for (name, internal) in [
        ("rebind", "127.0.0.1"),
        ("rebind-10", "10.0.0.1"),
        ("rebind-meta", "169.254.169.254"),
        ("rebind-v6", "::1"),
    ] {
        let e = created(
            &app,
            &owner,
            &format!("http://{name}.public-looking.test:{}/", listener.port),
            &["invoice.paid"],
        )
        .await;
        rebound.push((e["id"].as_str().unwrap().to_owned(), internal));
    }
    dns.set_zone(&json!({
        "rebind.public-looking.test.": {"A": ["127.0.0.1"]},
        "rebind-10.public-looking.test.": {"A": ["10.0.0.1"]},
        "rebind-meta.public-looking.test.": {"A": ["169.254.169.254"]},
        "rebind-v6.public-looking.test.": {"AAAA": ["::1"]},
    }));
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    publish(
        &app,
        &owner.org,
        json!([{"type": "invoice.paid", "data": {}}]),
    )
    .await;
    for (id, internal) in &rebound {
        let mut log = Vec::new();
        for _ in 0..100 {
            log = attempts(&app, &owner, id).await;
            if !log.is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(log.len(), 1, "{internal}: {log:#?}");
        assert!(log[0]["status"].is_null(), "{internal}");
        let error = log[0]["error"].as_str().unwrap();
        assert!(
            error.starts_with("destination refused"),
            "{internal}: {error}"
        );
        assert!(
            !error.contains(internal),
            "the log tells the internal address: {error}"
        );
    }
    assert!(
        listener.received().is_empty(),
        "a refused destination was contacted"
    );
    app.stop().await;

    // With loopback allowed (development), loopback passes and private addresses still do not.
    let app = app_with(|_| {}).await;
    let owner = app.signup_login("owner@example.com", "laptop").await;
    created(
        &app,
        &owner,
        &format!("http://127.0.0.1:{port}/"),
        &["invoice.paid"],
    )
    .await;
    expect_problem(
        endpoint(&app, &owner, "http://10.0.0.1/", &["invoice.paid"]).await,
        422,
        "validation_failed",
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn a_receiver_down_past_the_disable_period_gets_its_endpoint_disabled() {
    let app = app_with(|raw| {
        raw.webhooks.disable_after_hours = 1;
        raw.webhooks.retry_waits_secs = vec![60; 5];
    })
    .await;
    let owner = app.signup_login("owner@example.com", "laptop").await;
    let watcher = WebhookReceiver::python(0);
    let w = created(
        &app,
        &owner,
        &watcher.url("/"),
        &["webhook.endpoint_disabled"],
    )
    .await;
    watcher.set_secrets(&[w["secret"].as_str().unwrap()]);
    let down = free_port();
    let e = created(
        &app,
        &owner,
        &format!("http://127.0.0.1:{down}/"),
        &["invoice.paid"],
    )
    .await;
    let id = e["id"].as_str().unwrap().to_owned();
    publish(
        &app,
        &owner.org,
        json!([{"type": "invoice.paid", "data": {}}]),
    )
    .await;
    let mut failing = Value::Null;
    for _ in 0..100 {
        let res = app
            .org_call(
                Method::GET,
                &format!("/v1/webhooks/endpoints/{id}"),
                &owner,
                None,
            )
            .await;
        failing = res.json().await.unwrap();
        if !failing["failing_since"].is_null() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(!failing["failing_since"].is_null(), "{failing}");
    assert_eq!(failing["enabled"], true);
    // Still failing an hour later: disabled at the next failed attempt.
    app.clock.advance(time::Duration::minutes(61));
    // (The access token expired meanwhile.)
    let owner = app
        .login(
            "owner@example.com",
            crate::support::PASSWORD,
            "laptop",
            &owner.user,
        )
        .await;
    let mut after = Value::Null;
    for _ in 0..100 {
        let res = app
            .org_call(
                Method::GET,
                &format!("/v1/webhooks/endpoints/{id}"),
                &owner,
                None,
            )
            .await;
        after = res.json().await.unwrap();
        if after["enabled"] == false {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(after["enabled"], false, "{after}");
    assert!(
        after["disabled_reason"]
            .as_str()
            .unwrap()
            .contains("failed")
    );
    // The organisation's other endpoint hears of it (its own signature checks out), and the
    // owner is mailed.
    let r = watcher
        .wait_until("the disabled event", |r| !r.is_empty())
        .await;
    assert_eq!(r[0].kind.as_deref(), Some("webhook.endpoint_disabled"));
    let mail_dir = app.dir.join("data").join("mail");
    let mut mailed = false;
    for _ in 0..100 {
        mailed = std::fs::read_dir(&mail_dir)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .any(|e| {
                let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                text.contains("To: owner@example.com")
                    && text.contains("webhook endpoint was disabled")
            });
        if mailed {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(mailed, "the owner was not mailed");
    let events = app.audit_events(&owner.org).await;
    assert!(
        events
            .iter()
            .any(|x| x.action == "webhook.endpoint_disabled")
    );
    // Disabled: new events are not queued for it; enabling it starts over.
    let published = publish(
        &app,
        &owner.org,
        json!([{"type": "invoice.paid", "data": {}}]),
    )
    .await;
    assert_eq!(published["deliveries"], 0);
    let res = app
        .org_call(
            Method::PATCH,
            &format!("/v1/webhooks/endpoints/{id}"),
            &owner,
            Some(json!({"enabled": true})),
        )
        .await;
    let back: Value = res.json().await.unwrap();
    assert_eq!(
        (back["enabled"].clone(), back["failing_since"].clone()),
        (json!(true), Value::Null)
    );
    app.stop().await;
}

#[tokio::test]
async fn only_webhook_managers_reach_endpoints_and_bad_events_are_refused() {
    let app = app_with(|_| {}).await;
    let owner = app.signup_login("owner@example.com", "laptop").await;
    let member = app.add_member(&owner, "member@example.com", "member").await;
    expect_problem(
        endpoint(&app, &member, "http://127.0.0.1:9/", &["invoice.paid"]).await,
        403,
        "forbidden",
    )
    .await;
    let res = app
        .client
        .post(app.url("/internal/v1/events"))
        .header("x-service-auth", S1)
        .json(&json!({"organization_id": owner.org, "events": [{"type": "member.added", "data": {}}]}))
        .send()
        .await
        .unwrap();
    expect_problem(res, 422, "validation_failed").await;
    let res = app
        .client
        .post(app.url("/internal/v1/events"))
        .header("x-service-auth", S1)
        .json(&json!({"organization_id": owner.org, "events": [{"type": "invoice.paid", "data": [1]}]}))
        .send()
        .await
        .unwrap();
    expect_problem(res, 422, "validation_failed").await;
    let types = app
        .org_call(Method::GET, "/v1/webhooks/event-types", &owner, None)
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(types["product"], json!(["invoice.paid", "report.ready"]));
    assert!(
        types["gatehouse"]
            .as_array()
            .unwrap()
            .contains(&json!("member.added"))
    );
    app.stop().await;
}

//! Share links over HTTP (issue 21, F1): a password locks out with growing delays, a revoked or
//! re-passworded link ends the viewer passes it gave on their next request (on another instance
//! too), an expired link is refused by the injected clock, views are bounded, and every open,
//! failure and revocation is on the organisation's chain.

use reqwest::Method;
use serde_json::{Value, json};

use crate::product::declare_reports;
use crate::support::{Signed, TestApp, expect_problem};

fn header(res: &reqwest::Response, name: &str) -> String {
    res.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

fn in_secs(app: &TestApp, secs: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(app.clock_secs() + secs).unwrap();
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

async fn record(app: &TestApp, who: &Signed, external: &str, level: &str) -> String {
    let res = app
        .org_call(
            Method::POST,
            "/v1/records",
            who,
            Some(
                json!({"type": "report", "external_id": external, "level": level,
                        "content": {"figure": 42}}),
            ),
        )
        .await;
    assert_eq!(res.status(), 201, "{:?}", res.text().await);
    res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn share(app: &TestApp, who: &Signed, record: &str, body: Value) -> reqwest::Response {
    app.org_call(
        Method::POST,
        &format!("/v1/records/{record}/share-links"),
        who,
        Some(body),
    )
    .await
}

async fn shared(app: &TestApp, who: &Signed, record: &str, body: Value) -> Value {
    let res = share(app, who, record, body).await;
    assert_eq!(res.status(), 201, "{:?}", res.text().await);
    res.json().await.unwrap()
}

async fn open(app: &TestApp, token: &str, password: Option<&str>) -> reqwest::Response {
    let body = match password {
        Some(p) => json!({ "password": p }),
        None => json!({}),
    };
    app.post_json(&format!("/v1/share/{token}"), &body).await
}

async fn pass(app: &TestApp, token: &str, password: Option<&str>) -> String {
    let res = open(app, token, password).await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    res.json::<Value>().await.unwrap()["viewer_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn view(app: &TestApp, pass: &str) -> reqwest::Response {
    app.client
        .get(app.url("/v1/share/record"))
        .bearer_auth(pass)
        .send()
        .await
        .unwrap()
}

fn actions(events: &[gatehouse_core::audit::AuditRecord]) -> Vec<String> {
    events.iter().map(|e| e.action.clone()).collect()
}

#[tokio::test]
async fn a_password_locks_out_with_growing_delays_and_a_revoked_link_ends_its_viewers() {
    let app = TestApp::spawn_with(|raw| {
        declare_reports(raw);
        raw.rate_limits.enabled = true;
        raw.rate_limits.per_ip.auth = 1000;
    })
    .await;
    let owner = app.signup_login("owner@example.com", "laptop").await;
    let id = record(&app, &owner, "r1", "private").await;
    let link = shared(
        &app,
        &owner,
        &id,
        json!({"password": "correct horse battery", "expires_at": in_secs(&app, 3600)}),
    )
    .await;
    let token = link["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("gsl_") && token.len() == 47, "{token}");
    assert_eq!(link["password"], true);

    // No password: asked for one, and nothing counted.
    expect_problem(open(&app, &token, None).await, 401, "unauthenticated").await;
    for _ in 0..5 {
        expect_problem(
            open(&app, &token, Some("wrong guess 1")).await,
            401,
            "invalid_credentials",
        )
        .await;
    }
    // Locked: even the right password waits, for a delay that doubles with each new failure.
    let res = open(&app, &token, Some("correct horse battery")).await;
    assert_eq!(header(&res, "retry-after"), "2");
    expect_problem(res, 429, "too_many_attempts").await;
    app.clock.advance(time::Duration::seconds(2));
    expect_problem(
        open(&app, &token, Some("wrong guess 2")).await,
        401,
        "invalid_credentials",
    )
    .await;
    let res = open(&app, &token, Some("correct horse battery")).await;
    assert_eq!(header(&res, "retry-after"), "4");
    expect_problem(res, 429, "too_many_attempts").await;
    app.clock.advance(time::Duration::seconds(4));

    let viewer = pass(&app, &token, Some("correct horse battery")).await;
    let res = view(&app, &viewer).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["id"], id.as_str());
    assert_eq!(body["content"], json!({"figure": 42}));
    assert_eq!(
        body["via"],
        format!("share_link:{}", link["id"].as_str().unwrap())
    );

    // Listing shows the link without its token or digest.
    let res = app
        .org_call(
            Method::GET,
            &format!("/v1/records/{id}/share-links"),
            &owner,
            None,
        )
        .await;
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    assert!(!text.contains(&token[4..]), "a listing carried the token");
    let listed: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(listed["items"][0]["views"], 1);
    assert!(listed["items"][0].get("token").is_none());

    // Revoked: the pass already open is refused on its next request, the link on its next open.
    let link_id = link["id"].as_str().unwrap();
    let res = app
        .org_call(
            Method::DELETE,
            &format!("/v1/records/{id}/share-links/{link_id}"),
            &owner,
            None,
        )
        .await;
    assert_eq!(res.status(), 204);
    expect_problem(view(&app, &viewer).await, 401, "unauthenticated").await;
    expect_problem(
        open(&app, &token, Some("correct horse battery")).await,
        410,
        "link_ended",
    )
    .await;

    // Refused opens are counted per link, reason, source and minute (`audit::security`):
    // written once their minute is, here every minute at once.
    app.kernel.flush_security_events(true).await.unwrap();
    let events = app.audit_events(&owner.org).await;
    let seen = actions(&events);
    for action in [
        "record.shared",
        "share_link.open_failed",
        "share_link.opened",
        "share_link.revoked",
    ] {
        assert!(
            seen.iter().any(|a| a == action),
            "{action} missing: {seen:?}"
        );
    }
    let mut failed: std::collections::BTreeMap<String, u64> = Default::default();
    for e in events
        .iter()
        .filter(|e| e.action == "share_link.open_failed")
    {
        assert_eq!(e.resource_type, "share_link");
        assert_eq!(e.resource_id, link_id);
        assert_eq!(e.outcome, "denied");
        let d: Value = serde_json::from_str(&e.details).unwrap();
        *failed
            .entry(d["reason"].as_str().unwrap().to_owned())
            .or_default() += d["count"].as_u64().unwrap();
    }
    // One without a password, six wrong ones, two locked attempts, one open after revocation.
    assert_eq!(failed.values().sum::<u64>(), 10, "{failed:?}");
    assert_eq!(failed["password_required"], 1, "{failed:?}");
    assert_eq!(failed["wrong_password"], 6, "{failed:?}");
    assert_eq!(failed["locked"], 2, "{failed:?}");
    assert_eq!(failed["revoked"], 1, "{failed:?}");

    // A password link past its expiry (the injected clock): refused even with the password,
    // and the pass it gave ends with it.
    let timed = shared(
        &app,
        &owner,
        &id,
        json!({"password": "a second secret phrase", "expires_at": in_secs(&app, 60)}),
    )
    .await;
    let timed_token = timed["token"].as_str().unwrap();
    let timed_pass = pass(&app, timed_token, Some("a second secret phrase")).await;
    assert_eq!(view(&app, &timed_pass).await.status(), 200);
    app.clock.advance(time::Duration::seconds(60));
    expect_problem(
        open(&app, timed_token, Some("a second secret phrase")).await,
        410,
        "link_ended",
    )
    .await;
    expect_problem(view(&app, &timed_pass).await, 401, "unauthenticated").await;
    app.chain_verifies(&owner.org).await;
    app.stop().await;
}

#[tokio::test]
async fn a_password_change_ends_viewers_on_another_instance_and_expiry_and_views_end_links() {
    let one = TestApp::spawn_with(declare_reports).await;
    let two =
        TestApp::spawn_in_with_clock(one.dir.clone(), one.clock.clone(), declare_reports).await;
    let owner = one.signup_login("owner@example.com", "laptop").await;
    let id = record(&one, &owner, "r1", "organization").await;
    let link = shared(
        &one,
        &owner,
        &id,
        json!({"expires_at": in_secs(&one, 600), "max_views": 2}),
    )
    .await;
    let token = link["token"].as_str().unwrap().to_owned();
    assert_eq!(link["password"], false);
    // Opened on one instance, read on the other.
    let viewer = pass(&one, &token, None).await;
    assert_eq!(view(&two, &viewer).await.status(), 200);
    // A password set on one instance ends the pass on the other at its next request.
    let link_id = link["id"].as_str().unwrap();
    let res = one
        .org_call(
            Method::PUT,
            &format!("/v1/records/{id}/share-links/{link_id}/password"),
            &owner,
            Some(json!({"password": "a brand new secret"})),
        )
        .await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    expect_problem(view(&two, &viewer).await, 401, "unauthenticated").await;
    // The second and last view; a third open is refused.
    let again = pass(&two, &token, Some("a brand new secret")).await;
    assert_eq!(view(&one, &again).await.status(), 200);
    expect_problem(
        open(&two, &token, Some("a brand new secret")).await,
        410,
        "link_ended",
    )
    .await;

    // Expiry by the injected clock: a live pass and the link both end at the link's instant.
    let timed = shared(&one, &owner, &id, json!({"expires_at": in_secs(&one, 60)})).await;
    let timed_token = timed["token"].as_str().unwrap();
    let timed_pass = pass(&one, timed_token, None).await;
    assert_eq!(view(&two, &timed_pass).await.status(), 200);
    one.clock.advance(time::Duration::seconds(60));
    expect_problem(view(&two, &timed_pass).await, 401, "unauthenticated").await;
    expect_problem(open(&one, timed_token, None).await, 410, "link_ended").await;

    // A viewer pass expires on its own too (15 minutes by default).
    let long = shared(
        &one,
        &owner,
        &id,
        json!({"expires_at": in_secs(&one, 7200)}),
    )
    .await;
    let long_pass = pass(&one, long["token"].as_str().unwrap(), None).await;
    one.clock.advance(time::Duration::seconds(15 * 60));
    expect_problem(view(&one, &long_pass).await, 401, "unauthenticated").await;
    two.stop().await;
    one.stop().await;
}

#[tokio::test]
async fn bad_input_is_refused_and_nothing_is_stored() {
    let app = TestApp::spawn_with(declare_reports).await;
    let owner = app.signup_login("owner@example.com", "laptop").await;
    let member = app.add_member(&owner, "member@example.com", "member").await;
    let id = record(&app, &owner, "r1", "organization").await;
    for (body, field) in [
        (json!({"expires_at": in_secs(&app, -1)}), "expires_at"),
        (
            json!({"expires_at": in_secs(&app, 31 * 86_400)}),
            "expires_at",
        ),
        (
            json!({"expires_at": in_secs(&app, 60), "max_views": 0}),
            "max_views",
        ),
        (
            json!({"expires_at": in_secs(&app, 60), "password": "password"}),
            "password",
        ),
    ] {
        let res = share(&app, &owner, &id, body).await;
        let problem = expect_problem(res, 422, "validation_failed").await;
        assert_eq!(problem["field"], field);
    }
    // A member who may read but not change the record may not share it.
    expect_problem(
        share(&app, &member, &id, json!({"expires_at": in_secs(&app, 60)})).await,
        403,
        "forbidden",
    )
    .await;
    let res = app
        .org_call(
            Method::GET,
            &format!("/v1/records/{id}/share-links"),
            &owner,
            None,
        )
        .await;
    let listed: Value = res.json().await.unwrap();
    assert_eq!(listed["items"], json!([]), "a refused link was stored");
    // Unknown and malformed tokens, a tampered pass.
    let unknown = format!("gsl_{}", "A".repeat(43));
    expect_problem(open(&app, &unknown, None).await, 404, "not_found").await;
    expect_problem(open(&app, "gsl_short", None).await, 404, "not_found").await;
    let link = shared(&app, &owner, &id, json!({"expires_at": in_secs(&app, 60)})).await;
    let good = pass(&app, link["token"].as_str().unwrap(), None).await;
    let mut tampered = good.clone().into_bytes();
    let last = tampered.len() - 2;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    expect_problem(view(&app, &tampered).await, 401, "unauthenticated").await;
    expect_problem(view(&app, "gsv_nonsense").await, 401, "unauthenticated").await;
    assert_eq!(view(&app, &good).await.status(), 200);
    // A deleted record takes its links with it.
    let res = app
        .org_call(Method::DELETE, &format!("/v1/records/{id}"), &owner, None)
        .await;
    assert_eq!(res.status(), 204);
    expect_problem(view(&app, &good).await, 401, "unauthenticated").await;
    expect_problem(
        open(&app, link["token"].as_str().unwrap(), None).await,
        404,
        "not_found",
    )
    .await;
    app.stop().await;
}

/// The `views` the listing shows for the record's only link.
async fn listed_views(app: &TestApp, owner: &Signed, record: &str) -> u64 {
    let res = app
        .org_call(
            Method::GET,
            &format!("/v1/records/{record}/share-links"),
            owner,
            None,
        )
        .await;
    assert_eq!(res.status(), 200);
    res.json::<Value>().await.unwrap()["items"][0]["views"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn opens_served_from_memory_are_counted_by_the_flush_and_end_with_the_link() {
    let one = TestApp::spawn_with(declare_reports).await;
    let two =
        TestApp::spawn_in_with_clock(one.dir.clone(), one.clock.clone(), declare_reports).await;
    let owner = one.signup_login("owner@example.com", "laptop").await;
    let id = record(&one, &owner, "r1", "organization").await;
    let link = shared(&one, &owner, &id, json!({"expires_at": in_secs(&one, 600)})).await;
    let token = link["token"].as_str().unwrap().to_owned();

    // The first open is written at once; the next four are counted in memory.
    for _ in 0..5 {
        let p = pass(&one, &token, None).await;
        assert_eq!(view(&one, &p).await.status(), 200);
    }
    assert_eq!(listed_views(&one, &owner, &id).await, 1);
    assert_eq!(one.kernel.share_links().flush_opens().await.unwrap(), 1);
    assert_eq!(one.kernel.share_links().flush_opens().await.unwrap(), 0);
    assert_eq!(listed_views(&one, &owner, &id).await, 5);
    let events = one.audit_events(&owner.org).await;
    let opened: Vec<&gatehouse_core::audit::AuditRecord> = events
        .iter()
        .filter(|e| e.action == "share_link.opened")
        .collect();
    assert_eq!(
        opened.len(),
        2,
        "one written at the first open, one by the flush"
    );
    let aggregated: Value = opened
        .iter()
        .map(|e| serde_json::from_str::<Value>(&e.details).unwrap())
        .find(|d| d.get("opens").is_some())
        .expect("no aggregated share_link.opened event");
    assert_eq!(aggregated["opens"], 4);
    assert_eq!(aggregated["record"], id.as_str());
    one.chain_verifies(&owner.org).await;

    // Opened on the other instance too, so it holds the row; then revoked on the first.
    let on_two = pass(&two, &token, None).await;
    let link_id = link["id"].as_str().unwrap();
    let res = one
        .org_call(
            Method::DELETE,
            &format!("/v1/records/{id}/share-links/{link_id}"),
            &owner,
            None,
        )
        .await;
    assert_eq!(res.status(), 204);
    // The revoking instance refuses the next open at once.
    expect_problem(open(&one, &token, None).await, 410, "link_ended").await;
    // The other may still issue a pass for a few seconds, but no pass opens anything.
    let stale = open(&two, &token, None).await;
    if stale.status() == 200 {
        let p = stale.json::<Value>().await.unwrap()["viewer_token"]
            .as_str()
            .unwrap()
            .to_owned();
        expect_problem(view(&two, &p).await, 401, "unauthenticated").await;
    } else {
        expect_problem(stale, 410, "link_ended").await;
    }
    expect_problem(view(&two, &on_two).await, 401, "unauthenticated").await;
    one.clock.advance(time::Duration::seconds(5));
    expect_problem(open(&two, &token, None).await, 410, "link_ended").await;
    two.stop().await;
    one.stop().await;
}

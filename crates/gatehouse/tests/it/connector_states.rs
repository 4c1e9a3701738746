//! Connectors' refusals (issue 24, must 2 and the bad input): a `state` replayed, older than ten
//! minutes, signed by another deployment's key or bent, or relayed by another person or
//! organisation is refused with `oauth_state_invalid` before its code reaches the provider (the
//! provider's token endpoint never sees a request); a provider's refusal, error or garbage is a
//! clean `oauth_provider_error` with nothing stored; a refused refresh token marks the
//! connector `needs_reauth` and raises the webhook event; other refresh failures back off.

use reqwest::Method;
use serde_json::{Value, json};

use crate::connectors::{authorized, callback, connect, hand_out, setup_with};
use crate::interop::WebhookReceiver;
use crate::oidc_provider::{FailMode, query_param};
use crate::support::{TestApp, expect_problem};

async fn refused(app: &TestApp, res: reqwest::Response, why: &str) {
    let body = expect_problem(res, 400, "oauth_state_invalid").await;
    assert!(body["detail"].as_str().unwrap().contains(why), "{body}");
    let _ = app;
}

async fn connectors_of(app: &TestApp, who: &crate::support::Signed) -> usize {
    let res = app.org_call(Method::GET, "/v1/connectors", who, None).await;
    assert_eq!(res.status(), 200);
    let page: Value = res.json().await.unwrap();
    page["items"].as_array().unwrap().len()
}

#[tokio::test]
async fn a_state_replayed_expired_forged_or_misdirected_is_refused_before_its_code_is_exchanged() {
    let s = setup_with(|_| {}).await;
    let app = &s.app;
    let owner = app.signup_login("states-owner@example.com", "laptop").await;
    let colleague = app
        .add_member(&owner, "states-colleague@example.com", "member")
        .await;
    let elsewhere = app
        .signup_login("states-elsewhere@example.com", "laptop")
        .await;
    let exchanged = || s.op.token_requests("all");

    // Replayed: the first use connects; the same callback again is refused.
    let back = authorized(&s, &owner, "alice").await;
    assert_eq!(callback(app, &back, None).await.status(), 200);
    let before = exchanged().await;
    refused(app, callback(app, &back, None).await, "already used").await;
    assert_eq!(
        exchanged().await,
        before,
        "a replayed state reached the provider"
    );

    // Relayed by another person of the organisation, or by someone of another organisation:
    // refused, and the state is not spent: its own person completes it afterwards.
    let back = authorized(&s, &owner, "alice").await;
    let before = exchanged().await;
    refused(
        app,
        callback(app, &back, Some(&colleague)).await,
        "another person",
    )
    .await;
    refused(
        app,
        callback(app, &back, Some(&elsewhere)).await,
        "another organisation",
    )
    .await;
    assert_eq!(
        exchanged().await,
        before,
        "a misdirected state reached the provider"
    );
    let res = callback(app, &back, Some(&owner)).await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    assert_eq!(exchanged().await, before + 1);

    // Older than ten minutes (the injected clock), whatever the provider thinks of the code.
    let back = authorized(&s, &owner, "alice").await;
    app.clock.advance(time::Duration::minutes(10));
    let before = exchanged().await;
    refused(app, callback(app, &back, None).await, "expired").await;
    assert_eq!(
        exchanged().await,
        before,
        "an expired state reached the provider"
    );

    // Signed with another key: another deployment's state, and a bent tag.
    let other = crate::connectors::setup_with(|_| {}).await;
    let stranger = other
        .app
        .signup_login("states-stranger@example.com", "laptop")
        .await;
    let theirs = authorized(&other, &stranger, "bob").await;
    let before = exchanged().await;
    refused(
        app,
        callback(app, &theirs, None).await,
        "not one Gatehouse issued",
    )
    .await;
    let back = authorized(&s, &owner, "alice").await;
    let state = query_param(&back, "state").unwrap();
    let (body, tag) = state.split_once('.').unwrap();
    let flipped = if tag.starts_with('A') { 'B' } else { 'A' };
    let bent = back.replace(&state, &format!("{body}.{flipped}{}", &tag[1..]));
    refused(
        app,
        callback(app, &bent, None).await,
        "not one Gatehouse issued",
    )
    .await;
    assert_eq!(
        exchanged().await,
        before,
        "a forged state reached the provider"
    );
    // No state at all.
    let none = back.replace(&format!("state={}", urlencode(&state)), "state=");
    assert!(!none.contains(&state));
    refused(
        app,
        callback(app, &none, None).await,
        "not one Gatehouse issued",
    )
    .await;
    assert_eq!(exchanged().await, before);

    // Only the two that were allowed connected; refusals of signed states are audited.
    assert_eq!(connectors_of(app, &owner).await, 2);
    let refusals = app
        .audit_events(&owner.org)
        .await
        .into_iter()
        .filter(|e| e.action == "oauth.state_refused")
        .count();
    assert_eq!(
        refusals, 4,
        "replayed, other person, other organisation, expired"
    );
    other.app.stop().await;
    s.app.stop().await;
}

fn urlencode(s: &str) -> String {
    s.replace('=', "%3D")
}

#[tokio::test]
async fn provider_errors_and_garbage_are_refused_cleanly_and_nothing_is_stored() {
    let s = setup_with(|_| {}).await;
    let app = &s.app;
    let owner = app.signup_login("errors-owner@example.com", "laptop").await;
    for (mode, why) in [
        (FailMode::InvalidGrant, "invalid_grant"),
        (FailMode::ServerError, "answered 500"),
        (FailMode::Garbage, "not JSON"),
    ] {
        let back = authorized(&s, &owner, "alice").await;
        s.op.fail_token_endpoint(mode).await;
        let body = expect_problem(
            callback(app, &back, None).await,
            502,
            "oauth_provider_error",
        )
        .await;
        assert!(body["detail"].as_str().unwrap().contains(why), "{body}");
        s.op.fail_token_endpoint(FailMode::None).await;
    }
    // The person said no at the provider: its error, not a code.
    let back = authorized(&s, &owner, "alice").await;
    let state = query_param(&back, "state").unwrap();
    let denied = format!(
        "{}/v1/connectors/callback?error=access_denied&state={}",
        crate::connectors::PUBLIC,
        state.replace('=', "%3D")
    );
    let before = s.op.token_requests("all").await;
    let body = expect_problem(
        callback(app, &denied, None).await,
        502,
        "oauth_provider_error",
    )
    .await;
    assert!(
        body["detail"].as_str().unwrap().contains("access_denied"),
        "{body}"
    );
    assert_eq!(s.op.token_requests("all").await, before);
    assert_eq!(connectors_of(app, &owner).await, 0);
    let failures = app
        .audit_events(&owner.org)
        .await
        .into_iter()
        .filter(|e| e.action == "connector.connect_failed")
        .count();
    assert_eq!(failures, 4);
    app.chain_verifies(&owner.org).await;
    s.app.stop().await;
}

#[tokio::test]
async fn a_refused_refresh_token_marks_the_connector_and_raises_the_webhook_event_and_errors_back_off()
 {
    let s = setup_with(|raw| {
        raw.webhooks.allow_http = true;
        raw.webhooks.allow_loopback = true;
        raw.webhooks.poll_interval_ms = 100;
    })
    .await;
    let app = &s.app;
    let owner = app.signup_login("reauth-owner@example.com", "laptop").await;
    let receiver = WebhookReceiver::python(0);
    let res = app
        .org_call(
            Method::POST,
            "/v1/webhooks/endpoints",
            &owner,
            Some(json!({"url": receiver.url("/"), "event_types": ["connector.needs_reauth"]})),
        )
        .await;
    assert_eq!(res.status(), 201, "{:?}", res.text().await);
    let endpoint: Value = res.json().await.unwrap();
    receiver.set_secrets(&[endpoint["secret"].as_str().unwrap()]);
    let c = connect(&s, &owner, "alice").await;
    let id = c["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/connectors/{id}");
    let get = || async {
        let res = app.org_call(Method::GET, &path, &owner, None).await;
        res.json::<Value>().await.unwrap()
    };

    // The provider down at the refresh: the connector stays active, the failure is recorded
    // and the next attempt waits the first backoff (30 s).
    s.op.fail_token_endpoint(FailMode::ServerError).await;
    app.clock.advance(time::Duration::seconds(31));
    let mut failed = Value::Null;
    for _ in 0..100 {
        failed = get().await;
        if failed["last_error"].is_string() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(failed["status"], "active");
    assert!(
        failed["last_error"].as_str().unwrap().contains("500"),
        "{failed}"
    );
    let tried = s.op.token_requests("all").await;
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert_eq!(
        s.op.token_requests("all").await,
        tried,
        "retried before its backoff"
    );

    // The refresh token refused: needs_reauth, tokens erased, the webhook event raised, and the
    // service told so.
    s.op.fail_token_endpoint(FailMode::InvalidGrant).await;
    app.clock.advance(time::Duration::seconds(31));
    let mut marked = Value::Null;
    for _ in 0..100 {
        marked = get().await;
        if marked["status"] == "needs_reauth" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(marked["status"], "needs_reauth", "{marked}");
    assert_eq!(marked["refreshable"], false);
    expect_problem(
        hand_out(app, &id, &owner).await,
        409,
        "connector_needs_reauth",
    )
    .await;
    let got = receiver
        .wait_until("the needs_reauth event", |r| !r.is_empty())
        .await;
    assert!(got[0].verified);
    assert_eq!(got[0].kind.as_deref(), Some("connector.needs_reauth"));
    // Nothing more is tried for it.
    let tried = s.op.token_requests("all").await;
    app.clock.advance(time::Duration::hours(7));
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(s.op.token_requests("all").await, tried);
    s.op.fail_token_endpoint(FailMode::None).await;
    app.chain_verifies(&owner.org).await;
    s.app.stop().await;
}

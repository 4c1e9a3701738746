//! Connectors' refusals (issue 24, must 2 and the bad input): a `state` replayed, older than ten
//! minutes, signed by another deployment's key or bent, or relayed by another person or
//! organisation is refused with `oauth_state_invalid` before its code reaches the provider (the
//! provider's token endpoint never sees a request); a provider's refusal, error or garbage is a
//! clean `oauth_provider_error` with nothing stored; a refused refresh token marks the
//! connector `needs_reauth` and raises the webhook event; other refresh failures back off. The
//! callback needs the credential of the person who started, the way they started (RFC 9700
//! 4.7); a state at another provider's callback, or without the `iss` its provider sends, is
//! refused (RFC 9700 4.4, RFC 9207); a removed member's connectors are removed and revoked.

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
    // Codes redeemed at the token endpoint (refreshes of the connectors made here run beside
    // and are counted apart).
    let exchanged = || s.op.token_requests("authorization_code");

    // Replayed: the first use connects; the same callback again is refused.
    let back = authorized(&s, &owner, "alice").await;
    assert_eq!(callback(app, &back, Some(&owner)).await.status(), 200);
    let before = exchanged().await;
    refused(
        app,
        callback(app, &back, Some(&owner)).await,
        "already used",
    )
    .await;
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
    refused(app, callback(app, &back, Some(&owner)).await, "expired").await;
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
        callback(app, &theirs, Some(&owner)).await,
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
        callback(app, &bent, Some(&owner)).await,
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
        callback(app, &none, Some(&owner)).await,
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
    // Each refusal names who presented the state, not who started it.
    let by_colleague = app
        .audit_events(&owner.org)
        .await
        .into_iter()
        .find(|e| e.action == "oauth.state_refused" && e.details.contains("another person"))
        .expect("the colleague's refusal is recorded");
    assert_eq!(by_colleague.actor_id, colleague.user);
    other.app.stop().await;
    s.app.stop().await;
}

fn urlencode(s: &str) -> String {
    s.replace('=', "%3D")
}

/// How the provider writes an issuer URL in a query.
fn urlencoding(s: &str) -> String {
    s.replace(':', "%3A").replace('/', "%2F")
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
            callback(app, &back, Some(&owner)).await,
            502,
            "oauth_provider_error",
        )
        .await;
        assert!(body["detail"].as_str().unwrap().contains(why), "{body}");
        // The provider's free text (`error_description`) goes nowhere.
        assert!(
            !body["detail"]
                .as_str()
                .unwrap()
                .contains("grant request is invalid"),
            "{body}"
        );
        s.op.fail_token_endpoint(FailMode::None).await;
    }
    // The person said no at the provider: its error, not a code.
    let back = authorized(&s, &owner, "alice").await;
    let state = query_param(&back, "state").unwrap();
    let denied = format!(
        "{}/v1/connectors/crm/callback?error=access_denied&error_description=Alice+said+no&state={}",
        crate::connectors::PUBLIC,
        state.replace('=', "%3D")
    );
    let before = s.op.token_requests("all").await;
    let body = expect_problem(
        callback(app, &denied, Some(&owner)).await,
        502,
        "oauth_provider_error",
    )
    .await;
    assert!(
        body["detail"].as_str().unwrap().contains("access_denied"),
        "{body}"
    );
    assert!(!body.to_string().contains("said no"), "{body}");
    assert_eq!(s.op.token_requests("all").await, before);
    // RFC 9207: a response naming another issuer than the provider's is a mix-up.
    let back = authorized(&s, &owner, "alice").await;
    let iss = query_param(&back, "iss").expect("oidc-provider sends iss");
    let mixed = back.replace(&urlencoding(&iss), "http%3A%2F%2Fother-issuer.example");
    assert_ne!(mixed, back);
    let body = expect_problem(
        callback(app, &mixed, Some(&owner)).await,
        502,
        "oauth_provider_error",
    )
    .await;
    assert!(
        body["detail"].as_str().unwrap().contains("another issuer"),
        "{body}"
    );
    assert_eq!(
        s.op.token_requests("all").await,
        before,
        "the code went to the token endpoint"
    );
    assert_eq!(connectors_of(app, &owner).await, 0);
    let failures = app
        .audit_events(&owner.org)
        .await
        .into_iter()
        .filter(|e| e.action == "connector.connect_failed")
        .count();
    assert_eq!(failures, 5);
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

/// Signs `email` in with a cookie session: the cookie jar and the CSRF token.
async fn cookie_session(app: &TestApp, email: &str) -> (String, String) {
    let res = app
        .post_json(
            "/v1/auth/login",
            &json!({"email": email, "password": crate::support::PASSWORD, "session_mode": "cookie"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let jar = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .collect::<Vec<_>>()
        .join("; ");
    let body: Value = res.json().await.unwrap();
    (jar, body["csrf_token"].as_str().unwrap().to_owned())
}

/// The callback as a browser brings it back: with its cookies, nothing else.
async fn browser_callback(app: &TestApp, back: &str, jar: &str) -> reqwest::Response {
    let path = back.strip_prefix(crate::connectors::PUBLIC).unwrap();
    app.client
        .get(app.url(path))
        .header("cookie", jar)
        .send()
        .await
        .unwrap()
}

/// `back` without its query parameter `name`, or with it set to `value`.
fn with_param(back: &str, name: &str, value: Option<&str>) -> String {
    let mut url = reqwest::Url::parse(back).unwrap();
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != name)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    {
        let mut q = url.query_pairs_mut();
        q.clear();
        for (k, v) in &kept {
            q.append_pair(k, v);
        }
        if let Some(v) = value {
            q.append_pair(name, v);
        }
    }
    url.to_string()
}

#[tokio::test]
async fn a_callback_needs_the_credential_of_the_person_who_started_in_the_mode_they_started() {
    let s = setup_with(|_| {}).await;
    let app = &s.app;
    let owner = app.signup_login("bind-owner@example.com", "laptop").await;
    let exchanged = || s.op.token_requests("authorization_code");

    // Someone else's browser following the owner's authorization URL comes back with no
    // credential of the owner's: refused before the state is spent or the code exchanged.
    let back = authorized(&s, &owner, "alice").await;
    let before = exchanged().await;
    expect_problem(callback(app, &back, None).await, 401, "unauthenticated").await;
    assert_eq!(exchanged().await, before, "the code went to the provider");
    assert_eq!(connectors_of(app, &owner).await, 0);
    // The person who started completes it (nothing was spent).
    let res = callback(app, &back, Some(&owner)).await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    assert_eq!(exchanged().await, before + 1);

    // Started with the browser's cookie session: the browser with that session completes it,
    // and a bearer relay of the same person is another mode.
    let (jar, csrf) = cookie_session(app, "bind-owner@example.com").await;
    let res = app
        .client
        .post(app.url("/v1/connectors/crm/start"))
        .header("cookie", &jar)
        .header("x-csrf-token", &csrf)
        .header("x-organization-id", &owner.org)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let started: Value = res.json().await.unwrap();
    let back =
        s.op.authorize(started["authorization_url"].as_str().unwrap(), "bob")
            .await;
    let before = exchanged().await;
    refused(
        app,
        callback(app, &back, Some(&owner)).await,
        "another mode",
    )
    .await;
    assert_eq!(exchanged().await, before);
    let res = browser_callback(app, &back, &jar).await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    assert_eq!(exchanged().await, before + 1);
    // And the other way round: a bearer start is not completed by the cookie session.
    let back = authorized(&s, &owner, "alice").await;
    refused(
        app,
        browser_callback(app, &back, &jar).await,
        "another mode",
    )
    .await;
    assert_eq!(exchanged().await, before + 1);
    assert_eq!(connectors_of(app, &owner).await, 2);
    s.app.stop().await;
}

#[tokio::test]
async fn with_a_return_url_a_browser_is_sent_back_and_a_relay_gets_json() {
    let s = setup_with(|raw| {
        raw.oauth.connector_return_url = "https://product.test/connected".into();
    })
    .await;
    let app = &s.app;
    let owner = app.signup_login("return-owner@example.com", "laptop").await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let back = authorized(&s, &owner, "alice").await;
    let path = back.strip_prefix(crate::connectors::PUBLIC).unwrap();
    let res = client.get(app.url(path)).send().await.unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(
        res.headers()["location"],
        "https://product.test/connected?error=unauthenticated"
    );
    assert_eq!(s.op.token_requests("authorization_code").await, 0);
    let res = callback(app, &back, Some(&owner)).await;
    assert_eq!(res.status(), 200, "a relay gets the connector as JSON");
    let c: Value = res.json().await.unwrap();
    assert_eq!(c["provider"], "crm");
    s.app.stop().await;
}

#[tokio::test]
async fn a_state_at_another_providers_callback_or_without_its_exact_iss_is_refused_unexchanged() {
    let s = setup_with(|_| {}).await;
    let app = &s.app;
    let owner = app.signup_login("mixup-owner@example.com", "laptop").await;
    let exchanged = || s.op.token_requests("authorization_code");

    // The browser sent to another provider's callback with this one's state (mix-up).
    let back = authorized(&s, &owner, "alice").await;
    let elsewhere = back.replace(
        "/v1/connectors/crm/callback",
        "/v1/connectors/mail/callback",
    );
    assert_ne!(elsewhere, back);
    let before = exchanged().await;
    refused(
        app,
        callback(app, &elsewhere, Some(&owner)).await,
        "another flow",
    )
    .await;
    assert_eq!(exchanged().await, before);

    // The provider advertises RFC 9207's `iss`: a response without it, or with it written
    // otherwise than exactly (a trailing slash), is refused before the code is sent.
    let iss = query_param(&back, "iss").expect("oidc-provider sends iss");
    for bent in [
        with_param(&back, "iss", None),
        with_param(&back, "iss", Some(&format!("{iss}/"))),
    ] {
        let back = authorized(&s, &owner, "alice").await;
        let state = query_param(&back, "state").unwrap();
        let code = query_param(&back, "code").unwrap();
        let bent = with_param(
            &with_param(&bent, "state", Some(&state)),
            "code",
            Some(&code),
        );
        let body = expect_problem(
            callback(app, &bent, Some(&owner)).await,
            502,
            "oauth_provider_error",
        )
        .await;
        assert!(
            body["detail"].as_str().unwrap().contains("issuer"),
            "{body}"
        );
        assert_eq!(
            exchanged().await,
            before,
            "the code went to the token endpoint"
        );
    }
    // The first one, as sent, still connects.
    let res = callback(app, &back, Some(&owner)).await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    assert_eq!(exchanged().await, before + 1);
    s.app.stop().await;
}

#[tokio::test]
async fn a_removed_members_connectors_are_removed_at_once_and_revoked_at_the_provider() {
    let s = setup_with(|_| {}).await;
    let app = &s.app;
    let owner = app.signup_login("gone-owner@example.com", "laptop").await;
    let member = app
        .add_member(&owner, "gone-member@example.com", "member")
        .await;
    let c = connect(&s, &member, "bob").await;
    let id = c["id"].as_str().unwrap().to_owned();
    assert_eq!(c["refreshable"], true);
    let (_, refresh_tokens) = s.op.issued_tokens().await;
    assert_eq!(refresh_tokens.len(), 1);
    let res = app
        .org_call(
            Method::DELETE,
            &format!("/v1/organization/members/{}", member.user),
            &owner,
            None,
        )
        .await;
    assert_eq!(res.status(), 204, "{:?}", res.text().await);
    // Removed with the membership, not left for the refresh job to suspend.
    let events = app.audit_events(&owner.org).await;
    let removed = events
        .iter()
        .find(|e| e.action == "connector.removed")
        .expect("the connector was not removed");
    assert_eq!(removed.resource_id, id);
    let member_removed = events
        .iter()
        .find(|e| e.action == "member.removed")
        .unwrap();
    assert!(
        member_removed.details.contains("\"connectors_removed\":1"),
        "{}",
        member_removed.details
    );
    assert!(
        !s.op.introspect(&s.client, &refresh_tokens[0]).await,
        "the refresh token is still active at the provider"
    );
    let refreshes = s.op.token_requests("refresh_token").await;
    // Nothing goes to the provider for it later.
    app.clock.advance(time::Duration::hours(2));
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(s.op.token_requests("refresh_token").await, refreshes);
    assert!(
        !app.audit_events(&owner.org)
            .await
            .iter()
            .any(|e| e.action == "connector.suspended")
    );
    app.chain_verifies(&owner.org).await;
    s.app.stop().await;
}

/// An organisation's provider cannot be deleted while connectors use it: their tokens would stay
/// valid at the provider with no client left here to revoke them (#24).
#[tokio::test]
async fn an_organisations_provider_is_not_deleted_while_a_connector_uses_it() {
    let s = crate::connectors::setup_with(|_| {}).await;
    let app = &s.app;
    let clock = app.clock.clone();
    let stub = crate::oidc_stub::OidcStub::start(std::sync::Arc::new(move || {
        gatehouse_core::Clock::now(&clock).unix_timestamp()
    }))
    .await;
    let owner = app.signup_login("prov-owner@example.com", "laptop").await;
    let res = app
        .org_call(
            Method::POST,
            "/v1/connectors/providers",
            &owner,
            Some(serde_json::json!({
                "name": "acme-crm",
                "issuer": stub.issuer,
                "client_id": crate::oidc_stub::CLIENT_ID,
                "client_secret": "stub-secret",
                "scopes": ["openid"],
            })),
        )
        .await;
    assert_eq!(res.status(), 201, "{:?}", res.text().await);
    let res = app
        .org_call(Method::POST, "/v1/connectors/acme-crm/start", &owner, None)
        .await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let started: Value = res.json().await.unwrap();
    let back = stub
        .authorize(started["authorization_url"].as_str().unwrap())
        .await;
    let res = crate::connectors::callback(app, &back, Some(&owner)).await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let connector: Value = res.json().await.unwrap();
    let id = connector["id"].as_str().unwrap();
    let delete = || {
        app.org_call(
            Method::DELETE,
            "/v1/connectors/providers/acme-crm",
            &owner,
            None,
        )
    };
    expect_problem(delete().await, 409, "conflict").await;
    let listed = app
        .org_call(Method::GET, "/v1/connectors/providers", &owner, None)
        .await
        .text()
        .await
        .unwrap();
    assert!(listed.contains("acme-crm"), "{listed}");
    let res = app
        .org_call(
            Method::DELETE,
            &format!("/v1/connectors/{id}"),
            &owner,
            None,
        )
        .await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    assert_eq!(delete().await.status(), 204);
    s.app.stop().await;
}

/// One pass refreshes several connectors at once: a provider that does not answer (up to
/// `oauth.timeout_secs` a call) no longer holds every other refresh behind it (#24).
#[tokio::test]
async fn a_pass_refreshes_several_connectors_at_once() {
    let s = setup_with(|raw| raw.oauth.timeout_secs = 30).await;
    let app = &s.app;
    for (n, account) in ["alice", "bob", "alice"].iter().enumerate() {
        let who = app
            .signup_login(&format!("parallel-{n}@example.com"), "laptop")
            .await;
        connect(&s, &who, account).await;
    }
    assert_eq!(s.op.token_requests("refresh_token").await, 0);
    // Every refresh now waits 30 s at the provider: one at a time, only the first would have
    // reached it within the next ten seconds.
    s.op.fail_token_endpoint(FailMode::Slow).await;
    app.clock.advance(time::Duration::seconds(31));
    let mut seen = 0;
    for _ in 0..100 {
        seen = s.op.token_requests("refresh_token").await;
        if seen >= 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(seen, 3, "the refreshes were not in flight together");
}

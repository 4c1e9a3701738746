//! Sign-in through an organisation's provider and through a platform provider (issue 24),
//! against `oidc-provider` (certified; `oidc_provider.rs`) on loopback, with the domains proved
//! by a DNS server the test starts (`sso_domains.rs`). Bad ID tokens (another audience, another
//! issuer, another nonce, expired, `alg` swapped, another key) come here from `oidc_stub.rs`, a
//! provider whose token endpoint answers the forgery the test names, after a real authorization
//! with PKCE; `sso_tokens.rs` shows the same refusals with tokens `oidc-provider` itself issued
//! or that were minted from its tokens with its own keys.
//!
//! The provider's redirect back goes to that provider's callback under `oauth.public_url`
//! (`/v1/auth/sso/{org or provider}/callback`, so the organisation's provider is started once
//! the organisation exists); the test takes the redirect's query (code, state, iss) and posts it
//! with the start's `flow_secret`, as a bearer-mode product's page does.

use reqwest::Method;
use serde_json::{Value, json};

use crate::interop::DnsServer;
use crate::oauth::dev_oauth;
use crate::oidc_provider::{FailMode, OidcAccount, OidcClient, OidcOptions, OidcProvider};
use crate::oidc_stub::{self, Forgery, OidcStub};
use crate::sso_domains::{app_with_dns, owner_with_factor, verified_domain};
use crate::support::{PASSWORD, Signed, TestApp, expect_problem, token_claims, token_subject};

const PUBLIC_URL: &str = "https://auth.acme.test";

/// The redirect URI of `target`'s provider (an organisation's id or a platform provider's name).
pub(crate) fn callback_uri(target: &str) -> String {
    format!("{PUBLIC_URL}/v1/auth/sso/{target}/callback")
}

/// The product's page a bearer-mode sign-in's callback hands the provider's answer to (a
/// bearer-mode start needs one).
pub(crate) const RETURN_URL: &str = "https://app.acme.test/sso";

pub(crate) fn sso_config(raw: &mut gatehouse::config::RawConfig) {
    dev_oauth(raw);
    raw.oauth.public_url = PUBLIC_URL.into();
    raw.sso.return_url = RETURN_URL.into();
}

fn unverified(sub: &str, email: &str) -> OidcAccount {
    OidcAccount {
        email_verified: false,
        ..OidcAccount::new(sub, email)
    }
}

/// Sets the organisation's provider.
pub(crate) async fn configure(
    app: &TestApp,
    owner: &Signed,
    issuer: &str,
    client: &str,
    secret: &str,
    extra: Value,
) {
    let mut body = json!({
        "issuer": issuer,
        "client_id": client,
        "client_secret": secret,
        "default_role": "viewer",
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let res = app
        .org_call(Method::PUT, "/v1/sso/config", owner, Some(body))
        .await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
}

/// A bearer-mode start: the authorization URL and the flow secret.
pub(crate) struct Started {
    pub url: String,
    pub secret: String,
}

/// `POST /v1/auth/sso/{target}/start` in bearer mode.
pub(crate) async fn start(app: &TestApp, target: &str) -> Started {
    let res = app
        .post_json(&format!("/v1/auth/sso/{target}/start"), &json!({}))
        .await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let body: Value = res.json().await.unwrap();
    Started {
        url: body["authorization_url"].as_str().unwrap().to_owned(),
        secret: body["flow_secret"].as_str().unwrap().to_owned(),
    }
}

/// What a bearer-mode product's page posts: the provider's redirect's `state`, `code`, `iss`
/// and `error`, and the start's flow secret; and the callback path the redirect names.
pub(crate) fn completion(back: &str, secret: &str) -> (String, Value) {
    assert!(back.starts_with(PUBLIC_URL), "{back}");
    let url = reqwest::Url::parse(back).unwrap();
    let mut body = json!({ "flow_secret": secret });
    for (k, v) in url.query_pairs() {
        if ["state", "code", "iss", "error"].contains(&k.as_ref()) {
            body[k.as_ref()] = Value::String(v.into_owned());
        }
    }
    (url.path().to_owned(), body)
}

/// Gatehouse's callback with the provider's redirect back, as a bearer-mode page posts it.
pub(crate) async fn callback(app: &TestApp, started: &Started, back: &str) -> reqwest::Response {
    let (path, body) = completion(back, &started.secret);
    app.post_json(&path, &body).await
}

/// A whole sign-in of `account` through `target`.
pub(crate) async fn sign_in(
    app: &TestApp,
    op: &OidcProvider,
    target: &str,
    account: &str,
) -> reqwest::Response {
    let started = start(app, target).await;
    let back = op.authorize(&started.url, account).await;
    callback(app, &started, &back).await
}

pub(crate) async fn stub_sign_in(
    app: &TestApp,
    stub: &OidcStub,
    target: &str,
) -> reqwest::Response {
    let started = start(app, target).await;
    let back = stub.authorize(&started.url).await;
    callback(app, &started, &back).await
}

fn actions(events: &[gatehouse_core::audit::AuditRecord]) -> Vec<String> {
    events.iter().map(|e| e.action.clone()).collect()
}

/// An organisation with acme.test verified, and its provider: `oidc-provider` with `accounts`,
/// Gatehouse's client `gatehouse-acme` and the clients named `others`, every one registered
/// with the organisation's callback.
pub(crate) struct Acme {
    pub app: TestApp,
    pub ada: Signed,
    pub dns: DnsServer,
    pub op: OidcProvider,
    pub client: OidcClient,
}

pub(crate) async fn acme(accounts: Vec<OidcAccount>) -> Acme {
    acme_with(accounts, &[], |_| {}).await
}

pub(crate) async fn acme_with(
    accounts: Vec<OidcAccount>,
    others: &[&str],
    edit: impl FnOnce(&mut gatehouse::config::RawConfig),
) -> Acme {
    let (app, dns) = app_with_dns(|raw| {
        sso_config(raw);
        edit(raw);
    })
    .await;
    let (ada, _) = owner_with_factor(&app, "ada@acme.test").await;
    let mut zone = json!({});
    verified_domain(&app, &dns, &ada, &mut zone, "acme.test").await;
    let client = OidcClient::new("gatehouse-acme", &callback_uri(&ada.org));
    let mut clients = vec![client.clone()];
    clients.extend(
        others
            .iter()
            .map(|id| OidcClient::new(id, &callback_uri(&ada.org))),
    );
    let op = OidcProvider::start(OidcOptions {
        clients,
        accounts,
        ..OidcOptions::default()
    });
    configure(
        &app,
        &ada,
        &op.issuer(),
        &client.client_id,
        &client.client_secret,
        json!({}),
    )
    .await;
    Acme {
        app,
        ada,
        dns,
        op,
        client,
    }
}

pub(crate) async fn user_by_email(
    app: &TestApp,
    email: &str,
) -> Option<gatehouse_core::store::UserRecord> {
    let mut tx = app.kernel.store().begin_read().await.unwrap();
    tx.user_by_email(email).await.unwrap()
}

pub(crate) async fn links_of(app: &TestApp, user: &str) -> usize {
    let mut tx = app.kernel.store().begin_read().await.unwrap();
    tx.external_identities_of(gatehouse_core::UserId::parse(user).unwrap())
        .await
        .unwrap()
        .len()
}

#[tokio::test]
async fn a_user_of_a_verified_domain_signs_in_through_the_provider_and_joins_with_the_default_role()
{
    let Acme {
        app,
        ada,
        op,
        client,
        ..
    } = acme(vec![
        OidcAccount::new("carol-at-idp", "carol@acme.test"),
        OidcAccount::new("bob-at-idp", "Bob@Acme.test"),
    ])
    .await;
    let bob = app.add_member(&ada, "bob@acme.test", "member").await;

    // Carol has no account: the provider says her address is verified and acme.test is the
    // organisation's, so she gets an account and joins as a viewer.
    let res = sign_in(&app, &op, &ada.org, "carol-at-idp").await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = res.json().await.unwrap();
    let carol = Signed::from_login("", &body);
    let claims = token_claims(&carol.access);
    assert_eq!(claims["org"], ada.org);
    assert_eq!(claims["roles"], json!(["viewer"]));
    assert_eq!(claims["amr"], json!(["sso"]));
    assert_eq!(claims["email_verified"], true);
    let me: Value = app
        .call(Method::GET, "/v1/me", &carol.access, None, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["email"], "carol@acme.test");
    assert_eq!(op.token_requests("authorization_code").await, 1);
    let events = app.audit_events(&ada.org).await;
    let log = actions(&events);
    for a in [
        "sso.sign_in_started",
        "oauth.state_spent",
        "sso.account_created",
        "sso.identity_linked",
        "member.added",
        "user.login",
    ] {
        assert!(log.contains(&a.to_owned()), "{a} in {log:?}");
    }
    let joined = events.iter().find(|e| e.action == "member.added").unwrap();
    assert!(
        joined.details.contains("\"via\":\"sso\"") && joined.details.contains("viewer"),
        "{}",
        joined.details
    );
    // Her session is confined to Acme: her export is her data in Acme (`sso_confined.rs`; a
    // password session's export is the whole account's, the identity linked included).
    let (header, _, _) = crate::exports::my_export(&app, &carol, 1000).await;
    assert_eq!(header["subject"]["organization_id"], ada.org.as_str());
    // Her account has no password: a password sign-in is just a wrong one.
    let res = app
        .post_json(
            "/v1/auth/login",
            &json!({"email": "carol@acme.test", "password": PASSWORD}),
        )
        .await;
    expect_problem(res, 401, "invalid_credentials").await;

    // Again, started by her domain: the same account, linked by the provider's subject.
    let res = sign_in(&app, &op, "acme.test", "carol-at-idp").await;
    assert_eq!(res.status(), 200);
    let again: Value = res.json().await.unwrap();
    assert_eq!(
        token_subject(again["access_token"].as_str().unwrap()),
        token_subject(&carol.access)
    );
    // Bob, a member who signs in with a password, signs in through the provider into his own
    // account (his verified address in the verified domain links it), keeping his role.
    let res = sign_in(&app, &op, &ada.org, "bob-at-idp").await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let body: Value = res.json().await.unwrap();
    let bob_sso = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(token_subject(&bob_sso), token_subject(&bob.access));
    assert_eq!(token_claims(&bob_sso)["roles"], json!(["member"]));
    assert_eq!(links_of(&app, &token_subject(&bob.access)).await, 1);
    let added = actions(&app.audit_events(&ada.org).await)
        .iter()
        .filter(|a| *a == "member.added")
        .count();
    assert_eq!(
        added, 2,
        "Bob's invitation and Carol's sign-on, nothing more"
    );

    // With enforcement on, Bob's password is refused there but the provider still signs him
    // in, and that session refreshes.
    configure(
        &app,
        &ada,
        &op.issuer(),
        &client.client_id,
        &client.client_secret,
        json!({"enforced": true}),
    )
    .await;
    let res = app
        .post_json(
            "/v1/auth/login",
            &json!({"email": "bob@acme.test", "password": PASSWORD, "organization_id": ada.org}),
        )
        .await;
    expect_problem(res, 403, "sso_required").await;
    let res = sign_in(&app, &op, &ada.org, "bob-at-idp").await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["organization_id"], ada.org);
    let res = app
        .post_json(
            "/v1/auth/refresh",
            &json!({"refresh_token": body["refresh_token"]}),
        )
        .await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    app.chain_verifies(&ada.org).await;
}

#[tokio::test]
async fn account_linking_never_merges_through_an_unverified_address_or_an_unproven_domain() {
    let Acme { app, ada, op, .. } = acme(vec![
        // Bob's address, which the provider does not vouch for.
        unverified("mallory", "bob@acme.test"),
        // Verified addresses, but in domains the organisation has not proved.
        OidcAccount::new("eve", "eve@rival.test"),
        OidcAccount::new("pat", "pat@pending.test"),
        // A new address in the verified domain, unverified: no account either.
        unverified("nia", "nia@acme.test"),
        // The control: verified, in the verified domain.
        OidcAccount::new("quinn", "quinn@acme.test"),
    ])
    .await;
    // pending.test is claimed, not verified.
    let res = app
        .org_call(
            Method::POST,
            "/v1/sso/domains",
            &ada,
            Some(json!({"domain": "pending.test"})),
        )
        .await;
    assert_eq!(res.status(), 201);
    let bob = app.add_member(&ada, "bob@acme.test", "member").await;
    let bob_id = token_subject(&bob.access);

    for (account, email) in [
        ("mallory", "bob@acme.test"),
        ("eve", "eve@rival.test"),
        ("pat", "pat@pending.test"),
        ("nia", "nia@acme.test"),
    ] {
        let res = sign_in(&app, &op, &ada.org, account).await;
        let body = expect_problem(res, 403, "sso_refused").await;
        assert!(
            body["detail"].as_str().unwrap().contains("verified"),
            "{account}: {body}"
        );
        // Nothing was linked or made: Bob's account has no identity, the others no account.
        if email != "bob@acme.test" {
            assert!(user_by_email(&app, email).await.is_none(), "{email}");
        }
    }
    assert_eq!(
        links_of(&app, &bob_id).await,
        0,
        "Bob's account was not merged"
    );
    // Bob's own sign-in is as before.
    let res = app
        .post_json(
            "/v1/auth/login",
            &json!({"email": "bob@acme.test", "password": PASSWORD}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let events = app.audit_events(&ada.org).await;
    let refused: Vec<&str> = events
        .iter()
        .filter(|e| e.action == "sso.sign_in_refused")
        .map(|e| e.details.as_str())
        .collect();
    assert_eq!(refused.len(), 4, "{refused:?}");
    let log = actions(&events);
    assert!(!log.contains(&"sso.identity_linked".to_owned()), "{log:?}");
    assert!(!log.contains(&"sso.account_created".to_owned()), "{log:?}");
    // The same path with a verified address in the verified domain signs in: the refusals were
    // the addresses' doing.
    assert_eq!(sign_in(&app, &op, &ada.org, "quinn").await.status(), 200);
    assert!(user_by_email(&app, "quinn@acme.test").await.is_some());
    app.chain_verifies(&ada.org).await;
}

#[tokio::test]
async fn replayed_failed_and_misdirected_callbacks_are_refused_and_store_nothing() {
    let Acme { app, ada, op, .. } = acme_with(
        vec![OidcAccount::new("carol-at-idp", "carol@acme.test")],
        &["another-client"],
        |_| {},
    )
    .await;
    let here = format!("/v1/auth/sso/{}/callback", ada.org);

    // The provider answers an error instead of a code: refused, nothing exchanged.
    let started = start(&app, &ada.org).await;
    let state = crate::oidc_provider::query_param(&started.url, "state").unwrap();
    let res = app
        .post_json(
            &here,
            &json!({"error": "access_denied", "state": state, "flow_secret": started.secret}),
        )
        .await;
    expect_problem(res, 403, "sso_refused").await;
    assert_eq!(op.token_requests("all").await, 0);

    // A code issued to another client (the authorization request re-addressed to it): the
    // provider refuses to redeem it for Gatehouse's client.
    let started = start(&app, &ada.org).await;
    let readdressed = started
        .url
        .replace("client_id=gatehouse-acme", "client_id=another-client");
    assert_ne!(readdressed, started.url);
    let back = op.authorize(&readdressed, "carol-at-idp").await;
    let res = callback(&app, &started, &back).await;
    expect_problem(res, 502, "oauth_provider_error").await;
    assert!(user_by_email(&app, "carol@acme.test").await.is_none());

    // Garbage from the token endpoint.
    op.fail_token_endpoint(FailMode::Garbage).await;
    let started = start(&app, &ada.org).await;
    let back = op.authorize(&started.url, "carol-at-idp").await;
    expect_problem(
        callback(&app, &started, &back).await,
        502,
        "oauth_provider_error",
    )
    .await;
    op.fail_token_endpoint(FailMode::None).await;
    assert!(user_by_email(&app, "carol@acme.test").await.is_none());

    // A callback without a code, a state that is not Gatehouse's, and a replay of a good one.
    let started = start(&app, &ada.org).await;
    let state = crate::oidc_provider::query_param(&started.url, "state").unwrap();
    expect_problem(
        app.post_json(
            &here,
            &json!({"state": state, "flow_secret": started.secret}),
        )
        .await,
        403,
        "sso_refused",
    )
    .await;
    let forged = app
        .kernel
        .sso()
        .flow_proof("forged.state", gatehouse_core::sso::FlowMode::Bearer)
        .unwrap();
    expect_problem(
        app.post_json(
            &here,
            &json!({"state": "forged.state", "code": "x", "flow_secret": forged}),
        )
        .await,
        400,
        "oauth_state_invalid",
    )
    .await;
    let started = start(&app, &ada.org).await;
    let back = op.authorize(&started.url, "carol-at-idp").await;
    assert_eq!(callback(&app, &started, &back).await.status(), 200);
    let exchanged = op.token_requests("all").await;
    expect_problem(
        callback(&app, &started, &back).await,
        400,
        "oauth_state_invalid",
    )
    .await;
    assert_eq!(
        op.token_requests("all").await,
        exchanged,
        "a replay sends no code"
    );
    // A redirect naming another issuer (RFC 9207) is another provider's answer.
    let started = start(&app, &ada.org).await;
    let back = op.authorize(&started.url, "carol-at-idp").await;
    let mixed = back.replace("iss=http", "iss=https");
    assert_ne!(mixed, back);
    expect_problem(callback(&app, &started, &mixed).await, 403, "sso_refused").await;

    let log = actions(&app.audit_events(&ada.org).await);
    assert!(
        log.iter().filter(|a| *a == "sso.sign_in_refused").count() >= 5,
        "{log:?}"
    );
    assert!(log.contains(&"oauth.state_refused".to_owned()), "{log:?}");
    app.chain_verifies(&ada.org).await;
}

#[tokio::test]
async fn id_tokens_for_another_client_issuer_or_sign_in_expired_or_forged_are_refused() {
    let (app, _dns, ada, stub) = oidc_stub::acme_on_stub().await;
    for (forgery, says) in [
        (Forgery::Audience, "another client"),
        (Forgery::NoAuthorizedParty, "another client"),
        (Forgery::Issuer, "another issuer"),
        (Forgery::Nonce, "nonce"),
        (Forgery::Expired, "expired"),
        (Forgery::AlgNone, "not signed by the provider's keys"),
        (Forgery::AlgHs256, "not signed by the provider's keys"),
        (Forgery::OtherKey, "not signed by the provider's keys"),
    ] {
        stub.forge(forgery);
        let body = expect_problem(
            stub_sign_in(&app, &stub, &ada.org).await,
            403,
            "sso_refused",
        )
        .await;
        assert!(
            body["detail"].as_str().unwrap().contains(says),
            "{forgery:?}: {body}"
        );
        assert!(
            user_by_email(&app, "dana@acme.test").await.is_none(),
            "{forgery:?}"
        );
    }
    let refused = app
        .audit_events(&ada.org)
        .await
        .into_iter()
        .filter(|e| e.action == "sso.sign_in_refused")
        .count();
    assert_eq!(refused, 8);
    // The same path with a correct ID token signs Dana in: each refusal was its forgery's.
    stub.forge(Forgery::None);
    let res = stub_sign_in(&app, &stub, &ada.org).await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    assert!(user_by_email(&app, "dana@acme.test").await.is_some());
    // An ID token whose address is marked verified only by a string is not verified.
    stub.person(json!({"sub": "eli", "email": "eli@acme.test", "email_verified": "true"}));
    expect_problem(
        stub_sign_in(&app, &stub, &ada.org).await,
        403,
        "sso_refused",
    )
    .await;
    assert!(user_by_email(&app, "eli@acme.test").await.is_none());
}

#[tokio::test]
async fn a_browser_sign_in_sets_cookies_only_in_the_browser_that_started_it() {
    // Without `sso.return_url` the callback answers in its body (cookie mode needs none).
    let Acme { app, ada, op, .. } = acme_with(
        vec![OidcAccount::new("carol-at-idp", "carol@acme.test")],
        &[],
        |raw| raw.sso.return_url = String::new(),
    )
    .await;
    let res = app
        .post_json(
            &format!("/v1/auth/sso/{}/start", ada.org),
            &json!({"session_mode": "cookie"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let binding = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("__Host-gatehouse_sso="))
        .unwrap();
    assert!(
        binding.contains("HttpOnly")
            && binding.contains("Secure")
            && binding.contains("SameSite=Lax"),
        "{binding}"
    );
    let cookie = binding.split(';').next().unwrap().to_owned();
    let url = res.json::<Value>().await.unwrap()["authorization_url"]
        .as_str()
        .unwrap()
        .to_owned();
    let back = op.authorize(&url, "carol-at-idp").await;
    let query = reqwest::Url::parse(&back)
        .unwrap()
        .query()
        .unwrap()
        .to_owned();
    // Another browser's binding (another sign-in's) is refused, and spends nothing.
    let res = app
        .client
        .get(app.url(&format!("/v1/auth/sso/{}/callback?{query}", ada.org)))
        .header("cookie", "__Host-gatehouse_sso=c29tZW9uZS1lbHNl")
        .send()
        .await
        .unwrap();
    expect_problem(res, 403, "sso_refused").await;
    assert_eq!(op.token_requests("all").await, 0);
    let res = app
        .client
        .get(app.url(&format!("/v1/auth/sso/{}/callback?{query}", ada.org)))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let cookies: Vec<String> = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("__Host-gatehouse_access=")),
        "{cookies:?}"
    );
    let body: Value = res.json().await.unwrap();
    assert!(
        body.get("access_token").is_none() && body["csrf_token"].is_string(),
        "{body}"
    );
}

/// A browser sign-in (cookie mode) as far as the provider's redirect back: the binding cookie
/// and the callback's query.
async fn browser_start(
    app: &TestApp,
    op: &OidcProvider,
    org: &str,
    account: &str,
) -> (String, String) {
    let (url, cookie) = crate::sso_flow::cookie_start(app, org).await;
    let back = op.authorize(&url, account).await;
    (
        cookie,
        reqwest::Url::parse(&back)
            .unwrap()
            .query()
            .unwrap()
            .to_owned(),
    )
}

#[tokio::test]
async fn with_a_return_url_a_browser_sign_in_goes_back_to_the_product() {
    const BACK: &str = "https://app.acme.test/signed-in";
    let Acme { app, ada, op, .. } = acme_with(
        vec![
            OidcAccount::new("carol-at-idp", "carol@acme.test"),
            OidcAccount::new("eve", "eve@rival.test"),
        ],
        &[],
        |raw| raw.sso.return_url = BACK.into(),
    )
    .await;
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let (cookie, query) = browser_start(&app, &op, &ada.org, "carol-at-idp").await;
    let res = no_redirects
        .get(app.url(&format!("/v1/auth/sso/{}/callback?{query}", ada.org)))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], BACK);
    let cookies: Vec<&str> = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("__Host-gatehouse_access=")),
        "{cookies:?}"
    );
    // A refusal goes back too, with its code and no session.
    let (cookie, query) = browser_start(&app, &op, &ada.org, "eve").await;
    let res = no_redirects
        .get(app.url(&format!("/v1/auth/sso/{}/callback?{query}", ada.org)))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(
        res.headers()["location"],
        format!("{BACK}?error=sso_refused")
    );
    assert!(
        !res.headers()
            .get_all("set-cookie")
            .iter()
            .any(|c| c.to_str().unwrap().contains("gatehouse_access"))
    );
    // A bearer sign-in (no binding cookie) still answers in its body.
    let res = sign_in(&app, &op, &ada.org, "carol-at-idp").await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn a_platform_provider_signs_new_people_in_without_membership_and_takes_over_no_account() {
    let client = OidcClient::new("gatehouse-social", &callback_uri("op"));
    let op = OidcProvider::start(OidcOptions {
        clients: vec![client.clone()],
        accounts: vec![
            OidcAccount::new("frank", "frank@mail.test"),
            OidcAccount::new("gina", "gina@mail.test"),
        ],
        ..OidcOptions::default()
    });
    let dir = crate::support::temp_dir();
    let secret_file = dir.join("social-secret");
    std::fs::write(&secret_file, &client.client_secret).unwrap();
    std::fs::set_permissions(
        &secret_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let issuer = op.issuer();
    let app = TestApp::spawn_with(|raw| {
        sso_config(raw);
        raw.oauth.providers = vec![gatehouse::config::oauth::ProviderConfig {
            name: "op".into(),
            issuer: Some(issuer),
            client_id: client.client_id.clone(),
            client_secret_file: Some(secret_file),
            scopes: vec!["openid".into(), "email".into(), "profile".into()],
            ..Default::default()
        }];
        raw.sso.social_providers = vec!["op".into()];
    })
    .await;
    let gina = app.signup_login("gina@mail.test", "laptop").await;

    let res = sign_in(&app, &op, "op", "frank").await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let body: Value = res.json().await.unwrap();
    assert!(body.get("organization_id").is_none(), "{body}");
    let claims = token_claims(body["access_token"].as_str().unwrap());
    assert_eq!(claims["amr"], json!(["sso"]));
    assert!(user_by_email(&app, "frank@mail.test").await.is_some());
    // Gina has an account already: a platform provider does not take it over.
    let res = sign_in(&app, &op, "op", "gina").await;
    let body = expect_problem(res, 403, "sso_refused").await;
    assert!(
        body["detail"].as_str().unwrap().contains("exists"),
        "{body}"
    );
    assert_eq!(links_of(&app, &gina.user).await, 0);
    // A provider not offered for sign-in, and an organisation without single sign-on.
    let res = app
        .post_json("/v1/auth/sso/unknown/start", &json!({}))
        .await;
    expect_problem(res, 404, "not_found").await;
    let res = app
        .post_json(&format!("/v1/auth/sso/{}/start", gina.org), &json!({}))
        .await;
    expect_problem(res, 404, "not_found").await;
    let res = app
        .post_json("/v1/auth/sso/nobody.test/start", &json!({}))
        .await;
    expect_problem(res, 404, "not_found").await;
}

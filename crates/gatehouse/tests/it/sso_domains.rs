//! Single sign-on per organisation (issue 24), the parts before any provider is asked: email
//! domains proved by a TXT record that a DNS server started by the test (dnslib) publishes, the
//! organisation's provider configuration (admin-only, stepped up, audited, its secret sealed and
//! never shown), and enforcement refusing password sign-in, switching and refreshing into the
//! organisation with `sso_required`, but for an owner with a second factor (break-glass).

use reqwest::Method;
use serde_json::{Value, json};

use crate::interop::DnsServer;
use crate::mfa::{enrol, pyotp_now, second_step};
use crate::support::{PASSWORD, Signed, TestApp, expect_problem};

/// A DNS server answering nothing yet, and a server asking it for challenge records.
pub(crate) async fn app_with_dns(
    edit: impl FnOnce(&mut gatehouse::config::RawConfig),
) -> (TestApp, DnsServer) {
    let dns = DnsServer::start(&json!({}));
    let addr = dns.address();
    let app = TestApp::spawn_with(|raw| {
        raw.sso.dns_servers = vec![addr];
        // Enforcement needs a sign-on that can start.
        raw.oauth.public_url = "https://gatehouse.test".into();
        edit(raw);
    })
    .await;
    (app, dns)
}

/// Claims `domain` for `admin`'s organisation: the record to publish (name, value).
pub(crate) async fn claim(app: &TestApp, admin: &Signed, domain: &str) -> (String, String) {
    let res = app
        .org_call(
            Method::POST,
            "/v1/sso/domains",
            admin,
            Some(json!({ "domain": domain })),
        )
        .await;
    assert_eq!(res.status(), 201, "{:?}", res.text().await);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["domain"], domain.to_ascii_lowercase());
    assert!(body["verified_at"].is_null());
    (
        body["record_name"].as_str().unwrap().to_owned(),
        body["record_value"].as_str().unwrap().to_owned(),
    )
}

pub(crate) async fn verify(app: &TestApp, admin: &Signed, domain: &str) -> reqwest::Response {
    app.org_call(
        Method::POST,
        &format!("/v1/sso/domains/{domain}/verify"),
        admin,
        None,
    )
    .await
}

/// Claims, publishes and verifies `domain` for `admin`'s organisation.
pub(crate) async fn verified_domain(
    app: &TestApp,
    dns: &DnsServer,
    admin: &Signed,
    zone: &mut Value,
    domain: &str,
) {
    let (name, value) = claim(app, admin, domain).await;
    zone[format!("{name}.")] = json!({ "TXT": [value] });
    dns.set_zone(zone);
    let res = verify(app, admin, domain).await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let body: Value = res.json().await.unwrap();
    assert!(body["verified_at"].is_string(), "{body}");
}

fn actions(events: &[gatehouse_core::audit::AuditRecord]) -> Vec<String> {
    events.iter().map(|e| e.action.clone()).collect()
}

#[tokio::test]
async fn a_domain_is_verified_only_by_its_published_record_and_by_one_organisation_at_most() {
    let (app, dns) = app_with_dns(|_| {}).await;
    let ada = app.signup_login("ada@acme.test", "laptop").await;
    let eve = app.signup_login("eve@rival.test", "laptop").await;

    let (name, value) = claim(&app, &ada, "Acme.TEST").await;
    assert_eq!(name, "_gatehouse-challenge.acme.test");
    assert!(
        value.starts_with("gatehouse-domain-verification="),
        "{value}"
    );
    assert!(value.len() > "gatehouse-domain-verification=".len() + 30);
    // Claiming it twice is a conflict; a name that is no public domain makes no claim.
    let res = app
        .org_call(
            Method::POST,
            "/v1/sso/domains",
            &ada,
            Some(json!({"domain": "acme.test"})),
        )
        .await;
    expect_problem(res, 409, "conflict").await;
    for bad in [
        "localhost",
        "acme",
        "intranet.corp",
        "-acme.test",
        "acme.test/x",
    ] {
        let res = app
            .org_call(
                Method::POST,
                "/v1/sso/domains",
                &ada,
                Some(json!({"domain": bad})),
            )
            .await;
        expect_problem(res, 422, "validation_failed").await;
    }

    // Not published: not verified, and the answer says what was looked for.
    let body = expect_problem(
        verify(&app, &ada, "acme.test").await,
        422,
        "domain_not_verified",
    )
    .await;
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains(&name) && detail.contains(&value),
        "{detail}"
    );
    // Published with another value (another organisation's, or a typo): still not.
    let mut zone = json!({});
    zone[format!("{name}.")] =
        json!({ "TXT": ["gatehouse-domain-verification=someone-else", "v=spf1 -all"] });
    dns.set_zone(&zone);
    let body = expect_problem(
        verify(&app, &ada, "acme.test").await,
        422,
        "domain_not_verified",
    )
    .await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("2 other TXT records"),
        "{body}"
    );
    let queried = dns.queries();
    assert!(
        queried.contains(&"_gatehouse-challenge.acme.test. TXT".to_owned()),
        "{queried:?}"
    );

    // Eve claims the same domain while it is unverified: allowed, as a claim proves nothing.
    let (eve_name, eve_value) = claim(&app, &eve, "acme.test").await;
    assert_eq!(eve_name, name);
    assert_ne!(eve_value, value, "each claim has its own challenge");

    // Published: verified, and listed so.
    zone[format!("{name}.")] = json!({ "TXT": ["v=spf1 -all", value] });
    dns.set_zone(&zone);
    let res = verify(&app, &ada, "acme.test").await;
    assert_eq!(res.status(), 200);
    let listed: Value = app
        .org_call(Method::GET, "/v1/sso/domains", &ada, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    assert!(listed["items"][0]["verified_at"].is_string());

    // Now it is Ada's: Eve can neither verify her claim (even with her record published) nor
    // claim it again elsewhere.
    zone[format!("{name}.")] = json!({ "TXT": [value, eve_value] });
    dns.set_zone(&zone);
    expect_problem(verify(&app, &eve, "acme.test").await, 409, "domain_taken").await;
    let carol = app.signup_login("carol@third.test", "laptop").await;
    let res = app
        .org_call(
            Method::POST,
            "/v1/sso/domains",
            &carol,
            Some(json!({"domain": "acme.test"})),
        )
        .await;
    expect_problem(res, 409, "domain_taken").await;

    // Audited where it happened, and the chains verify.
    let ada_log = actions(&app.audit_events(&ada.org).await);
    for a in [
        "sso.domain_claimed",
        "sso.domain_verification_failed",
        "sso.domain_verified",
    ] {
        assert!(ada_log.contains(&a.to_owned()), "{a} in {ada_log:?}");
    }
    assert!(
        actions(&app.audit_events(&eve.org).await).contains(&"sso.domain_claim_refused".to_owned())
    );
    assert!(
        actions(&app.audit_events(&carol.org).await)
            .contains(&"sso.domain_claim_refused".to_owned())
    );
    app.chain_verifies(&ada.org).await;
    app.chain_verifies(&eve.org).await;

    // Given up by Ada, Eve's published claim verifies.
    let res = app
        .org_call(Method::DELETE, "/v1/sso/domains/acme.test", &ada, None)
        .await;
    assert_eq!(res.status(), 204);
    assert_eq!(verify(&app, &eve, "acme.test").await.status(), 200);
    let res = app
        .org_call(Method::DELETE, "/v1/sso/domains/acme.test", &ada, None)
        .await;
    expect_problem(res, 404, "not_found").await;
}

#[tokio::test]
async fn the_configuration_is_for_admins_stepped_up_audited_and_its_secret_never_shown() {
    let (app, dns) = app_with_dns(|_| {}).await;
    let ada = app.signup_login("ada@acme.test", "laptop").await;
    let member = app.add_member(&ada, "mo@acme.test", "member").await;
    let admin = app.add_member(&ada, "al@acme.test", "admin").await;
    let secret = "s3cr3t-client-secret-value-0123456789";
    let config = json!({
        "issuer": "https://idp.acme.test",
        "client_id": "gatehouse",
        "client_secret": secret,
        "scopes": ["email", "profile", "email"],
        "default_role": "viewer",
    });

    // A member holds no sso.manage: neither reads nor writes.
    let res = app
        .org_call(Method::GET, "/v1/sso/config", &member, None)
        .await;
    expect_problem(res, 403, "forbidden").await;
    let res = app
        .org_call(Method::PUT, "/v1/sso/config", &member, Some(config.clone()))
        .await;
    expect_problem(res, 403, "forbidden").await;
    let res = app
        .org_call(
            Method::POST,
            "/v1/sso/domains",
            &member,
            Some(json!({"domain": "acme.test"})),
        )
        .await;
    expect_problem(res, 403, "forbidden").await;
    let res = app
        .org_call(Method::GET, "/v1/sso/config", &admin, None)
        .await;
    expect_problem(res, 404, "not_found").await;

    // Choosing the provider is the owner's: whoever chooses it chooses what it asserts, an
    // owner's address included. An admin's first configuration is refused, and recorded.
    let res = app
        .org_call(Method::PUT, "/v1/sso/config", &admin, Some(config.clone()))
        .await;
    expect_problem(res, 403, "forbidden").await;
    let refusals = app.audit_events(&ada.org).await;
    assert!(
        refusals
            .iter()
            .any(|e| e.action == "permission.denied" && e.details.contains("owner")),
        "{:?}",
        refusals.iter().map(|e| &e.action).collect::<Vec<_>>()
    );
    let res = app
        .org_call(Method::PUT, "/v1/sso/config", &ada, Some(config.clone()))
        .await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    // The same provider's other settings are an admin's, within the step-up window of their
    // sign-in; another issuer or client id, a default role of admin, or any client secret, stay
    // the owner's.
    let mut without_secret = config.clone();
    without_secret
        .as_object_mut()
        .unwrap()
        .remove("client_secret");
    let res = app
        .org_call(
            Method::PUT,
            "/v1/sso/config",
            &admin,
            Some(without_secret.clone()),
        )
        .await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    // The stored secret is refused as a wrong one is, word for word: no oracle for guesses.
    let mut refusals = Vec::new();
    for guess in [secret, "a-wrong-guess-of-the-client-secret"] {
        let mut c = config.clone();
        c["client_secret"] = json!(guess);
        let res = app
            .org_call(Method::PUT, "/v1/sso/config", &admin, Some(c))
            .await;
        let mut body = expect_problem(res, 403, "forbidden").await;
        body.as_object_mut().unwrap().remove("instance");
        body.as_object_mut().unwrap().remove("request_id");
        refusals.push(body);
    }
    assert_eq!(refusals[0], refusals[1]);
    for (field, value) in [
        ("issuer", json!("https://evil.acme.test")),
        ("client_id", json!("mallory")),
        ("default_role", json!("admin")),
    ] {
        let mut c = config.clone();
        c[field] = value.clone();
        let res = app
            .org_call(Method::PUT, "/v1/sso/config", &admin, Some(c))
            .await;
        expect_problem(res, 403, "forbidden").await;
    }
    let mut admins = config.clone();
    admins["default_role"] = json!("admin");
    let res = app
        .org_call(Method::PUT, "/v1/sso/config", &ada, Some(admins))
        .await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let res = app
        .org_call(
            Method::PUT,
            "/v1/sso/config",
            &admin,
            Some(without_secret.clone()),
        )
        .await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let text = res.text().await.unwrap();
    assert!(!text.contains(secret), "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["has_client_secret"], true);
    assert_eq!(body["scopes"], json!(["openid", "email", "profile"]));
    assert_eq!(body["default_role"], "viewer");
    assert_eq!(body["enforced"], false);
    let read = app
        .org_call(Method::GET, "/v1/sso/config", &admin, None)
        .await
        .text()
        .await
        .unwrap();
    assert!(!read.contains(secret));
    assert_eq!(
        serde_json::from_str::<Value>(&read).unwrap()["issuer"],
        "https://idp.acme.test"
    );

    // Bad values are refused; an owner is never made through a provider.
    for (field, value) in [
        ("issuer", json!("http://idp.acme.test")),
        ("issuer", json!("https://user:pw@idp.acme.test")),
        ("issuer", json!("https://10.0.0.7")),
        ("issuer", json!("not a url")),
        ("client_id", json!("")),
        ("default_role", json!("owner")),
        ("default_role", json!("no-such-role")),
        ("scopes", json!(["has space"])),
    ] {
        let mut c = config.clone();
        c[field] = value.clone();
        let body = expect_problem(
            app.org_call(Method::PUT, "/v1/sso/config", &admin, Some(c))
                .await,
            422,
            "validation_failed",
        )
        .await;
        assert_eq!(body["field"], field, "{value}");
    }
    // Enforcement needs a verified domain.
    let mut enforced = config.clone();
    enforced["enforced"] = json!(true);
    let res = app
        .org_call(
            Method::PUT,
            "/v1/sso/config",
            &admin,
            Some(enforced.clone()),
        )
        .await;
    expect_problem(res, 409, "conflict").await;

    // Past the step-up window every change needs a fresh check; reading does not.
    app.clock.advance(time::Duration::seconds(301));
    let admin = app
        .login("al@acme.test", PASSWORD, "laptop", &admin.user)
        .await;
    app.clock.advance(time::Duration::seconds(301));
    for (method, path, body) in [
        (Method::PUT, "/v1/sso/config", Some(config.clone())),
        (Method::DELETE, "/v1/sso/config", None),
        (
            Method::POST,
            "/v1/sso/domains",
            Some(json!({"domain": "acme.test"})),
        ),
        (Method::POST, "/v1/sso/domains/acme.test/verify", None),
    ] {
        let res = app
            .call(method, path, &admin.access, Some(&ada.org), body)
            .await;
        expect_problem(res, 403, "step_up_required").await;
    }
    let res = app
        .org_call(Method::GET, "/v1/sso/config", &admin, None)
        .await;
    assert_eq!(res.status(), 200);
    let stepped = step_up_with_password(&app, &admin).await;
    let res = app
        .call(
            Method::PUT,
            "/v1/sso/config",
            &stepped,
            Some(&ada.org),
            Some(json!({
                "issuer": "https://idp.acme.test", "client_id": "gatehouse",
                "scopes": ["email"],
            })),
        )
        .await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["client_id"], "gatehouse");
    assert_eq!(body["has_client_secret"], true, "a secret left out is kept");
    assert_eq!(body["scopes"], json!(["openid", "email"]));

    // Every change is on the organisation's chain, without the secret.
    let events = app.audit_events(&ada.org).await;
    let log = actions(&events);
    assert!(log.contains(&"sso.configured".to_owned()), "{log:?}");
    assert!(log.contains(&"sso.config_changed".to_owned()), "{log:?}");
    assert!(
        log.contains(&"permission.step_up_required".to_owned()),
        "{log:?}"
    );
    for e in &events {
        assert!(!e.details.contains(secret), "{}", e.details);
    }
    app.chain_verifies(&ada.org).await;
    // Removing the provider ends enforcement too: the owner's, stepped up, not an admin's.
    let res = app
        .call(
            Method::DELETE,
            "/v1/sso/config",
            &stepped,
            Some(&ada.org),
            None,
        )
        .await;
    let body = expect_problem(res, 403, "forbidden").await;
    assert!(body.to_string().contains("owner"), "{body}");
    let events = app.audit_events(&ada.org).await;
    assert!(
        events
            .iter()
            .any(|e| e.action == "permission.denied" && e.details.contains("sso.removed")),
        "{:?}",
        actions(&events)
    );
    assert!(!actions(&events).contains(&"sso.removed".to_owned()));
    let res = app
        .org_call(Method::GET, "/v1/sso/config", &admin, None)
        .await;
    assert_eq!(res.status(), 200, "still configured");
    let owner = app
        .login("ada@acme.test", PASSWORD, "laptop", &ada.user)
        .await;
    app.clock.advance(time::Duration::seconds(301));
    let res = app
        .call(
            Method::DELETE,
            "/v1/sso/config",
            &owner.access,
            Some(&ada.org),
            None,
        )
        .await;
    expect_problem(res, 403, "step_up_required").await;
    let stepped_owner = step_up_with_password(&app, &owner).await;
    let res = app
        .call(
            Method::DELETE,
            "/v1/sso/config",
            &stepped_owner,
            Some(&ada.org),
            None,
        )
        .await;
    assert_eq!(res.status(), 204);
    assert!(actions(&app.audit_events(&ada.org).await).contains(&"sso.removed".to_owned()));
    drop(dns);
}

/// A fresh password check for `who` (`POST /v1/auth/step-up`): the new access token.
async fn step_up_with_password(app: &TestApp, who: &Signed) -> String {
    let res = app
        .call(
            Method::POST,
            "/v1/auth/step-up",
            &who.access,
            None,
            Some(json!({"password": PASSWORD})),
        )
        .await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let body: Value = res.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

/// Signs `email` up as the owner of a new organisation with a confirmed second factor, stepped
/// up with it (so changes to the organisation's sign-on are allowed): the session and the factor's
/// secret.
pub(crate) async fn owner_with_factor(app: &TestApp, email: &str) -> (Signed, String) {
    let mut owner = app.signup_login(email, "laptop").await;
    let (secret, _) = enrol(app, &owner).await;
    // The next time step: the confirming code is spent.
    app.clock.advance(time::Duration::seconds(31));
    let res = app
        .call(
            Method::POST,
            "/v1/auth/step-up",
            &owner.access,
            None,
            Some(json!({"code": pyotp_now(app, &secret)})),
        )
        .await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let body: Value = res.json().await.unwrap();
    owner.access = body["access_token"].as_str().unwrap().to_owned();
    (owner, secret)
}

/// Turns enforcement on for `owner`'s organisation, with `domain` verified.
pub(crate) async fn enforce(app: &TestApp, dns: &DnsServer, owner: &Signed, domain: &str) {
    let mut zone = json!({});
    verified_domain(app, dns, owner, &mut zone, domain).await;
    let res = app
        .org_call(
            Method::PUT,
            "/v1/sso/config",
            owner,
            Some(json!({"issuer": "https://idp.acme.test", "client_id": "gatehouse", "enforced": true})),
        )
        .await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
}

/// `email` (who has an account) joins `owner`'s organisation as `role` through an invitation.
async fn join(app: &TestApp, owner: &Signed, email: &str, role: &str) {
    let res = app
        .org_call(
            Method::POST,
            "/v1/organization/invitations",
            owner,
            Some(json!({"email": email, "role": role})),
        )
        .await;
    assert_eq!(res.status(), 201);
    let token = app.mailed_link(email, "/accept-invitation").await;
    let res = app
        .post_json(
            "/v1/invitations/accept",
            &json!({"token": token, "password": PASSWORD}),
        )
        .await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
}

async fn login_into(app: &TestApp, email: &str, org: &str) -> reqwest::Response {
    app.post_json(
        "/v1/auth/login",
        &json!({"email": email, "password": PASSWORD, "organization_id": org, "device_name": "phone"}),
    )
    .await
}

async fn switch(app: &TestApp, who: &Signed, org: &str) -> reqwest::Response {
    app.call(
        Method::POST,
        "/v1/auth/switch-organization",
        &who.access,
        None,
        Some(json!({ "organization_id": org })),
    )
    .await
}

#[tokio::test]
async fn enforcement_refuses_password_sign_in_switching_and_refreshing_into_the_organisation() {
    let (app, dns) = app_with_dns(|_| {}).await;
    let (ada, _) = owner_with_factor(&app, "ada@acme.test").await;
    // Bob has his own organisation and joins Ada's; he has a password session in each.
    let bob = app.signup_login("bob@acme.test", "laptop").await;
    join(&app, &ada, "bob@acme.test", "member").await;
    let res = login_into(&app, "bob@acme.test", &ada.org).await;
    assert_eq!(res.status(), 200);
    let bob_in_acme = Signed::from_login(&bob.user, &res.json().await.unwrap());
    assert_eq!(bob_in_acme.org, ada.org);
    enforce(&app, &dns, &ada, "acme.test").await;

    // The password, naming the organisation: refused, with where to sign in instead.
    let body = expect_problem(
        login_into(&app, "bob@acme.test", &ada.org).await,
        403,
        "sso_required",
    )
    .await;
    assert!(
        body["detail"].as_str().unwrap().contains("/v1/auth/sso/"),
        "{body}"
    );
    // A wrong password is still only that: enforcement tells a guesser nothing.
    let res = app
        .post_json(
            "/v1/auth/login",
            &json!({"email": "bob@acme.test", "password": "not the password", "organization_id": ada.org}),
        )
        .await;
    expect_problem(res, 401, "invalid_credentials").await;
    // Not naming one, the session opens in his own organisation, never the enforcing one.
    let home = app
        .login("bob@acme.test", PASSWORD, "tablet", &bob.user)
        .await;
    assert_eq!(home.org, bob.org);
    // A password session cannot switch in; it still switches elsewhere.
    expect_problem(switch(&app, &home, &ada.org).await, 403, "sso_required").await;
    assert_eq!(switch(&app, &home, &bob.org).await.status(), 200);
    // The session that was in before enforcement ends at its refresh.
    let res = app
        .post_json(
            "/v1/auth/refresh",
            &json!({"refresh_token": bob_in_acme.refresh}),
        )
        .await;
    expect_problem(res, 403, "sso_required").await;
    let res = app
        .post_json(
            "/v1/auth/refresh",
            &json!({"refresh_token": bob_in_acme.refresh}),
        )
        .await;
    expect_problem(res, 401, "unauthenticated").await;
    // His own organisation's sessions are untouched.
    let res = app
        .post_json("/v1/auth/refresh", &json!({"refresh_token": home.refresh}))
        .await;
    assert_eq!(res.status(), 200);

    // Each refusal is on the enforcing organisation's chain.
    let events = app.audit_events(&ada.org).await;
    let refused: Vec<&str> = events
        .iter()
        .filter(|e| e.action == "session.sso_required")
        .map(|e| e.details.as_str())
        .collect();
    assert!(
        refused.iter().any(|d| d.contains("password_sign_in")),
        "{refused:?}"
    );
    assert!(refused.iter().any(|d| d.contains("switch")), "{refused:?}");
    assert!(actions(&events).contains(&"session.ended_sso_required".to_owned()));
    app.chain_verifies(&ada.org).await;

    // Turned off, the password works again.
    let res = app
        .org_call(
            Method::PUT,
            "/v1/sso/config",
            &ada,
            Some(json!({"issuer": "https://idp.acme.test", "client_id": "gatehouse"})),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        login_into(&app, "bob@acme.test", &ada.org).await.status(),
        200
    );
}

#[tokio::test]
async fn an_owner_with_a_second_factor_may_still_use_a_password_and_no_one_else() {
    let (app, dns) = app_with_dns(|_| {}).await;
    let ada = app.signup_login("ada@acme.test", "laptop").await;
    let cy = app.signup_login("cy@acme.test", "laptop").await;
    join(&app, &ada, "cy@acme.test", "owner").await;
    let mut zone = json!({});
    verified_domain(&app, &dns, &ada, &mut zone, "acme.test").await;
    // No owner has a second factor: enforcing would leave no way in if the provider failed.
    let enforced =
        json!({"issuer": "https://idp.acme.test", "client_id": "gatehouse", "enforced": true});
    let body = expect_problem(
        app.org_call(Method::PUT, "/v1/sso/config", &ada, Some(enforced.clone()))
            .await,
        409,
        "conflict",
    )
    .await;
    assert!(
        body["detail"].as_str().unwrap().contains("break-glass"),
        "{body}"
    );
    // Cy, another owner, enrols one: now Ada (without) may turn enforcement on.
    let (cy_secret, _) = enrol(&app, &cy).await;
    let res = app
        .org_call(Method::PUT, "/v1/sso/config", &ada, Some(enforced))
        .await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);

    // Ada, an owner without a factor, is refused like anyone; her session ends at its refresh.
    expect_problem(
        login_into(&app, "ada@acme.test", &ada.org).await,
        403,
        "sso_required",
    )
    .await;
    let res = app
        .post_json("/v1/auth/refresh", &json!({"refresh_token": ada.refresh}))
        .await;
    expect_problem(res, 403, "sso_required").await;
    // Cy's password and factor open a session in the organisation (break-glass) ...
    app.clock.advance(time::Duration::seconds(31));
    let res = login_into(&app, "cy@acme.test", &ada.org).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let mfa_token = body["mfa_token"].as_str().unwrap().to_owned();
    let res = second_step(
        &app,
        &mfa_token,
        json!({"code": pyotp_now(&app, &cy_secret)}),
    )
    .await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["organization_id"], ada.org);
    // ... which its refresh keeps.
    let res = app
        .post_json(
            "/v1/auth/refresh",
            &json!({"refresh_token": body["refresh_token"]}),
        )
        .await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    // An admin with a second factor is no owner: refused.
    let di = app.signup_login("di@acme.test", "laptop").await;
    enrol(&app, &di).await;
    let cy_in = Signed::from_login(&cy.user, &body);
    let res = app
        .org_call(
            Method::POST,
            "/v1/organization/invitations",
            &cy_in,
            Some(json!({"email": "di@acme.test", "role": "admin"})),
        )
        .await;
    assert_eq!(res.status(), 201, "{:?}", res.text().await);
    let token = app.mailed_link("di@acme.test", "/accept-invitation").await;
    let res = app
        .post_json(
            "/v1/invitations/accept",
            &json!({"token": token, "password": PASSWORD}),
        )
        .await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    expect_problem(
        login_into(&app, "di@acme.test", &ada.org).await,
        403,
        "sso_required",
    )
    .await;
}

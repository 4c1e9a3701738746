//! What a sign-on's links and sessions reach (issue 24's fourth review): a platform provider
//! follows no link an organisation's sign-on made, and a session an organisation's sign-on began
//! acts only within that organisation (its links, its sessions; a refused switch out of it is
//! audited). Against `oidc-provider` and the stub provider, as `sso_signin.rs`.

use std::sync::{Arc, OnceLock};

use reqwest::Method;
use serde_json::{Value, json};

use crate::oidc_provider::OidcAccount;
use crate::oidc_stub::{CLIENT_ID, OidcStub};
use crate::sso_domains::{app_with_dns, owner_with_factor, verified_domain};
use crate::sso_signin::{
    Acme, acme, configure, links_of, sign_in, sso_config, stub_sign_in, user_by_email,
};
use crate::support::{PASSWORD, Signed, TestApp, expect_problem};

const SOCIAL: &str = "social";

/// The stub provider first (a platform provider is configured before the server starts), then
/// the server with it as the platform provider `social`, and Acme's owner with acme.test
/// verified and the same stub as Acme's own provider.
async fn one_issuer_for_both() -> (TestApp, crate::interop::DnsServer, Signed, OidcStub) {
    let slot: Arc<OnceLock<gatehouse_core::FakeClock>> = Arc::new(OnceLock::new());
    let seen = Arc::clone(&slot);
    let stub = OidcStub::start(Arc::new(move || {
        seen.get()
            .map_or(0, |c| gatehouse_core::Clock::now(c).unix_timestamp())
    }))
    .await;
    let dir = crate::support::temp_dir();
    let secret_file = dir.join("social-secret");
    std::fs::write(&secret_file, "stub-secret").unwrap();
    std::fs::set_permissions(
        &secret_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let issuer = stub.issuer.clone();
    let (app, dns) = app_with_dns(|raw| {
        sso_config(raw);
        raw.oauth.providers = vec![gatehouse::config::oauth::ProviderConfig {
            name: SOCIAL.into(),
            issuer: Some(issuer),
            client_id: CLIENT_ID.into(),
            client_secret_file: Some(secret_file),
            scopes: vec!["openid".into(), "email".into()],
            ..Default::default()
        }];
        raw.sso.social_providers = vec![SOCIAL.into()];
    })
    .await;
    slot.set(app.clock.clone()).ok().unwrap();
    let (ada, _) = owner_with_factor(&app, "ada@acme.test").await;
    let mut zone = json!({});
    verified_domain(&app, &dns, &ada, &mut zone, "acme.test").await;
    configure(
        &app,
        &ada,
        &stub.issuer,
        CLIENT_ID,
        "stub-secret",
        json!({}),
    )
    .await;
    (app, dns, ada, stub)
}

/// One issuer is both Acme's provider and the platform provider: an identity Acme's sign-on
/// linked signs nobody in through the platform provider by that link. The address rules then
/// decide, and a platform provider never takes over an account nor links an identity linked
/// already: refused, nothing linked twice or made. An identity only the platform provider linked
/// still signs in through it.
#[tokio::test]
async fn a_platform_provider_follows_no_link_an_organisations_sign_on_made() {
    let (app, _dns, ada, stub) = one_issuer_for_both().await;
    stub.person(json!({"sub": "dana-at-idp", "email": "dana@acme.test", "email_verified": true}));
    let res = stub_sign_in(&app, &stub, &ada.org).await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let dana = user_by_email(&app, "dana@acme.test").await.unwrap();
    let dana_id = dana.id.to_string();
    assert_eq!(links_of(&app, &dana_id).await, 1);

    // The same issuer and subject through the platform provider: the link is Acme's.
    let res = stub_sign_in(&app, &stub, SOCIAL).await;
    let body = expect_problem(res, 403, "sso_refused").await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("account with this address exists"),
        "{body}"
    );
    // With another address the provider verified: no account made for it, none linked.
    stub.person(json!({"sub": "dana-at-idp", "email": "dana@mail.test", "email_verified": true}));
    let res = stub_sign_in(&app, &stub, SOCIAL).await;
    let body = expect_problem(res, 403, "sso_refused").await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("linked to another account"),
        "{body}"
    );
    assert!(user_by_email(&app, "dana@mail.test").await.is_none());
    let mut tx = app.kernel.store().begin_read().await.unwrap();
    let links = tx.external_identities_of(dana.id).await.unwrap();
    drop(tx);
    assert_eq!(links.len(), 1, "{links:?}");
    assert_eq!(
        links[0].linked_by.map(|o| o.to_string()),
        Some(ada.org.clone())
    );

    // The control: an identity the platform provider made and linked signs in through it, by
    // its link, again and again.
    stub.person(json!({"sub": "frank-at-idp", "email": "frank@mail.test", "email_verified": true}));
    for _ in 0..2 {
        let res = stub_sign_in(&app, &stub, SOCIAL).await;
        assert_eq!(res.status(), 200, "{:?}", res.text().await);
    }
    let frank = user_by_email(&app, "frank@mail.test").await.unwrap();
    assert_eq!(links_of(&app, &frank.id.to_string()).await, 1);
}

/// Bob, a member of Acme only, and his session through Acme's sign-on (stepped up with his
/// password, so a step-up is not what refuses it).
async fn bob_through_acme() -> (Acme, Signed, Signed) {
    let acme = acme(vec![OidcAccount::new("bob-at-idp", "bob@acme.test")]).await;
    let bob = acme
        .app
        .add_member(&acme.ada, "bob@acme.test", "member")
        .await;
    let res = sign_in(&acme.app, &acme.op, &acme.ada.org, "bob-at-idp").await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let mut through = Signed::from_login(&bob.user, &res.json::<Value>().await.unwrap());
    let res = acme
        .app
        .call(
            Method::POST,
            "/v1/auth/step-up",
            &through.access,
            None,
            Some(json!({"password": PASSWORD})),
        )
        .await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    through.access = res.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    (acme, bob, through)
}

async fn unlink(app: &TestApp, access: &str, id: &str) -> reqwest::Response {
    app.call(
        Method::DELETE,
        &format!("/v1/me/sso/links/{id}"),
        access,
        None,
        None,
    )
    .await
}

/// A session Acme's sign-on began ends only Acme's links, and only sessions begun through
/// Acme's sign-on: not the account's other links (a platform provider's, another
/// organisation's), not its password session, and not all its other sessions at once. Bob's
/// password session still does all of it.
#[tokio::test]
async fn a_session_through_an_organisations_sign_on_ends_only_that_organisations_links_and_sessions()
 {
    let (Acme { app, ada, op, .. }, bob, through) = bob_through_acme().await;
    let bob_id = gatehouse_core::UserId::parse(&bob.user).unwrap();
    let eve = app.signup_login("eve@rival.test", "laptop").await;
    let mut tx = app.kernel.store().begin().await.unwrap();
    for (issuer, by) in [
        ("https://accounts.example", None),
        (
            "https://idp.rival.test",
            Some(gatehouse_core::OrgId::parse(&eve.org).unwrap()),
        ),
    ] {
        tx.insert_external_identity(&gatehouse_core::store::ExternalIdentityRecord {
            issuer: issuer.into(),
            subject: "bob".into(),
            user_id: bob_id,
            linked_by: by,
            created_at: gatehouse_core::Clock::now(&app.clock),
        })
        .await
        .unwrap();
    }
    tx.commit(gatehouse_core::audit::Audited::for_tests())
        .await
        .unwrap();
    // The confined session sees only the link its organisation's sign-on made.
    let res = app
        .call(Method::GET, "/v1/me/sso/links", &through.access, None, None)
        .await;
    let seen: Value = res.json().await.unwrap();
    let seen = seen["items"].as_array().unwrap();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0]["organization_id"], ada.org.as_str());
    let res = app
        .call(Method::GET, "/v1/me/sso/links", &bob.access, None, None)
        .await;
    let links: Value = res.json().await.unwrap();
    let id_of = |org: Option<&str>| {
        links["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["organization_id"].as_str() == org)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (acmes, rivals, social) = (id_of(Some(&ada.org)), id_of(Some(&eve.org)), id_of(None));
    for id in [&rivals, &social] {
        let body =
            expect_problem(unlink(&app, &through.access, id).await, 403, "sso_refused").await;
        assert!(
            body["detail"].as_str().unwrap().contains("only the links"),
            "{body}"
        );
    }
    assert_eq!(links_of(&app, &bob.user).await, 3);
    assert_eq!(unlink(&app, &through.access, &acmes).await.status(), 204);
    assert_eq!(unlink(&app, &bob.access, &social).await.status(), 204);
    assert_eq!(links_of(&app, &bob.user).await, 1);

    // Sessions: not all the others at once, not the password session; another session through
    // Acme's sign-on, yes. The confined session does not even see the password session.
    let res = app
        .call(Method::GET, "/v1/me/sessions", &through.access, None, None)
        .await;
    let listed = res.text().await.unwrap();
    assert!(!listed.contains(&bob.session), "{listed}");
    assert!(listed.contains(&through.session), "{listed}");
    let res = app
        .call(
            Method::POST,
            "/v1/me/sessions/revoke-others",
            &through.access,
            None,
            None,
        )
        .await;
    let body = expect_problem(res, 403, "sso_refused").await;
    assert!(
        body["detail"].as_str().unwrap().contains("stays in that"),
        "{body}"
    );
    let res = app
        .call(
            Method::DELETE,
            &format!("/v1/me/sessions/{}", bob.session),
            &through.access,
            None,
            None,
        )
        .await;
    expect_problem(res, 403, "sso_refused").await;
    let res = app
        .call(Method::GET, "/v1/me", &bob.access, None, None)
        .await;
    assert_eq!(res.status(), 200, "the password session lives");
    let res = sign_in(&app, &op, &ada.org, "bob-at-idp").await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let again = Signed::from_login(&bob.user, &res.json::<Value>().await.unwrap());
    let res = app
        .call(
            Method::DELETE,
            &format!("/v1/me/sessions/{}", again.session),
            &through.access,
            None,
            None,
        )
        .await;
    assert_eq!(res.status(), 204, "{:?}", res.text().await);
    // The password session ends all the others, the one through Acme's sign-on among them.
    let res = app
        .call(
            Method::POST,
            "/v1/me/sessions/revoke-others",
            &bob.access,
            None,
            None,
        )
        .await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let res = app
        .call(Method::GET, "/v1/me", &through.access, None, None)
        .await;
    assert_eq!(res.status(), 401);
}

/// A session Acme's sign-on began, refused a switch into another organisation Bob belongs to:
/// the refusal is on that organisation's audit chain.
#[tokio::test]
async fn a_refused_switch_out_of_an_organisations_sign_on_is_audited() {
    let (Acme { app, .. }, _bob, through) = bob_through_acme().await;
    let eve = app.signup_login("eve@rival.test", "laptop").await;
    // Acme's invitation, spent: Eve's is the next one mailed.
    let spent = app.mailed_link("bob@acme.test", "/accept-invitation").await;
    let res = app
        .org_call(
            Method::POST,
            "/v1/organization/invitations",
            &eve,
            Some(json!({"email": "bob@acme.test", "role": "member"})),
        )
        .await;
    assert_eq!(res.status(), 201, "{:?}", res.text().await);
    let mut token = spent.clone();
    for _ in 0..100 {
        token = app.mailed_link("bob@acme.test", "/accept-invitation").await;
        if token != spent {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let res = app
        .post_json(
            "/v1/invitations/accept",
            &json!({"token": token, "password": PASSWORD}),
        )
        .await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let before = app.audit_events(&eve.org).await.len();
    let res = app
        .call(
            Method::POST,
            "/v1/auth/switch-organization",
            &through.access,
            None,
            Some(json!({"organization_id": eve.org})),
        )
        .await;
    expect_problem(res, 403, "sso_refused").await;
    let events = app.audit_events(&eve.org).await;
    assert_eq!(events.len(), before + 1);
    let refused = events
        .iter()
        .find(|e| e.action == "session.switch_refused")
        .unwrap_or_else(|| panic!("{:?}", events.iter().map(|e| &e.action).collect::<Vec<_>>()));
    assert_eq!(refused.outcome, "denied");
    assert!(
        refused.details.contains("sso_confined"),
        "{}",
        refused.details
    );
    assert_eq!(refused.actor_id, through.user);
    app.chain_verifies(&eve.org).await;
}

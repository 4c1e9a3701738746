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
    let eve = bob_joins_rival(&app).await;
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

/// Eve's organisation, Rival, which Bob (of `bob_through_acme`) joins by her invitation.
async fn bob_joins_rival(app: &TestApp) -> Signed {
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
    eve
}

fn memberships(me: &Value) -> Vec<String> {
    me["memberships"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["organization_id"].as_str().unwrap().to_owned())
        .collect()
}

async fn exports_recorded(app: &TestApp, org: &str) -> usize {
    app.audit_events(org)
        .await
        .iter()
        .filter(|e| e.action == "data.exported")
        .count()
}

/// Bob belongs to Acme and to Rival. A session Acme's sign-on began (stepped up, so the
/// step-up is not what refuses it) sees only his Acme membership, exports only his Acme data and
/// does not erase the account, which would reach Rival's. Bob's password session does both.
#[tokio::test]
async fn a_session_through_an_organisations_sign_on_neither_sees_nor_exports_nor_erases_the_others()
{
    let (Acme { app, ada, .. }, bob, through) = bob_through_acme().await;
    let eve = bob_joins_rival(&app).await;
    let res = app
        .call(Method::GET, "/v1/me", &through.access, None, None)
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        memberships(&res.json().await.unwrap()),
        vec![ada.org.clone()]
    );
    let res = app
        .call(Method::GET, "/v1/me", &bob.access, None, None)
        .await;
    let mut all = memberships(&res.json().await.unwrap());
    all.sort();
    let mut want = vec![ada.org.clone(), eve.org.clone()];
    want.sort();
    assert_eq!(all, want);

    // The export: only Bob's data in Acme (no other organisation's, no links, no mail), recorded
    // on Acme's chain only.
    let (acme_before, rival_before) = (
        exports_recorded(&app, &ada.org).await,
        exports_recorded(&app, &eve.org).await,
    );
    let (header, lines, _) = crate::exports::my_export(&app, &through, 1000).await;
    assert_eq!(
        header["subject"]["organization_id"],
        ada.org.as_str(),
        "{header}"
    );
    let text = serde_json::to_string(&lines).unwrap();
    assert!(
        !text.contains(&eve.org),
        "another organisation in the export: {text}"
    );
    assert!(text.contains(&ada.org), "{text}");
    assert!(
        lines
            .iter()
            .all(|l| l["type"] != "external_identity" && l["type"] != "mail"),
        "{text}"
    );
    assert_eq!(exports_recorded(&app, &ada.org).await, acme_before + 1);
    assert_eq!(exports_recorded(&app, &eve.org).await, rival_before);
    let (_, lines, _) = crate::exports::my_export(&app, &bob, 1000).await;
    let text = serde_json::to_string(&lines).unwrap();
    assert!(text.contains(&eve.org), "the password session's export");
    let linked: Vec<&Value> = lines
        .iter()
        .filter(|l| l["type"] == "external_identity")
        .collect();
    assert_eq!(linked.len(), 1, "{text}");
    assert_eq!(linked[0]["subject"], "bob-at-idp");

    // The erasure, even with the password: refused; the account stays.
    let res = app
        .call(
            Method::POST,
            "/v1/me/erase",
            &through.access,
            None,
            Some(json!({"password": PASSWORD})),
        )
        .await;
    let body = expect_problem(res, 403, "sso_refused").await;
    assert!(body["detail"].as_str().unwrap().contains("erase"), "{body}");
    assert!(user_by_email(&app, "bob@acme.test").await.is_some());
    let res = app
        .call(
            Method::POST,
            "/v1/me/erase",
            &bob.access,
            None,
            Some(json!({"password": PASSWORD})),
        )
        .await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    assert!(user_by_email(&app, "bob@acme.test").await.is_none());
}

async fn refresh(app: &TestApp, who: &Signed) -> reqwest::Response {
    app.post_json("/v1/auth/refresh", &json!({"refresh_token": who.refresh}))
        .await
}

/// Bob's session through Acme's sign-on no longer refreshes nor is accepted; his password
/// session does both. The event (`action`) on Acme's chain counts the one session it ended.
async fn only_the_sign_ons_session_ended(
    app: &TestApp,
    acme: &str,
    bob: &Signed,
    through: &Signed,
    action: &str,
) {
    assert!(!through.refresh.is_empty());
    expect_problem(refresh(app, through).await, 401, "unauthenticated").await;
    let res = app
        .call(Method::GET, "/v1/auth/verify", &through.access, None, None)
        .await;
    expect_problem(res, 401, "unauthenticated").await;
    let res = app
        .call(Method::GET, "/v1/me", &bob.access, None, None)
        .await;
    assert_eq!(res.status(), 200, "the password session lives");
    assert_eq!(refresh(app, bob).await.status(), 200);
    // The event that ended it counts it (an earlier change that ended nothing counts none).
    let counts: Vec<Value> = app
        .audit_events(acme)
        .await
        .iter()
        .filter(|e| e.action == action)
        .map(|e| serde_json::from_str::<Value>(&e.details).unwrap()["sso_sessions_revoked"].clone())
        .collect();
    assert_eq!(
        counts.iter().filter(|c| **c == json!(1)).count(),
        1,
        "{counts:?}"
    );
    assert!(
        counts.iter().all(|c| *c == json!(0) || *c == json!(1)),
        "{counts:?}"
    );
    app.chain_verifies(acme).await;
}

/// The owner removes Acme's sign-on: the sessions it began end with it (and everywhere, through
/// the revocation fan-out); a password session does not.
#[tokio::test]
async fn removing_an_organisations_sign_on_ends_the_sessions_it_began() {
    let (Acme { app, ada, .. }, bob, through) = bob_through_acme().await;
    let res = app
        .call(Method::GET, "/v1/me", &through.access, None, None)
        .await;
    assert_eq!(res.status(), 200, "it works until then");
    let res = app
        .org_call(Method::DELETE, "/v1/sso/config", &ada, None)
        .await;
    assert_eq!(res.status(), 204, "{:?}", res.text().await);
    only_the_sign_ons_session_ended(&app, &ada.org, &bob, &through, "sso.removed").await;
}

/// The owner gives Acme's sign-on another issuer: another provider, which vouched for none of
/// the sessions the old one began; they end, a password session does not.
#[tokio::test]
async fn an_organisations_sign_on_changing_issuer_ends_the_sessions_it_began() {
    let (
        Acme {
            app,
            ada,
            op,
            client,
            ..
        },
        bob,
        through,
    ) = bob_through_acme().await;
    let res = app
        .call(Method::GET, "/v1/me", &through.access, None, None)
        .await;
    assert_eq!(res.status(), 200, "it works until then");
    // The same client of the same issuer again: nothing ends.
    configure(
        &app,
        &ada,
        &op.issuer(),
        &client.client_id,
        &client.client_secret,
        json!({}),
    )
    .await;
    let res = app
        .call(Method::GET, "/v1/me", &through.access, None, None)
        .await;
    assert_eq!(res.status(), 200, "the same issuer keeps it");
    configure(
        &app,
        &ada,
        &format!("{}/elsewhere", op.issuer().trim_end_matches('/')),
        &client.client_id,
        &client.client_secret,
        json!({}),
    )
    .await;
    only_the_sign_ons_session_ended(&app, &ada.org, &bob, &through, "sso.config_changed").await;
}

/// A sign-in whose organisation removes its sign-on while the provider is still answering the
/// code exchange gets no session: the removal ended the sessions begun through it, and none may
/// begin after it through what it removed (fifth review).
#[tokio::test]
async fn a_sign_on_removed_during_the_code_exchange_signs_no_one_in() {
    let (app, _dns, ada, stub) = crate::oidc_stub::acme_on_stub().await;
    let held = stub.hold_tokens().await;
    let before = stub.token_calls();
    let remove_meanwhile = async {
        for _ in 0..200 {
            if stub.token_calls() > before {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        assert_eq!(
            stub.token_calls(),
            before + 1,
            "the exchange never reached the provider"
        );
        let res = app
            .org_call(Method::DELETE, "/v1/sso/config", &ada, None)
            .await;
        assert_eq!(res.status(), 204, "{:?}", res.text().await);
        drop(held);
    };
    let (res, ()) = tokio::join!(
        crate::sso_signin::stub_sign_in(&app, &stub, &ada.org),
        remove_meanwhile
    );
    let body = expect_problem(res, 403, "sso_refused").await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("removed or changed"),
        "{body}"
    );
    assert!(
        crate::sso_signin::user_by_email(&app, "dana@acme.test")
            .await
            .is_none(),
        "nobody was made or linked"
    );
    app.stop().await;
}

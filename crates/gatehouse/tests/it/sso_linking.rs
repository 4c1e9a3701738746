//! Which existing accounts a provider's verified address may link (issue 24's review findings):
//! never an account whose address was never verified (whoever registered it first would keep a
//! password into it), and never an owner or admin of the organisation or an account of another
//! organisation (whoever manages the sign-on chooses the provider, and the provider may assert
//! any address of the domain). Against `oidc-provider`, as `sso_signin.rs`.

use reqwest::Method;
use serde_json::json;

use crate::oidc_provider::OidcAccount;
use crate::sso_signin::{Acme, acme, sign_in};
use crate::support::{PASSWORD, TestApp, expect_problem, token_subject};

async fn links_of(app: &TestApp, user: gatehouse_core::UserId) -> usize {
    let mut tx = app.kernel.store().begin_read().await.unwrap();
    tx.external_identities_of(user).await.unwrap().len()
}

fn refusals(events: &[gatehouse_core::audit::AuditRecord]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.action == "sso.sign_in_refused")
        .map(|e| e.details.clone())
        .collect()
}

#[tokio::test]
async fn an_account_whose_address_was_never_verified_is_not_linked_and_keeps_its_own_way_in() {
    let Acme { app, ada, op, .. } = acme(vec![
        OidcAccount::new("vic-at-idp", "vic@acme.test"),
        OidcAccount::new("sam-at-idp", "sam@acme.test"),
    ])
    .await;
    // A squatter registered Vic's address first and never verified it: an account of no
    // organisation (as a deployment without self-service organisations makes it).
    let squatter = gatehouse_core::store::UserRecord {
        id: gatehouse_core::UserId::new(&app.clock),
        email: "vic@acme.test".into(),
        name: "Not Vic".into(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c3F1YXR0ZXI$c3F1YXR0ZXJzLXBhc3N3b3JkLWhhc2g"
            .into(),
        created_at: gatehouse_core::Clock::now(&app.clock),
        email_verified_at: None,
        disabled_at: None,
    };
    let mut tx = app.kernel.store().begin().await.unwrap();
    tx.insert_user(&squatter).await.unwrap();
    tx.commit(gatehouse_core::audit::Audited::for_tests())
        .await
        .unwrap();

    // Vic signs in through the provider, which vouches for the address in the proven domain:
    // refused, nothing linked, nothing joined, the reason recorded.
    let res = sign_in(&app, &op, &ada.org, "vic-at-idp").await;
    let body = expect_problem(res, 403, "sso_refused").await;
    assert!(
        body["detail"].as_str().unwrap().contains("never verified"),
        "{body}"
    );
    assert_eq!(links_of(&app, squatter.id).await, 0);
    let mut tx = app.kernel.store().begin_read().await.unwrap();
    assert!(
        tx.memberships_of_user(squatter.id)
            .await
            .unwrap()
            .is_empty()
    );
    drop(tx);
    let events = app.audit_events(&ada.org).await;
    let refused = refusals(&events);
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(refused[0].contains("never verified"), "{refused:?}");
    assert!(!events.iter().any(|e| e.action == "sso.identity_linked"));

    // A self-registration (its own organisation, its address unverified) is refused the same way.
    let sam = app.signup_login("sam@acme.test", "laptop").await;
    let res = sign_in(&app, &op, &ada.org, "sam-at-idp").await;
    let body = expect_problem(res, 403, "sso_refused").await;
    assert!(
        body["detail"].as_str().unwrap().contains("never verified"),
        "{body}"
    );
    let sam_id = gatehouse_core::UserId::parse(&token_subject(&sam.access)).unwrap();
    assert_eq!(links_of(&app, sam_id).await, 0);
    app.chain_verifies(&ada.org).await;
}

#[tokio::test]
async fn owners_admins_and_members_of_other_organisations_are_never_linked_by_address() {
    let Acme { app, ada, op, .. } = acme(vec![
        OidcAccount::new("al-at-idp", "al@acme.test"),
        OidcAccount::new("olga-at-idp", "olga@acme.test"),
        OidcAccount::new("bob-at-idp", "bob@acme.test"),
        OidcAccount::new("ada-at-idp", "ada@acme.test"),
    ])
    .await;
    let al = app.add_member(&ada, "al@acme.test", "admin").await;
    let bob = app.add_member(&ada, "bob@acme.test", "member").await;
    // Olga owns another organisation, her address verified.
    let olga = app.signup_login("olga@acme.test", "laptop").await;
    let token = app.mailed_link("olga@acme.test", "/verify-email").await;
    let res = app
        .post_json("/v1/auth/verify-email", &json!({"token": token}))
        .await;
    assert!(res.status().is_success(), "{:?}", res.text().await);

    for (who, account) in [(&al, "al-at-idp"), (&olga, "olga-at-idp")] {
        let res = sign_in(&app, &op, &ada.org, account).await;
        let body = expect_problem(res, 403, "sso_refused").await;
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains("never by its address"),
            "{account}: {body}"
        );
        let id = gatehouse_core::UserId::parse(&token_subject(&who.access)).unwrap();
        assert_eq!(links_of(&app, id).await, 0, "{account}");
    }
    // The owner, whose address the provider may assert as well: refused, not linked.
    let res = sign_in(&app, &op, &ada.org, "ada-at-idp").await;
    expect_problem(res, 403, "sso_refused").await;
    let ada_id = gatehouse_core::UserId::parse(&token_subject(&ada.access)).unwrap();
    assert_eq!(links_of(&app, ada_id).await, 0);
    // Olga is still no member here, and Al still an admin signing in with his password.
    let res = app
        .org_call(Method::GET, "/v1/organization/members", &ada, None)
        .await;
    let text = res.text().await.unwrap();
    assert!(!text.contains("olga@acme.test"), "{text}");
    app.login("al@acme.test", PASSWORD, "laptop", &al.user)
        .await;

    // A plain member of only this organisation, address verified: linked (the control).
    let res = sign_in(&app, &op, &ada.org, "bob-at-idp").await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let bob_id = gatehouse_core::UserId::parse(&token_subject(&bob.access)).unwrap();
    assert_eq!(links_of(&app, bob_id).await, 1);
    assert_eq!(refusals(&app.audit_events(&ada.org).await).len(), 3);
    app.chain_verifies(&ada.org).await;
}

/// The provider's answer in `back` as the product's page posts it to complete a link.
fn link_answer(back: &str) -> serde_json::Value {
    let url = reqwest::Url::parse(back).unwrap();
    let mut body = json!({});
    for (k, v) in url.query_pairs() {
        if ["state", "code", "iss", "error"].contains(&k.as_ref()) {
            body[k.as_ref()] = json!(v.into_owned());
        }
    }
    body
}

#[tokio::test]
async fn an_admin_links_their_own_account_while_signed_in_and_only_they_complete_it() {
    let Acme { app, ada, op, .. } = acme(vec![
        OidcAccount::new("al-at-idp", "al@acme.test"),
        OidcAccount::new("bob-at-idp", "bob@acme.test"),
    ])
    .await;
    let al = app.add_member(&ada, "al@acme.test", "admin").await;
    let bob = app.add_member(&ada, "bob@acme.test", "member").await;
    let al_id = gatehouse_core::UserId::parse(&token_subject(&al.access)).unwrap();
    expect_problem(
        sign_in(&app, &op, &ada.org, "al-at-idp").await,
        403,
        "sso_refused",
    )
    .await;

    let exchanged = op.token_requests("all").await;
    // Al starts a link with his session and signs in at the provider.
    let res = app
        .org_call(Method::POST, "/v1/me/sso/link", &al, None)
        .await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let url = res.json::<serde_json::Value>().await.unwrap()["authorization_url"]
        .as_str()
        .unwrap()
        .to_owned();
    let back = op.authorize(&url, "al-at-idp").await;
    let answer = link_answer(&back);
    // Bob holds the answer: not his link (refused before any code is sent, nothing spent).
    let res = app
        .org_call(
            Method::POST,
            "/v1/me/sso/link/complete",
            &bob,
            Some(answer.clone()),
        )
        .await;
    expect_problem(res, 400, "oauth_state_invalid").await;
    assert_eq!(op.token_requests("all").await, exchanged);
    // Nor does the sign-in callback take a link's state (it never had a flow secret to show).
    let res = app
        .post_json(
            &format!("/v1/auth/sso/{}/callback", ada.org),
            &json!({"state": answer["state"], "code": answer["code"], "flow_secret": "1.AAAA"}),
        )
        .await;
    expect_problem(res, 403, "sso_refused").await;
    // Al completes it: linked, audited; he then signs in through the provider.
    let res = app
        .org_call(
            Method::POST,
            "/v1/me/sso/link/complete",
            &al,
            Some(answer.clone()),
        )
        .await;
    assert_eq!(res.status(), 204, "{:?}", res.text().await);
    assert_eq!(links_of(&app, al_id).await, 1);
    let res = sign_in(&app, &op, &ada.org, "al-at-idp").await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(
        token_subject(body["access_token"].as_str().unwrap()),
        token_subject(&al.access)
    );
    assert_eq!(
        crate::support::token_claims(body["access_token"].as_str().unwrap())["roles"],
        json!(["admin"])
    );
    let events = app.audit_events(&ada.org).await;
    assert!(
        events
            .iter()
            .any(|e| e.action == "sso.identity_linked" && e.details.contains("signed_in")),
        "linked and audited"
    );

    // Bob cannot link Al's identity to his own account: it is Al's.
    let res = app
        .org_call(Method::POST, "/v1/me/sso/link", &bob, None)
        .await;
    let url = res.json::<serde_json::Value>().await.unwrap()["authorization_url"]
        .as_str()
        .unwrap()
        .to_owned();
    let back = op.authorize(&url, "al-at-idp").await;
    let res = app
        .org_call(
            Method::POST,
            "/v1/me/sso/link/complete",
            &bob,
            Some(link_answer(&back)),
        )
        .await;
    expect_problem(res, 409, "conflict").await;
    let bob_id = gatehouse_core::UserId::parse(&token_subject(&bob.access)).unwrap();
    assert_eq!(links_of(&app, bob_id).await, 0);
    app.chain_verifies(&ada.org).await;
}

async fn switch(app: &TestApp, access: &str, org: &str) -> reqwest::Response {
    app.call(
        Method::POST,
        "/v1/auth/switch-organization",
        access,
        None,
        Some(json!({"organization_id": org})),
    )
    .await
}

/// The attack of #24's second review: Vera owns V (no second factor) and is a member of M; she
/// links her identity at M's provider. M's provider (whoever runs it may mint any token for her
/// subject) then signs her in through M: that session stays in M, and never becomes Vera's in V.
/// When M removes her, the link ends with the membership, and M's provider asserting her address
/// in M's domain does not bring her back.
#[tokio::test]
async fn a_session_through_one_organisations_sign_on_stays_there_and_links_end_with_the_membership()
{
    let Acme { app, ada, op, .. } =
        acme(vec![OidcAccount::new("vera-at-idp", "vera@acme.test")]).await;
    let vera = app.signup_login("vera@acme.test", "laptop").await;
    let vera_id = gatehouse_core::UserId::parse(&vera.user).unwrap();
    let res = app
        .org_call(
            Method::POST,
            "/v1/organization/invitations",
            &ada,
            Some(json!({"email": "vera@acme.test", "role": "member"})),
        )
        .await;
    assert_eq!(res.status(), 201, "{:?}", res.text().await);
    let token = app
        .mailed_link("vera@acme.test", "/accept-invitation")
        .await;
    let res = app
        .post_json(
            "/v1/invitations/accept",
            &json!({"token": token, "password": PASSWORD}),
        )
        .await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);

    // Her password session switches into M (which does not enforce), and she links.
    let res = switch(&app, &vera.access, &ada.org).await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let in_m = res.json::<serde_json::Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = app
        .call(Method::POST, "/v1/me/sso/link", &in_m, Some(&ada.org), None)
        .await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let url = res.json::<serde_json::Value>().await.unwrap()["authorization_url"]
        .as_str()
        .unwrap()
        .to_owned();
    let back = op.authorize(&url, "vera-at-idp").await;
    let res = app
        .call(
            Method::POST,
            "/v1/me/sso/link/complete",
            &in_m,
            Some(&ada.org),
            Some(link_answer(&back)),
        )
        .await;
    assert_eq!(res.status(), 204, "{:?}", res.text().await);
    let res = app
        .call(Method::GET, "/v1/me/sso/links", &vera.access, None, None)
        .await;
    let links: serde_json::Value = res.json().await.unwrap();
    assert_eq!(links["items"].as_array().unwrap().len(), 1, "{links}");
    assert_eq!(links["items"][0]["organization_id"], ada.org.as_str());

    // Through M's provider: a session in M, which never switches into V.
    let res = sign_in(&app, &op, &ada.org, "vera-at-idp").await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let through_m = res.json::<serde_json::Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = switch(&app, &through_m, &vera.org).await;
    let body = expect_problem(res, 403, "sso_refused").await;
    assert!(
        body["detail"].as_str().unwrap().contains("stays in that"),
        "{body}"
    );
    // Her own password session still does (the control).
    let res = switch(&app, &vera.access, &vera.org).await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);

    // M removes her: M's link to her account ends with the membership.
    let res = app
        .org_call(
            Method::DELETE,
            &format!("/v1/organization/members/{}", vera.user),
            &ada,
            None,
        )
        .await;
    assert_eq!(res.status(), 204, "{:?}", res.text().await);
    assert_eq!(links_of(&app, vera_id).await, 0);
    let joined = |events: &[gatehouse_core::audit::AuditRecord]| {
        events.iter().filter(|e| e.action == "member.added").count()
    };
    let before = joined(&app.audit_events(&ada.org).await);
    // M's provider asserts her address, in M's verified domain: no way back in.
    let res = sign_in(&app, &op, &ada.org, "vera-at-idp").await;
    expect_problem(res, 403, "sso_refused").await;
    let events = app.audit_events(&ada.org).await;
    assert_eq!(joined(&events), before);
    let mut tx = app.kernel.store().begin_read().await.unwrap();
    let memberships = tx.memberships_of_user(vera_id).await.unwrap();
    assert!(
        memberships.iter().all(|m| m.org_id.to_string() != ada.org),
        "{memberships:?}"
    );
    drop(tx);
    app.chain_verifies(&ada.org).await;
}

/// A stale link (one left from before links ended with memberships) found for a person who is
/// no longer a member re-admits them only as their address would: never an account of another
/// organisation.
#[tokio::test]
async fn a_stale_link_never_readmits_a_former_member() {
    let Acme { app, ada, op, .. } =
        acme(vec![OidcAccount::new("vera-at-idp", "vera@acme.test")]).await;
    let vera = app.signup_login("vera@acme.test", "laptop").await;
    let vera_id = gatehouse_core::UserId::parse(&vera.user).unwrap();
    let mut tx = app.kernel.store().begin().await.unwrap();
    tx.insert_external_identity(&gatehouse_core::store::ExternalIdentityRecord {
        issuer: op.issuer(),
        subject: "vera-at-idp".into(),
        user_id: vera_id,
        linked_by: Some(gatehouse_core::OrgId::parse(&ada.org).unwrap()),
        created_at: gatehouse_core::Clock::now(&app.clock),
    })
    .await
    .unwrap();
    tx.commit(gatehouse_core::audit::Audited::for_tests())
        .await
        .unwrap();
    let res = sign_in(&app, &op, &ada.org, "vera-at-idp").await;
    let body = expect_problem(res, 403, "sso_refused").await;
    assert!(
        body["detail"].as_str().unwrap().contains("not a member"),
        "{body}"
    );
    let events = app.audit_events(&ada.org).await;
    assert!(
        !events
            .iter()
            .any(|e| e.action == "member.added" && e.details.contains("sso"))
    );
}

/// A person ends their own link: that identity signs the account in no more. Audited.
#[tokio::test]
async fn a_person_lists_and_ends_their_own_links() {
    let Acme { app, ada, op, .. } =
        acme(vec![OidcAccount::new("bob-at-idp", "bob@acme.test")]).await;
    let bob = app.add_member(&ada, "bob@acme.test", "member").await;
    let res = sign_in(&app, &op, &ada.org, "bob-at-idp").await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let res = app
        .call(Method::GET, "/v1/me/sso/links", &bob.access, None, None)
        .await;
    let links: serde_json::Value = res.json().await.unwrap();
    let id = links["items"][0]["id"].as_str().unwrap().to_owned();
    // Another person cannot end it.
    let res = app
        .call(
            Method::DELETE,
            &format!("/v1/me/sso/links/{id}"),
            &ada.access,
            None,
            None,
        )
        .await;
    expect_problem(res, 404, "not_found").await;
    let res = app
        .call(
            Method::DELETE,
            &format!("/v1/me/sso/links/{id}"),
            &bob.access,
            None,
            None,
        )
        .await;
    assert_eq!(res.status(), 204, "{:?}", res.text().await);
    let bob_id = gatehouse_core::UserId::parse(&bob.user).unwrap();
    assert_eq!(links_of(&app, bob_id).await, 0);
    let events = app.audit_events(&ada.org).await;
    assert!(events.iter().any(|e| e.action == "sso.identity_unlinked"));
    app.chain_verifies(&ada.org).await;
}

/// Holding `sso.manage` is not holding everything a default role grants: a member whose role
/// grants only it may not make everyone the provider vouches for join with more (the owner's
/// call, as a custom role's permissions are never more than its maker's); refused and recorded.
#[tokio::test]
async fn a_default_role_granting_more_than_the_caller_holds_is_the_owners() {
    let Acme { app, ada, .. } = acme(vec![]).await;
    for (name, perms) in [
        ("sso-keeper", json!(["org.read", "sso.manage"])),
        ("auditor", json!(["org.read", "audit.read"])),
    ] {
        let res = app
            .org_call(
                Method::POST,
                "/v1/organization/roles",
                &ada,
                Some(json!({"name": name, "permissions": perms})),
            )
            .await;
        assert!(res.status().is_success(), "{:?}", res.text().await);
    }
    let keeper = app.add_member(&ada, "kim@acme.test", "sso-keeper").await;
    let res = app
        .org_call(Method::GET, "/v1/sso/config", &keeper, None)
        .await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let mut config: serde_json::Value = res.json().await.unwrap();
    for k in [
        "has_client_secret",
        "created_at",
        "updated_at",
        "redirect_uri",
    ] {
        config.as_object_mut().unwrap().remove(k);
    }
    // The same settings again: theirs (the control).
    let res = app
        .org_call(Method::PUT, "/v1/sso/config", &keeper, Some(config.clone()))
        .await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    for (field, value) in [
        ("default_role", json!("auditor")),
        ("client_secret", json!("another-secret-entirely-0123456789")),
    ] {
        let mut c = config.clone();
        c[field] = value;
        let res = app
            .org_call(Method::PUT, "/v1/sso/config", &keeper, Some(c))
            .await;
        expect_problem(res, 403, "forbidden").await;
    }
    let events = app.audit_events(&ada.org).await;
    let denied: Vec<_> = events
        .iter()
        .filter(|e| e.action == "permission.denied")
        .map(|e| e.details.clone())
        .collect();
    assert!(
        denied
            .iter()
            .any(|d| d.contains("sso.default_role_beyond_caller")),
        "{denied:?}"
    );
    assert!(
        denied
            .iter()
            .any(|d| d.contains("sso.client_secret_submitted")),
        "{denied:?}"
    );
    app.chain_verifies(&ada.org).await;
}

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

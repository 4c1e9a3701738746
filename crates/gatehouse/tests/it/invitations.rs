//! Issue 18, finding 5: invitations are mailed (never returned to the inviter), listed and
//! revoked by members who manage members, and honoured only while their inviter still holds the
//! role they grant; accepting one verifies the address it was mailed to.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{PASSWORD, TestApp, expect_problem};

async fn invite(app: &TestApp, who: &crate::support::Signed, email: &str, role: &str) -> Value {
    let res = app
        .org_call(
            Method::POST,
            "/v1/organization/invitations",
            who,
            Some(json!({"email": email, "role": role})),
        )
        .await;
    assert_eq!(res.status(), 201, "{:?}", res.text().await);
    res.json().await.unwrap()
}

async fn accept(app: &TestApp, token: &str) -> reqwest::Response {
    app.post_json(
        "/v1/invitations/accept",
        &json!({"token": token, "name": "Invited", "password": PASSWORD}),
    )
    .await
}

#[tokio::test]
async fn invitations_are_mailed_listed_and_revoked() {
    let app = TestApp::spawn().await;
    let owner = app.signup_login("owner@example.com", "laptop").await;
    let made = invite(&app, &owner, "bob@example.com", "member").await;
    assert!(made.get("token").is_none(), "{made}");
    let token = app
        .mailed_link("bob@example.com", "/accept-invitation")
        .await;

    let res = app
        .org_call(Method::GET, "/v1/organization/invitations", &owner, None)
        .await;
    assert_eq!(res.status(), 200);
    let listed: Value = res.json().await.unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["items"][0]["email"], "bob@example.com");
    assert_eq!(listed["items"][0]["id"], made["id"]);
    assert_eq!(listed["items"][0]["invited_by"], owner.user.as_str());

    let res = app
        .org_call(
            Method::DELETE,
            &format!(
                "/v1/organization/invitations/{}",
                made["id"].as_str().unwrap()
            ),
            &owner,
            None,
        )
        .await;
    assert_eq!(res.status(), 204);
    let listed: Value = app
        .org_call(Method::GET, "/v1/organization/invitations", &owner, None)
        .await
        .json()
        .await
        .unwrap();
    assert!(listed["items"].as_array().unwrap().is_empty(), "{listed}");
    expect_problem(accept(&app, &token).await, 404, "not_found").await;
    let events = app.audit_events(&owner.org).await;
    assert!(events.iter().any(|e| e.action == "invitation.revoked"));
    app.stop().await;
}

#[tokio::test]
async fn an_invitation_dies_with_its_inviters_authority_and_accepting_verifies_the_address() {
    let app = TestApp::spawn().await;
    let owner = app.signup_login("owner@example.com", "laptop").await;
    let alice = app.add_member(&owner, "alice@example.com", "admin").await;
    invite(&app, &alice, "carol@example.com", "admin").await;
    let carol_token = app
        .mailed_link("carol@example.com", "/accept-invitation")
        .await;
    invite(&app, &alice, "dave@example.com", "viewer").await;
    let dave_token = app
        .mailed_link("dave@example.com", "/accept-invitation")
        .await;
    // Alice is demoted to member: she may no longer grant admin, but may still grant viewer.
    let res = app
        .org_call(
            Method::PUT,
            &format!("/v1/organization/members/{}", alice.user),
            &owner,
            Some(json!({"role": "member"})),
        )
        .await;
    assert_eq!(res.status(), 204);
    expect_problem(accept(&app, &carol_token).await, 404, "not_found").await;
    let res = accept(&app, &dave_token).await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    // The new account's address is verified: the link reached it.
    let dave = app.login("dave@example.com", PASSWORD, "laptop", "").await;
    let me: Value = app
        .call(Method::GET, "/v1/auth/verify", &dave.access, None, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["roles"], json!(["viewer"]));
    let claims = crate::support::token_claims(&dave.access);
    assert_eq!(claims["email_verified"], true, "{claims}");
    app.stop().await;
}

//! Issue 18, finding 4: membership changes reach forward authentication and refresh. A demoted
//! member's token verifies with the role held now; a removed member's sessions in the
//! organisation end, so verify and refresh both refuse.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Signed, TestApp, expect_problem};

async fn verify(app: &TestApp, who: &Signed) -> reqwest::Response {
    app.call(Method::GET, "/v1/auth/verify", &who.access, None, None)
        .await
}

#[tokio::test]
async fn a_demotion_reaches_verify_at_once_and_a_removal_ends_the_sessions() {
    let app = TestApp::spawn().await;
    let owner = app.signup_login("owner@example.com", "laptop").await;
    let bob = app.add_member(&owner, "bob@example.com", "admin").await;

    let res = verify(&app, &bob).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-gatehouse-roles"], "admin");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["roles"], json!(["admin"]));

    // Demoted: the same token now verifies as a viewer (the cached role was forgotten).
    let res = app
        .org_call(
            Method::PUT,
            &format!("/v1/organization/members/{}", bob.user),
            &owner,
            Some(json!({"role": "viewer"})),
        )
        .await;
    assert_eq!(res.status(), 204);
    let res = verify(&app, &bob).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-gatehouse-roles"], "viewer");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["roles"], json!(["viewer"]));

    // Removed: verify refuses the token and refresh mints nothing more.
    let res = app
        .org_call(
            Method::DELETE,
            &format!("/v1/organization/members/{}", bob.user),
            &owner,
            None,
        )
        .await;
    assert_eq!(res.status(), 204);
    expect_problem(verify(&app, &bob).await, 401, "unauthenticated").await;
    let res = app
        .post_json("/v1/auth/refresh", &json!({"refresh_token": bob.refresh}))
        .await;
    assert_eq!(res.status(), 401);
    // The removal is on the organisation's audit log with the sessions it ended.
    let events = app.audit_events(&owner.org).await;
    let removed = events
        .iter()
        .find(|e| e.action == "member.removed")
        .unwrap();
    assert!(
        removed.details.contains("\"sessions_ended\":1"),
        "{removed:?}"
    );
    // The owner is untouched.
    assert_eq!(verify(&app, &owner).await.status(), 200);
    app.stop().await;
}

/// Defence in depth: a session whose membership ended by a path that did not end it (here the
/// store directly) is refused at refresh, and ends.
#[tokio::test]
async fn refresh_checks_the_membership_and_ends_a_session_without_one() {
    let app = TestApp::spawn().await;
    let owner = app.signup_login("owner@example.com", "laptop").await;
    let bob = app.add_member(&owner, "bob@example.com", "member").await;
    let scope =
        gatehouse_core::TenantScope::for_tests(gatehouse_core::OrgId::parse(&owner.org).unwrap());
    let mut tx = app.kernel.store().begin_scoped(&scope).await.unwrap();
    let bob_id = gatehouse_core::UserId::parse(&bob.user).unwrap();
    assert!(tx.delete_membership(bob_id).await.unwrap());
    let event = gatehouse_core::audit::AuditEvent::success(
        gatehouse_core::audit::Actor::system("test"),
        "member.removed",
        "user",
        bob_id,
    );
    let proof = gatehouse_core::audit::append_tenant(tx.as_mut(), app.kernel.clock(), event)
        .await
        .unwrap();
    tx.commit(proof).await.unwrap();
    let res = app
        .post_json("/v1/auth/refresh", &json!({"refresh_token": bob.refresh}))
        .await;
    expect_problem(res, 401, "unauthenticated").await;
    app.stop().await;
}

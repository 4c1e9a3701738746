//! Roles and action gating (C1): a viewer holds no sensitive permission, custom roles grant
//! exactly their set, the last owner is protected, and every refusal is audited.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{TestApp, expect_problem};

#[tokio::test]
async fn a_viewer_is_refused_every_sensitive_action_and_each_refusal_is_audited() {
    let app = TestApp::spawn().await;
    let owner = app.signup_login("ada@example.com", "laptop").await;
    let viewer = app.add_member(&owner, "vic@example.com", "viewer").await;

    // Reading the organisation is the viewer's one permission.
    let res = app
        .org_call(Method::GET, "/v1/organization/members", &viewer, None)
        .await;
    assert_eq!(res.status(), 200);

    let attempts: Vec<(Method, String, Option<Value>, &str)> = vec![
        (
            Method::PUT,
            format!("/v1/organization/members/{}", owner.user),
            Some(json!({"role": "viewer"})),
            "members.manage",
        ),
        (
            Method::DELETE,
            format!("/v1/organization/members/{}", owner.user),
            None,
            "members.manage",
        ),
        (
            Method::POST,
            "/v1/organization/invitations".to_owned(),
            Some(json!({"email": "x@example.com", "role": "viewer"})),
            "members.manage",
        ),
        (
            Method::POST,
            "/v1/organization/roles".to_owned(),
            Some(json!({"name": "ops", "permissions": ["org.read"]})),
            "roles.manage",
        ),
        (Method::GET, "/v1/audit-logs".to_owned(), None, "audit.read"),
        (
            Method::GET,
            "/v1/audit-logs/export".to_owned(),
            None,
            "audit.read",
        ),
    ];
    for (method, path, body, permission) in &attempts {
        let res = app
            .org_call(method.clone(), path, &viewer, body.clone())
            .await;
        let problem = expect_problem(res, 403, "forbidden").await;
        assert!(
            problem["detail"].as_str().unwrap().contains(permission),
            "{path}: {problem}"
        );
    }
    let events = app.audit_events(&owner.org).await;
    let denied: Vec<_> = events
        .iter()
        .filter(|e| e.action == "permission.denied" && e.actor_id == viewer.user)
        .collect();
    assert_eq!(denied.len(), attempts.len());
    assert!(denied.iter().all(|e| e.outcome == "denied"));
    // Each refusal names where it came from (sealed as the viewer's personal data, opened for
    // a reader with audit.read).
    let res = app
        .org_call(
            Method::GET,
            "/v1/audit-logs?action=permission.denied&limit=100",
            &owner,
            None,
        )
        .await;
    let page: Value = res.json().await.unwrap();
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), attempts.len());
    assert!(items.iter().all(|e| e["ip"] == "127.0.0.1"), "{page}");
    // Nothing changed.
    let res = app
        .org_call(Method::GET, "/v1/organization/members", &owner, None)
        .await;
    let page: Value = res.json().await.unwrap();
    assert!(
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["user_id"] == owner.user.as_str() && m["role"] == "owner")
    );
    app.stop().await;
}

#[tokio::test]
async fn the_last_owner_cannot_be_removed_or_demoted() {
    let app = TestApp::spawn().await;
    let owner = app.signup_login("ada@example.com", "laptop").await;
    let path = format!("/v1/organization/members/{}", owner.user);
    let res = app
        .org_call(Method::PUT, &path, &owner, Some(json!({"role": "admin"})))
        .await;
    expect_problem(res, 409, "last_owner").await;
    let res = app.org_call(Method::DELETE, &path, &owner, None).await;
    expect_problem(res, 409, "last_owner").await;

    // An admin cannot touch an owner at all.
    let admin = app.add_member(&owner, "adm@example.com", "admin").await;
    let res = app
        .org_call(Method::PUT, &path, &admin, Some(json!({"role": "member"})))
        .await;
    expect_problem(res, 403, "forbidden").await;
    let admin_path = format!("/v1/organization/members/{}", admin.user);
    let res = app
        .org_call(
            Method::PUT,
            &admin_path,
            &admin,
            Some(json!({"role": "owner"})),
        )
        .await;
    expect_problem(res, 403, "forbidden").await;

    // With a second owner, the first may step down.
    let res = app
        .org_call(
            Method::PUT,
            &admin_path,
            &owner,
            Some(json!({"role": "owner"})),
        )
        .await;
    assert_eq!(res.status(), 204);
    let res = app
        .org_call(Method::PUT, &path, &owner, Some(json!({"role": "member"})))
        .await;
    assert_eq!(res.status(), 204);
    // Now the former admin is the last owner.
    let res = app
        .org_call(Method::DELETE, &admin_path, &admin, None)
        .await;
    expect_problem(res, 409, "last_owner").await;
    let events = app.audit_events(&owner.org).await;
    assert_eq!(
        events
            .iter()
            .filter(|e| e.action == "member.role_changed")
            .count(),
        2
    );
    app.stop().await;
}

#[tokio::test]
async fn a_custom_role_grants_exactly_its_permissions() {
    let app = TestApp::spawn().await;
    let owner = app.signup_login("ada@example.com", "laptop").await;
    let res = app
        .org_call(
            Method::POST,
            "/v1/organization/roles",
            &owner,
            Some(json!({"name": "auditor", "permissions": ["org.read", "audit.read"]})),
        )
        .await;
    assert_eq!(res.status(), 201);
    let res = app
        .org_call(
            Method::POST,
            "/v1/organization/roles",
            &owner,
            Some(json!({"name": "bad", "permissions": ["root.everything"]})),
        )
        .await;
    expect_problem(res, 422, "validation_failed").await;
    let auditor = app.add_member(&owner, "aud@example.com", "auditor").await;

    let res = app
        .org_call(Method::GET, "/v1/audit-logs", &auditor, None)
        .await;
    assert_eq!(res.status(), 200);
    let res = app
        .org_call(
            Method::POST,
            "/v1/organization/invitations",
            &auditor,
            Some(json!({"email": "x@example.com", "role": "viewer"})),
        )
        .await;
    expect_problem(res, 403, "forbidden").await;
    // A role change applies on the next request, not the next token.
    let res = app
        .org_call(
            Method::PUT,
            &format!("/v1/organization/members/{}", auditor.user),
            &owner,
            Some(json!({"role": "viewer"})),
        )
        .await;
    assert_eq!(res.status(), 204);
    let res = app
        .org_call(Method::GET, "/v1/audit-logs", &auditor, None)
        .await;
    expect_problem(res, 403, "forbidden").await;
    app.stop().await;
}

#[tokio::test]
async fn invitations_work_once() {
    let app = TestApp::spawn().await;
    let owner = app.signup_login("ada@example.com", "laptop").await;
    let res = app
        .org_call(
            Method::POST,
            "/v1/organization/invitations",
            &owner,
            Some(json!({"email": "new@example.com", "role": "member"})),
        )
        .await;
    assert_eq!(res.status(), 201);
    let token = app
        .mailed_link("new@example.com", "/accept-invitation")
        .await;
    let accept = json!({"token": token, "name": "New", "password": crate::support::PASSWORD});
    assert_eq!(
        app.post_json("/v1/invitations/accept", &accept)
            .await
            .status(),
        200
    );
    let res = app.post_json("/v1/invitations/accept", &accept).await;
    expect_problem(res, 404, "not_found").await;
    let res = app
        .post_json(
            "/v1/invitations/accept",
            &json!({"token": "gin_00000000000000000000000000000000_x", "password": "whatever1"}),
        )
        .await;
    expect_problem(res, 404, "not_found").await;
    app.stop().await;
}

#[tokio::test]
async fn nobody_grants_a_role_with_permissions_they_do_not_hold() {
    let app = TestApp::spawn().await;
    let owner = app.signup_login("ada@example.com", "laptop").await;
    // The owner defines a role that can erase data, and one that can only manage members.
    for (name, perms) in [
        ("eraser", json!(["org.read", "data.delete"])),
        ("people", json!(["org.read", "members.manage"])),
    ] {
        let res = app
            .org_call(
                Method::POST,
                "/v1/organization/roles",
                &owner,
                Some(json!({"name": name, "permissions": perms})),
            )
            .await;
        assert_eq!(res.status(), 201);
    }
    let admin = app.add_member(&owner, "adm@example.com", "admin").await;
    let people = app.add_member(&owner, "ppl@example.com", "people").await;
    // An admin (no data.delete) cannot hand out the eraser role, to itself or anyone.
    for target in [&admin.user, &people.user] {
        let res = app
            .org_call(
                Method::PUT,
                &format!("/v1/organization/members/{target}"),
                &admin,
                Some(json!({"role": "eraser"})),
            )
            .await;
        expect_problem(res, 403, "forbidden").await;
    }
    let res = app
        .org_call(
            Method::POST,
            "/v1/organization/invitations",
            &admin,
            Some(json!({"email": "x@example.com", "role": "eraser"})),
        )
        .await;
    expect_problem(res, 403, "forbidden").await;
    // A member who may manage members cannot make itself admin.
    let res = app
        .org_call(
            Method::PUT,
            &format!("/v1/organization/members/{}", people.user),
            &people,
            Some(json!({"role": "admin"})),
        )
        .await;
    expect_problem(res, 403, "forbidden").await;
    // The owner can.
    let res = app
        .org_call(
            Method::PUT,
            &format!("/v1/organization/members/{}", admin.user),
            &owner,
            Some(json!({"role": "eraser"})),
        )
        .await;
    assert_eq!(res.status(), 204);
    app.stop().await;
}

/// Issue 18, finding 8: a role that may manage members cannot demote or remove a member who holds
/// more than it does; it still manages those who hold no more.
#[tokio::test]
async fn nobody_changes_or_removes_a_member_holding_what_they_lack() {
    let app = TestApp::spawn().await;
    let owner = app.signup_login("ada@example.com", "laptop").await;
    for (name, perms) in [
        ("people", json!(["org.read", "members.manage"])),
        ("reader", json!(["org.read"])),
    ] {
        let res = app
            .org_call(
                Method::POST,
                "/v1/organization/roles",
                &owner,
                Some(json!({"name": name, "permissions": perms})),
            )
            .await;
        assert_eq!(res.status(), 201);
    }
    let admin = app.add_member(&owner, "adm@example.com", "admin").await;
    let people = app.add_member(&owner, "ppl@example.com", "people").await;
    let reader = app.add_member(&owner, "rdr@example.com", "reader").await;
    let admin_path = format!("/v1/organization/members/{}", admin.user);
    let res = app
        .org_call(
            Method::PUT,
            &admin_path,
            &people,
            Some(json!({"role": "reader"})),
        )
        .await;
    expect_problem(res, 403, "forbidden").await;
    let res = app
        .org_call(Method::DELETE, &admin_path, &people, None)
        .await;
    expect_problem(res, 403, "forbidden").await;
    // The admin is untouched.
    let res = app
        .org_call(Method::GET, "/v1/organization/members", &owner, None)
        .await;
    let body: Value = res.json().await.unwrap();
    let role_of = |user: &str| {
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["user_id"] == user)
            .map(|m| m["role"].as_str().unwrap().to_owned())
    };
    assert_eq!(role_of(&admin.user).as_deref(), Some("admin"));
    // A member holding no more than the actor is still theirs to manage.
    let res = app
        .org_call(
            Method::DELETE,
            &format!("/v1/organization/members/{}", reader.user),
            &people,
            None,
        )
        .await;
    assert_eq!(res.status(), 204);
    app.stop().await;
}

//! The product's own permissions (issue 19, C1): declared in configuration with the built-in
//! roles that hold them, held by custom roles (edited and deleted under the rule that nobody
//! grants what they do not hold), and answered by `POST /v1/check` with step-up where declared.

use gatehouse::config::RawConfig;
use gatehouse::config::product::{PermissionConfig, RecordTypeConfig};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{PASSWORD, Signed, TestApp, expect_problem};

/// `report.read` (everyone but viewers), `report.write` (owners and admins) and `report.export`
/// (owners and admins, with step-up); record type `report`.
pub(crate) fn declare_reports(raw: &mut RawConfig) {
    let perm = |name: &str, step_up: bool, roles: &[&str]| PermissionConfig {
        name: name.into(),
        description: format!("{name} for the tests"),
        step_up,
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
    };
    raw.product.permissions = vec![
        perm("report.read", false, &["owner", "admin", "member"]),
        perm("report.write", false, &["owner", "admin"]),
        perm("report.export", true, &["owner", "admin"]),
    ];
    raw.product.record_types = vec![RecordTypeConfig {
        name: "report".into(),
        read: "report.read".into(),
        write: "report.write".into(),
    }];
}

async fn check(app: &TestApp, who: &Signed, action: &str) -> Value {
    let res = app
        .org_call(
            Method::POST,
            "/v1/check",
            who,
            Some(json!({"action": action})),
        )
        .await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

#[tokio::test]
async fn built_in_roles_hold_the_product_permissions_declared_for_them() {
    let app = TestApp::spawn_with(declare_reports).await;
    let owner = app.signup_login("owner@example.com", "laptop").await;
    let member = app.add_member(&owner, "member@example.com", "member").await;
    let viewer = app.add_member(&owner, "viewer@example.com", "viewer").await;

    let answer = check(&app, &member, "report.read").await;
    assert_eq!(
        answer,
        json!({"allowed": true, "reason": "granted", "via": "role:member"})
    );
    assert_eq!(
        check(&app, &viewer, "report.read").await["reason"],
        "permission_missing"
    );
    assert_eq!(check(&app, &member, "report.write").await["allowed"], false);
    // Gatehouse's own permissions answer the same way.
    assert_eq!(check(&app, &viewer, "org.read").await["allowed"], true);
    assert_eq!(
        check(&app, &owner, "no.such_thing").await["reason"],
        "unknown_action"
    );

    // A step-up permission: the owner signed in with a password only a moment ago, so the
    // password fallback counts; five minutes later it does not.
    assert_eq!(check(&app, &owner, "report.export").await["allowed"], true);
    app.clock.advance(time::Duration::minutes(6));
    let stale = check(&app, &owner, "report.export").await;
    assert_eq!(stale["reason"], "step_up_required");
    let res = app
        .call(
            Method::POST,
            "/v1/auth/step-up",
            &owner.access,
            None,
            Some(json!({"password": PASSWORD})),
        )
        .await;
    assert_eq!(res.status(), 200);
    let stepped = Signed {
        access: res.json::<Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_owned(),
        ..owner.clone()
    };
    assert_eq!(
        check(&app, &stepped, "report.export").await["allowed"],
        true
    );
    app.stop().await;
}

async fn put_role(app: &TestApp, who: &Signed, name: &str, perms: &[&str]) -> reqwest::Response {
    app.org_call(
        Method::PATCH,
        &format!("/v1/organization/roles/{name}"),
        who,
        Some(json!({"permissions": perms})),
    )
    .await
}

#[tokio::test]
async fn custom_roles_hold_product_permissions_and_are_edited_and_deleted_by_those_who_hold_them() {
    let app = TestApp::spawn_with(declare_reports).await;
    let owner = app.signup_login("owner@example.com", "laptop").await;
    for (name, perms) in [
        ("analyst", json!(["org.read", "report.read"])),
        // Manages roles, but holds no report permission itself.
        (
            "role-admin",
            json!(["org.read", "roles.manage", "members.manage"]),
        ),
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
    let res = app
        .org_call(
            Method::POST,
            "/v1/organization/roles",
            &owner,
            Some(json!({"name": "bad", "permissions": ["report.fly"]})),
        )
        .await;
    expect_problem(res, 422, "validation_failed").await;
    let analyst = app.add_member(&owner, "ana@example.com", "analyst").await;
    let role_admin = app.add_member(&owner, "ra@example.com", "role-admin").await;
    assert_eq!(
        check(&app, &analyst, "report.read").await["via"],
        "role:analyst"
    );

    // The role admin lacks report.read: it may neither change nor delete a role granting it,
    // nor put it into one.
    let res = put_role(&app, &role_admin, "analyst", &["org.read"]).await;
    expect_problem(res, 403, "forbidden").await;
    let res = app
        .org_call(
            Method::DELETE,
            "/v1/organization/roles/analyst",
            &role_admin,
            None,
        )
        .await;
    expect_problem(res, 403, "forbidden").await;
    let res = put_role(
        &app,
        &role_admin,
        "role-admin",
        &["org.read", "report.read"],
    )
    .await;
    expect_problem(res, 422, "validation_failed").await;

    // The owner edits it: the analyst loses the permission at the next request.
    let res = put_role(&app, &owner, "analyst", &["org.read"]).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"name": "analyst", "permissions": ["org.read"]})
    );
    assert_eq!(check(&app, &analyst, "report.read").await["allowed"], false);
    let res = put_role(&app, &owner, "owner", &["org.read"]).await;
    expect_problem(res, 422, "validation_failed").await;
    let res = put_role(&app, &owner, "ghost", &["org.read"]).await;
    expect_problem(res, 404, "not_found").await;

    // Deleting a role someone holds is refused; once nobody does, it goes.
    let res = app
        .org_call(
            Method::DELETE,
            "/v1/organization/roles/analyst",
            &owner,
            None,
        )
        .await;
    expect_problem(res, 409, "conflict").await;
    let res = app
        .org_call(
            Method::PUT,
            &format!("/v1/organization/members/{}", analyst.user),
            &owner,
            Some(json!({"role": "viewer"})),
        )
        .await;
    assert!(res.status().is_success(), "{}", res.status());
    let res = app
        .org_call(
            Method::DELETE,
            "/v1/organization/roles/analyst",
            &owner,
            None,
        )
        .await;
    assert_eq!(res.status(), 204);
    let events = app.audit_events(&owner.org).await;
    for action in [
        "role.updated",
        "role.deleted",
        "role.update_denied",
        "role.delete_denied",
    ] {
        assert!(events.iter().any(|e| e.action == action), "{action}");
    }
    app.stop().await;
}

#[tokio::test]
async fn an_api_key_holds_product_permissions_up_to_its_creators() {
    let app = TestApp::spawn_with(|raw| {
        declare_reports(raw);
        raw.identity.step_up_permissions = Vec::new();
    })
    .await;
    let owner = app.signup_login("owner@example.com", "laptop").await;
    let res = app
        .org_call(
            Method::POST,
            "/v1/api-keys",
            &owner,
            Some(json!({"name": "agent", "permissions": ["report.read", "report.export"]})),
        )
        .await;
    assert_eq!(res.status(), 201);
    let key = res.json::<Value>().await.unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let as_key = Signed {
        access: key,
        ..owner.clone()
    };
    assert_eq!(
        check(&app, &as_key, "report.read").await,
        json!({"allowed": true, "reason": "granted", "via": "api_key"})
    );
    // A key cannot show a second factor: a step-up permission stays shut to it.
    assert_eq!(
        check(&app, &as_key, "report.export").await["reason"],
        "step_up_required"
    );
    assert_eq!(
        check(&app, &as_key, "report.write").await["reason"],
        "permission_missing"
    );
    app.stop().await;
}

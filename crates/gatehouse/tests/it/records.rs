//! The product's records over HTTP (issue 19, C3): private, organisation-wide and public levels,
//! sealed content, listings that hold only what the caller may read, bad input refused, and no
//! record of another organisation reachable.

use reqwest::Method;
use serde_json::{Value, json};

use crate::product::declare_reports;
use crate::support::{Signed, TestApp, expect_problem};

async fn create(app: &TestApp, who: &Signed, body: Value) -> reqwest::Response {
    app.org_call(Method::POST, "/v1/records", who, Some(body))
        .await
}

async fn created(app: &TestApp, who: &Signed, body: Value) -> Value {
    let res = create(app, who, body).await;
    assert_eq!(res.status(), 201, "{:?}", res.text().await);
    res.json().await.unwrap()
}

/// The external ids of the records `who` lists (with `query`).
async fn listed(app: &TestApp, who: &Signed, query: &str) -> Vec<String> {
    let res = app
        .org_call(Method::GET, &format!("/v1/records{query}"), who, None)
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert!(
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r.get("content").is_none()),
        "a listing carried content"
    );
    let mut ids: Vec<String> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["external_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

/// Whether a sealed content field is stored for the record, read from the store itself.
async fn sealed_content_exists(app: &TestApp, org: &str, id: &str) -> bool {
    let scope = gatehouse_core::TenantScope::for_tests(gatehouse_core::OrgId::parse(org).unwrap());
    let mut tx = app.kernel.store().begin_read_scoped(&scope).await.unwrap();
    tx.sealed("record_content", id, "content")
        .await
        .unwrap()
        .is_some()
}

async fn read(app: &TestApp, who: &Signed, id: &str) -> reqwest::Response {
    app.org_call(Method::GET, &format!("/v1/records/{id}"), who, None)
        .await
}

#[tokio::test]
async fn each_level_is_read_by_whom_it_says_and_listings_hold_only_that() {
    let app = TestApp::spawn_with(declare_reports).await;
    let owner = app.signup_login("owner@example.com", "laptop").await;
    let admin = app.add_member(&owner, "admin@example.com", "admin").await;
    let member = app.add_member(&owner, "member@example.com", "member").await;
    let viewer = app.add_member(&owner, "viewer@example.com", "viewer").await;

    let private = created(
        &app,
        &owner,
        json!({"type": "report", "external_id": "p1", "level": "private",
               "allowed": [format!("user:{}", member.user)],
               "content": {"secret": "only for two"}, "tags": ["q3"]}),
    )
    .await;
    assert_eq!(private["owner"], format!("user:{}", owner.user));
    assert_eq!(private["via"], "owner");
    let org = created(
        &app,
        &owner,
        json!({"type": "report", "external_id": "o1", "level": "organization",
               "content": {"total": 42}, "tags": ["q3", "sales"]}),
    )
    .await;
    let public = created(
        &app,
        &admin,
        json!({"type": "report", "external_id": "pub1", "level": "public", "namespace": "site"}),
    )
    .await;
    let (p, o, pb) = (
        private["id"].as_str().unwrap(),
        org["id"].as_str().unwrap(),
        public["id"].as_str().unwrap(),
    );

    // Private: the owner and the allowed list; not even an admin with the write permission.
    let res = read(&app, &member, p).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["content"], json!({"secret": "only for two"}));
    assert_eq!(body["via"], "allowed_list");
    expect_problem(read(&app, &admin, p).await, 404, "not_found").await;
    // Organisation: members holding report.read; a viewer does not.
    assert_eq!(read(&app, &member, o).await.status(), 200);
    expect_problem(read(&app, &viewer, o).await, 404, "not_found").await;
    // Public: anyone in the organisation, the viewer included.
    let res = read(&app, &viewer, pb).await;
    assert_eq!(res.json::<Value>().await.unwrap()["via"], "level:public");

    assert_eq!(listed(&app, &owner, "").await, ["o1", "p1", "pub1"]);
    assert_eq!(listed(&app, &member, "").await, ["o1", "p1", "pub1"]);
    assert_eq!(listed(&app, &admin, "").await, ["o1", "pub1"]);
    assert_eq!(listed(&app, &viewer, "").await, ["pub1"]);
    assert_eq!(listed(&app, &member, "?tag=sales").await, ["o1"]);
    assert_eq!(listed(&app, &member, "?namespace=site").await, ["pub1"]);
    assert_eq!(
        listed(&app, &owner, &format!("?owner=user:{}", admin.user)).await,
        ["pub1"]
    );
    assert_eq!(listed(&app, &owner, "?limit=1").await.len(), 1);

    // Refusals are recorded.
    let events = app.audit_events(&owner.org).await;
    assert!(events.iter().any(|e| e.action == "record.read_denied"));
    assert!(events.iter().any(|e| e.action == "record.created"));
    app.stop().await;
}

#[tokio::test]
async fn writes_need_the_owner_or_the_types_write_permission_and_private_stays_the_owners() {
    let app = TestApp::spawn_with(declare_reports).await;
    let owner = app.signup_login("owner@example.com", "laptop").await;
    let admin = app.add_member(&owner, "admin@example.com", "admin").await;
    let member = app.add_member(&owner, "member@example.com", "member").await;

    // Creating needs report.write, which members lack.
    let res = create(
        &app,
        &member,
        json!({"type": "report", "external_id": "m1", "level": "private"}),
    )
    .await;
    expect_problem(res, 403, "forbidden").await;
    let org = created(
        &app,
        &owner,
        json!({"type": "report", "external_id": "o1", "level": "organization", "content": {"v": 1}}),
    )
    .await;
    let o = org["id"].as_str().unwrap();
    let patch = |who: &Signed, body: Value| {
        let app = &app;
        let who = who.clone();
        let path = format!("/v1/records/{o}");
        async move { app.org_call(Method::PATCH, &path, &who, Some(body)).await }
    };
    // A member reads it but may not change it; an admin (report.write) may.
    expect_problem(
        patch(&member, json!({"tags": ["x"]})).await,
        403,
        "forbidden",
    )
    .await;
    let res = patch(&admin, json!({"content": {"v": 2}, "tags": ["reviewed"]})).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["content"], json!({"v": 2}));
    assert_eq!(body["tags"], json!(["reviewed"]));
    // The owner makes it private: now the admin neither reads nor changes it.
    let res = patch(&owner, json!({"level": "private"})).await;
    assert_eq!(res.status(), 200);
    expect_problem(patch(&admin, json!({"tags": []})).await, 404, "not_found").await;
    let res = app
        .org_call(Method::DELETE, &format!("/v1/records/{o}"), &admin, None)
        .await;
    expect_problem(res, 404, "not_found").await;
    // Content removed with null (its sealed field goes with it), then the record deleted by its
    // owner.
    let res = patch(&owner, json!({"content": null})).await;
    assert!(res.json::<Value>().await.unwrap().get("content").is_none());
    assert!(!sealed_content_exists(&app, &owner.org, o).await);
    let res = app
        .org_call(Method::DELETE, &format!("/v1/records/{o}"), &owner, None)
        .await;
    assert_eq!(res.status(), 204);
    expect_problem(read(&app, &owner, o).await, 404, "not_found").await;
    // Deleting takes the sealed content too.
    let kept = created(
        &app,
        &owner,
        json!({"type": "report", "external_id": "o2", "level": "private", "content": {"v": 3}}),
    )
    .await;
    let k = kept["id"].as_str().unwrap();
    assert!(sealed_content_exists(&app, &owner.org, k).await);
    let res = app
        .org_call(Method::DELETE, &format!("/v1/records/{k}"), &owner, None)
        .await;
    assert_eq!(res.status(), 204);
    assert!(!sealed_content_exists(&app, &owner.org, k).await);
    let events = app.audit_events(&owner.org).await;
    for action in [
        "record.updated",
        "record.deleted",
        "record.write_denied",
        "record.create_denied",
    ] {
        assert!(events.iter().any(|e| e.action == action), "{action}");
    }
    app.stop().await;
}

#[tokio::test]
async fn bad_input_is_refused_and_nothing_is_stored() {
    let app = TestApp::spawn_with(declare_reports).await;
    let owner = app.signup_login("owner@example.com", "laptop").await;
    let base = json!({"type": "report", "external_id": "r1", "level": "private"});
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    let past = "2001-01-01T00:00:00Z";
    for (body, field) in [
        (with("type", json!("invoice")), "type"),
        (with("level", json!("secret")), "level"),
        (with("allowed", json!(["group:admins"])), "allowed"),
        (with("tags", json!(["Not A Tag"])), "tags"),
        (with("namespace", json!("a,b")), "namespace"),
        (with("external_id", json!("")), "external_id"),
        (
            with("content", json!({"blob": "x".repeat(70 * 1024)})),
            "content",
        ),
        (with("expires_at", json!(past)), "expires_at"),
    ] {
        let problem =
            expect_problem(create(&app, &owner, body).await, 422, "validation_failed").await;
        assert_eq!(problem["field"], field, "{problem}");
    }
    assert!(listed(&app, &owner, "").await.is_empty());
    created(&app, &owner, base.clone()).await;
    expect_problem(create(&app, &owner, base).await, 409, "conflict").await;
    app.stop().await;
}

#[tokio::test]
async fn no_record_of_another_organisation_is_reachable() {
    let app = TestApp::spawn_with(declare_reports).await;
    let a = app.signup_login("a@example.com", "laptop").await;
    let b = app.signup_login("b@example.com", "laptop").await;
    let public = created(
        &app,
        &a,
        json!({"type": "report", "external_id": "shared-name", "level": "public", "content": {"a": 1}}),
    )
    .await;
    let id = public["id"].as_str().unwrap();
    // B may even use the same external id: records are per organisation.
    created(
        &app,
        &b,
        json!({"type": "report", "external_id": "shared-name", "level": "public"}),
    )
    .await;
    expect_problem(read(&app, &b, id).await, 404, "not_found").await;
    let res = app
        .org_call(
            Method::PATCH,
            &format!("/v1/records/{id}"),
            &b,
            Some(json!({"tags": ["x"]})),
        )
        .await;
    expect_problem(res, 404, "not_found").await;
    let res = app
        .org_call(Method::DELETE, &format!("/v1/records/{id}"), &b, None)
        .await;
    expect_problem(res, 404, "not_found").await;
    assert_eq!(listed(&app, &b, "").await, ["shared-name"]);
    let res = app
        .org_call(Method::GET, "/v1/records", &b, None)
        .await
        .text()
        .await
        .unwrap();
    assert!(!res.contains(id), "B's listing named A's record");
    // A's public record is still A's, unchanged.
    let res = read(&app, &a, id).await;
    assert_eq!(
        res.json::<Value>().await.unwrap()["content"],
        json!({"a": 1})
    );
    app.stop().await;
}

#[tokio::test]
async fn an_api_key_owns_the_records_it_creates_as_an_agent() {
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
            Some(json!({"name": "agent", "permissions": ["report.read", "report.write"]})),
        )
        .await;
    let body: Value = res.json().await.unwrap();
    let key = Signed {
        access: body["key"].as_str().unwrap().to_owned(),
        ..owner.clone()
    };
    let memo = created(
        &app,
        &key,
        json!({"type": "report", "external_id": "agent-1", "level": "private", "content": {"n": 1}}),
    )
    .await;
    assert_eq!(
        memo["owner"],
        format!("key:{}", body["id"].as_str().unwrap())
    );
    // Private to the key: the organisation's owner does not see it.
    assert!(listed(&app, &owner, "").await.is_empty());
    assert_eq!(listed(&app, &key, "").await, ["agent-1"]);
    app.stop().await;
}

/// Review of issue 19's first part: what writing may and may not do beyond reading.
#[tokio::test]
async fn writing_never_reveals_more_than_reading_and_only_owners_decide_who_reads() {
    let app = TestApp::spawn_with(|raw| {
        declare_reports(raw);
        raw.identity.step_up_permissions = Vec::new();
    })
    .await;
    let owner = app.signup_login("owner@example.com", "laptop").await;
    let admin = app.add_member(&owner, "admin@example.com", "admin").await;
    let org = created(
        &app,
        &owner,
        json!({"type": "report", "external_id": "o1", "level": "organization", "content": {"secret": 1}}),
    )
    .await;
    let o = org["id"].as_str().unwrap().to_owned();
    // A key holding only the write permission neither reads it nor learns it through a write.
    let res = app
        .org_call(
            Method::POST,
            "/v1/api-keys",
            &owner,
            Some(json!({"name": "writer", "permissions": ["report.write"]})),
        )
        .await;
    let key = Signed {
        access: res.json::<Value>().await.unwrap()["key"]
            .as_str()
            .unwrap()
            .to_owned(),
        ..owner.clone()
    };
    let res = app
        .org_call(
            Method::PATCH,
            &format!("/v1/records/{o}"),
            &key,
            Some(json!({})),
        )
        .await;
    expect_problem(res, 404, "not_found").await;
    // A writer who reads it may change its content, but not who reads it.
    let res = app
        .org_call(
            Method::PATCH,
            &format!("/v1/records/{o}"),
            &admin,
            Some(json!({"level": "private", "allowed": [format!("user:{}", admin.user)]})),
        )
        .await;
    expect_problem(res, 403, "forbidden").await;
    let res = app
        .org_call(
            Method::PATCH,
            &format!("/v1/records/{o}"),
            &admin,
            Some(json!({"tags": ["checked"]})),
        )
        .await;
    assert_eq!(res.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn an_unverified_account_only_reads_where_the_server_says_so() {
    let app = TestApp::spawn_with(|raw| {
        declare_reports(raw);
        raw.identity.unverified_access = "read_only".into();
    })
    .await;
    let owner = app.signup_login("owner@example.com", "laptop").await;
    let res = create(
        &app,
        &owner,
        json!({"type": "report", "external_id": "x", "level": "private"}),
    )
    .await;
    expect_problem(res, 403, "email_unverified").await;
    let answer = app
        .org_call(
            Method::POST,
            "/v1/check",
            &owner,
            Some(json!({"action": "report.write"})),
        )
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(answer["reason"], "email_unverified");
    app.stop().await;
}

#[tokio::test]
async fn a_removed_member_acts_on_no_record_not_even_their_own() {
    let app = TestApp::spawn_with(declare_reports).await;
    let owner = app.signup_login("owner@example.com", "laptop").await;
    let admin = app.add_member(&owner, "admin@example.com", "admin").await;
    let mine = created(
        &app,
        &admin,
        json!({"type": "report", "external_id": "a1", "level": "private", "content": {"n": 1}}),
    )
    .await;
    let id = mine["id"].as_str().unwrap().to_owned();
    assert_eq!(read(&app, &admin, &id).await.status(), 200);
    let res = app
        .org_call(
            Method::DELETE,
            &format!("/v1/organization/members/{}", admin.user),
            &owner,
            None,
        )
        .await;
    assert!(res.status().is_success(), "{}", res.status());
    // The removal ended their sessions; a key they made acts with nothing either.
    let res = read(&app, &admin, &id).await;
    assert!(
        res.status() == 401 || res.status() == 403,
        "a removed member read their record: {}",
        res.status()
    );
    app.stop().await;
}

/// G3, first part (issue 20): a record is gone from the instant its `expires_at` names, for every
/// reader and every path (read, change, delete, listing, check, a listing through a grant), before
/// any purge; its external id can be used again at once.
#[tokio::test]
async fn an_expired_record_is_gone_at_its_expiry_instant_everywhere() {
    let app = TestApp::spawn_with(declare_reports).await;
    let owner = app.signup_login("owner@example.com", "laptop").await;
    let other = app.signup_login("other@example.com", "laptop").await;
    let at = time::OffsetDateTime::from_unix_timestamp(app.clock_secs() + 60).unwrap();
    let when = at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let rec = created(
        &app,
        &owner,
        json!({"type": "report", "external_id": "ttl", "level": "organization",
               "content": {"v": 1}, "expires_at": when}),
    )
    .await;
    let id = rec["id"].as_str().unwrap();
    let res = app
        .org_call(
            Method::POST,
            "/v1/grants",
            &owner,
            Some(json!({"organization": other.org, "access": "read"})),
        )
        .await;
    assert_eq!(res.status(), 201);
    let check = |who: &Signed, org: &str| {
        let body = json!({"action": "read",
                          "resource": {"type": "report", "id": "ttl", "organization": org}});
        let (access, own_org) = (who.access.clone(), who.org.clone());
        let app = &app;
        async move {
            let res = app
                .call(
                    Method::POST,
                    "/v1/check",
                    &access,
                    Some(&own_org),
                    Some(body),
                )
                .await;
            res.json::<Value>().await.unwrap()["allowed"].clone()
        }
    };
    // A second before: there for everyone who may read it (and cached by checks).
    app.clock.advance(time::Duration::seconds(59));
    assert_eq!(read(&app, &owner, id).await.status(), 200);
    assert_eq!(listed(&app, &owner, "").await, ["ttl"]);
    assert_eq!(check(&owner, &owner.org).await, true);
    assert_eq!(check(&other, &owner.org).await, true);
    // At the instant: gone, cached or not, own or granted.
    app.clock.advance(time::Duration::seconds(1));
    expect_problem(read(&app, &owner, id).await, 404, "not_found").await;
    expect_problem(read(&app, &other, id).await, 404, "not_found").await;
    assert!(listed(&app, &owner, "").await.is_empty());
    assert!(
        listed(&app, &other, "?include_granted=true")
            .await
            .is_empty()
    );
    assert_eq!(check(&owner, &owner.org).await, false);
    assert_eq!(check(&other, &owner.org).await, false);
    let res = app
        .org_call(
            Method::PATCH,
            &format!("/v1/records/{id}"),
            &owner,
            Some(json!({"tags": ["late"]})),
        )
        .await;
    expect_problem(res, 404, "not_found").await;
    let res = app
        .org_call(Method::DELETE, &format!("/v1/records/{id}"), &owner, None)
        .await;
    expect_problem(res, 404, "not_found").await;
    // The external id is free again: the expired record and its content go with the new one.
    let again = created(
        &app,
        &owner,
        json!({"type": "report", "external_id": "ttl", "level": "organization"}),
    )
    .await;
    assert_ne!(again["id"], rec["id"]);
    assert!(!sealed_content_exists(&app, &owner.org, id).await);
    let events = app.audit_events(&owner.org).await;
    assert!(
        events.iter().any(|e| e.action == "record.deleted"
            && e.resource_id == id
            && e.details.contains("expired")),
        "the expired record's end is on its own id"
    );
    assert_eq!(check(&owner, &owner.org).await, true);
    app.stop().await;
}

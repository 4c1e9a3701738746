//! Signup creates a user and an organisation owned by them.

use gatehouse_core::page::PageRequest;
use gatehouse_core::store::Role;
use gatehouse_core::{OrgId, TenantScope, UserId};

use crate::support::{TestApp, expect_problem, signup_body};

#[tokio::test]
async fn creates_user_org_and_owner_membership() {
    let app = TestApp::spawn().await;
    let res = app
        .post_json("/v1/auth/signup", &signup_body(" Ada@Example.com "))
        .await;
    assert_eq!(res.status(), 201);
    let body: serde_json::Value = res.json().await.unwrap();
    let user = UserId::parse(body["user_id"].as_str().unwrap()).unwrap();
    let org = OrgId::parse(body["organization_id"].as_str().unwrap()).unwrap();
    assert!(body.get("access_token").is_none(), "no tokens until login");

    // Look at what was stored through a second app over the same data directory.
    let config = gatehouse::Config::from_raw(crate::support::raw_config(&app.dir), None).unwrap();
    let other = gatehouse::App::build(&config).await.unwrap();
    let store = other.kernel().store();
    let mut tx = store.begin().await.unwrap();
    let stored = tx.user_by_id(user).await.unwrap().unwrap();
    assert_eq!(stored.email, "ada@example.com");
    assert!(
        stored
            .password_hash
            .starts_with("$argon2id$v=19$m=19456,t=2,p=1$")
    );
    assert!(!stored.password_hash.contains("passphrase"));
    drop(tx);
    let mut tx = store
        .begin_scoped(&TenantScope::for_tests(org))
        .await
        .unwrap();
    let members = tx
        .list_memberships(PageRequest::parse(None, None).unwrap())
        .await
        .unwrap();
    assert_eq!(members.items.len(), 1);
    assert_eq!(
        (members.items[0].user_id, members.items[0].role.clone()),
        (user, Role::Owner)
    );
    drop(tx);
    app.stop().await;
}

#[tokio::test]
async fn a_registered_email_is_a_conflict() {
    let app = TestApp::spawn().await;
    assert_eq!(
        app.post_json("/v1/auth/signup", &signup_body("dup@example.com"))
            .await
            .status(),
        201
    );
    let res = app
        .post_json("/v1/auth/signup", &signup_body("DUP@example.com"))
        .await;
    expect_problem(res, 409, "email_taken").await;
    app.stop().await;
}

#[tokio::test]
async fn a_saturated_hashing_pool_answers_503_with_retry_after() {
    let app = TestApp::spawn_with(|c| {
        c.password_hashing.workers = Some(1);
        c.password_hashing.queue = 0;
    })
    .await;
    let mut handles = Vec::new();
    for i in 0..12 {
        let client = app.client.clone();
        let url = app.url("/v1/auth/signup");
        handles.push(tokio::spawn(async move {
            client
                .post(url)
                .json(&signup_body(&format!("u{i}@example.com")))
                .send()
                .await
                .unwrap()
        }));
    }
    let mut refused = 0;
    let mut created = 0;
    for h in handles {
        let res = h.await.unwrap();
        match res.status().as_u16() {
            201 => created += 1,
            503 => {
                assert_eq!(res.headers()["retry-after"], "1");
                expect_problem(res, 503, "overloaded").await;
                refused += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(
        created >= 1 && refused >= 1,
        "created {created}, refused {refused}"
    );
    app.stop().await;
}

//! Signup creates a user and an organisation owned by them.

use gatehouse_core::page::PageRequest;
use gatehouse_core::store::Role;
use gatehouse_core::{OrgId, TenantScope, UserId};

use reqwest::Method;

use crate::interop::SmtpSink;
use crate::recovery::with_smtp;
use crate::support::{PASSWORD, TestApp, expect_problem, signup_body};

#[tokio::test]
async fn creates_user_org_and_owner_membership() {
    let app = TestApp::spawn().await;
    let res = app
        .post_json("/v1/auth/signup", &signup_body(" Ada@Example.com "))
        .await;
    assert_eq!(res.status(), 202);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({"status": "accepted"}),
        "no ids, no tokens"
    );
    let signed = app.login("ada@example.com", PASSWORD, "cli", "").await;
    let me: serde_json::Value = app
        .call(Method::GET, "/v1/me", &signed.access, None, None)
        .await
        .json()
        .await
        .unwrap();
    let user = UserId::parse(me["user_id"].as_str().unwrap()).unwrap();
    let org = OrgId::parse(&signed.org).unwrap();

    // Look at what was stored, straight from the store (SQLite or, under GH_IT_POSTGRES,
    // PostgreSQL).
    let store = app.kernel.store();
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

/// Issue 18, finding 12: sign-up answers a registered address exactly as a new one; the owner
/// is mailed instead, and nothing is made.
#[tokio::test]
async fn a_registered_address_gets_the_same_answer_and_its_owner_a_mail() {
    let sink = SmtpSink::started();
    let app = with_smtp(&sink, |_| {}).await;
    let answer = |res: reqwest::Response| async move {
        let status = res.status().as_u16();
        let mut headers: Vec<(String, String)> = res
            .headers()
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "x-request-id" | "date"))
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        headers.sort();
        (status, headers, res.text().await.unwrap())
    };
    let first = answer(
        app.post_json("/v1/auth/signup", &signup_body("dup@example.com"))
            .await,
    )
    .await;
    let mut again = signup_body("DUP@example.com");
    again["password"] = serde_json::json!("another long passphrase");
    let second = answer(app.post_json("/v1/auth/signup", &again).await).await;
    assert_eq!(first, second);
    assert_eq!(first.0, 202);
    // The owner hears of it: a verification mail, then the notice.
    let mail = sink.wait_for(2).await;
    assert!(
        mail.iter()
            .any(|m| m.contains("Subject: Your Acme Cloud account already exists")),
        "{mail:#?}"
    );
    // Nothing was made: the first password still signs in, the second does not.
    app.login("dup@example.com", PASSWORD, "cli", "").await;
    let res = app
        .post_json(
            "/v1/auth/login",
            &serde_json::json!({"email": "dup@example.com", "password": "another long passphrase"}),
        )
        .await;
    expect_problem(res, 401, "invalid_credentials").await;
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
            202 => created += 1,
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

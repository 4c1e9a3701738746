//! Transit encryption (D1) over HTTP with API keys: round trips, bound context, tenant
//! separation, rotation with rewrap, and the floor.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Signed, TestApp, expect_problem};

async fn key(app: &TestApp, owner: &Signed, perms: &[&str]) -> String {
    let res = app
        .org_call(
            Method::POST,
            "/v1/api-keys",
            owner,
            Some(json!({"name": "app", "permissions": perms})),
        )
        .await;
    assert_eq!(res.status(), 201, "{:?}", res.text().await);
    res.json::<Value>().await.unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn transit(app: &TestApp, op: &str, key: &str, org: &str, body: Value) -> reqwest::Response {
    app.call(
        Method::POST,
        &format!("/v1/transit/{op}"),
        key,
        Some(org),
        Some(body),
    )
    .await
}

async fn encrypt(app: &TestApp, key: &str, org: &str, plain: &[u8], ctx: &str) -> String {
    let res = transit(
        app,
        "encrypt",
        key,
        org,
        json!({"plaintext": STANDARD.encode(plain), "context": ctx}),
    )
    .await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    res.json::<Value>().await.unwrap()["ciphertext"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn decrypt(app: &TestApp, key: &str, org: &str, ct: &str, ctx: &str) -> reqwest::Response {
    transit(
        app,
        "decrypt",
        key,
        org,
        json!({"ciphertext": ct, "context": ctx}),
    )
    .await
}

fn plain_of(body: &Value) -> Vec<u8> {
    STANDARD
        .decode(body["plaintext"].as_str().unwrap())
        .unwrap()
}

#[tokio::test]
async fn round_trips_bind_context_and_organisation_and_batches_report_each_item() {
    let app = TestApp::spawn().await;
    let a = app.signup_login("a@example.com", "laptop").await;
    let b = app.signup_login("b@example.com", "laptop").await;
    let a_key = key(&app, &a, &["transit.encrypt", "transit.decrypt"]).await;
    let b_key = key(&app, &b, &["transit.encrypt", "transit.decrypt"]).await;
    let enc_only = key(&app, &a, &["transit.encrypt"]).await;

    let ssn = b"078-05-1120";
    let ct = encrypt(&app, &a_key, &a.org, ssn, "users/42/ssn").await;
    assert!(ct.starts_with("gh:v1:"), "{ct}");
    assert!(!ct.contains("078-05"));
    // Same input twice: different ciphertexts (random salt and nonce).
    assert_ne!(ct, encrypt(&app, &a_key, &a.org, ssn, "users/42/ssn").await);
    let res = decrypt(&app, &a_key, &a.org, &ct, "users/42/ssn").await;
    assert_eq!(res.status(), 200);
    assert_eq!(plain_of(&res.json().await.unwrap()), ssn);

    // The wrong context, another organisation, a modified ciphertext: refused alike.
    let res = decrypt(&app, &a_key, &a.org, &ct, "users/43/ssn").await;
    expect_problem(res, 400, "transit_failed").await;
    let res = decrypt(&app, &b_key, &b.org, &ct, "users/42/ssn").await;
    expect_problem(res, 400, "transit_failed").await;
    let mut bent = ct.clone();
    bent.pop();
    bent.push(if ct.ends_with('A') { 'B' } else { 'A' });
    let res = decrypt(&app, &a_key, &a.org, &bent, "users/42/ssn").await;
    expect_problem(res, 400, "transit_failed").await;
    // A key with encrypt only cannot decrypt.
    let res = decrypt(&app, &enc_only, &a.org, &ct, "users/42/ssn").await;
    expect_problem(res, 403, "forbidden").await;

    // Batches: in order, each item on its own.
    let items: Vec<Value> = (0..100)
        .map(|i| json!({"plaintext": STANDARD.encode(format!("value {i}")), "context": format!("row/{i}")}))
        .collect();
    let res = transit(&app, "encrypt", &a_key, &a.org, json!({"batch": items})).await;
    assert_eq!(res.status(), 200);
    let out: Value = res.json().await.unwrap();
    let cts: Vec<&str> = out["batch"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["ciphertext"].as_str().unwrap())
        .collect();
    assert_eq!(cts.len(), 100);
    let mut back: Vec<Value> = cts
        .iter()
        .enumerate()
        .map(|(i, c)| json!({"ciphertext": c, "context": format!("row/{i}")}))
        .collect();
    back[7]["context"] = json!("row/8");
    let res = transit(&app, "decrypt", &a_key, &a.org, json!({"batch": back})).await;
    let out: Value = res.json().await.unwrap();
    let results = out["batch"].as_array().unwrap();
    assert_eq!(results.len(), 100);
    for (i, r) in results.iter().enumerate() {
        if i == 7 {
            assert!(
                r["error"].is_string() && r.get("plaintext").is_none(),
                "{r}"
            );
        } else {
            assert_eq!(plain_of(r), format!("value {i}").as_bytes());
        }
    }
    // Above the configured batch size: refused whole.
    let too_many: Vec<Value> = (0..101)
        .map(|_| json!({"plaintext": "AA==", "context": ""}))
        .collect();
    let res = transit(&app, "encrypt", &a_key, &a.org, json!({"batch": too_many})).await;
    expect_problem(res, 422, "validation_failed").await;

    // Transit's audit events are group-committed just after the answers: wait for them.
    let mut events = Vec::new();
    for _ in 0..50 {
        events = app.audit_events(&a.org).await;
        // The batch decryption is the last call; events commit in order.
        if events
            .iter()
            .any(|e| e.action == "transit.decrypted" && e.details == r#"{"items":100,"failed":1}"#)
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // One event per call that reached transit: two single encryptions and the batch of 100 (the
    // oversized batch was refused before).
    let count = |a: &str| events.iter().filter(|e| e.action == a).count();
    assert_eq!(count("transit.encrypted"), 3, "{events:?}");
    // Single decryptions that reached transit: the good one, the wrong context, the bent one.
    assert_eq!(count("transit.decrypted"), 4, "{events:?}");
    app.stop().await;
}

#[tokio::test]
async fn after_rotation_rewrap_moves_to_the_new_version_and_old_ones_open_until_the_floor_rises() {
    let app = TestApp::spawn().await;
    let a = app.signup_login("a@example.com", "laptop").await;
    let k = key(
        &app,
        &a,
        &["transit.encrypt", "transit.decrypt", "transit.manage"],
    )
    .await;
    let old = encrypt(&app, &k, &a.org, b"card 4111", "cards/1").await;
    assert!(old.starts_with("gh:v1:"));

    let org = gatehouse_core::OrgId::parse(&a.org).unwrap();
    let v2 = app.kernel.keyring().rotate_org(org).await.unwrap();
    assert_eq!(v2, 2);
    // Re-encryption of stored values runs; it must not retire version 1 while transit may
    // still hold ciphertexts under it.
    app.kernel.keyring().reencrypt_all(100).await.unwrap();
    let res = decrypt(&app, &k, &a.org, &old, "cards/1").await;
    assert_eq!(res.status(), 200);
    assert_eq!(plain_of(&res.json().await.unwrap()), b"card 4111");
    let new = encrypt(&app, &k, &a.org, b"card 5500", "cards/2").await;
    assert!(new.starts_with("gh:v2:"), "{new}");

    // Rewrap: to the newest version, and the caller sees no plaintext.
    let res = transit(
        &app,
        "rewrap",
        &k,
        &a.org,
        json!({"ciphertext": old, "context": "cards/1"}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert!(body.get("plaintext").is_none());
    let rewrapped = body["ciphertext"].as_str().unwrap().to_owned();
    assert!(rewrapped.starts_with("gh:v2:"), "{rewrapped}");
    let res = decrypt(&app, &k, &a.org, &rewrapped, "cards/1").await;
    assert_eq!(plain_of(&res.json().await.unwrap()), b"card 4111");

    // The floor: a person's act (an API key cannot step up), never above the newest version,
    // not onto a version other instances may not encrypt with yet, and only upwards.
    let floor_as = |token: String, v: u32| {
        let app = &app;
        let org = a.org.clone();
        async move {
            app.call(
                Method::PUT,
                "/v1/transit/min-version",
                &token,
                Some(&org),
                Some(json!({"min_version": v})),
            )
            .await
        }
    };
    let floor = |v: u32| floor_as(a.access.clone(), v);
    expect_problem(floor_as(k.clone(), 2).await, 403, "step_up_required").await;
    expect_problem(floor(3).await, 422, "validation_failed").await;
    expect_problem(floor(2).await, 409, "conflict").await;
    app.clock.advance(time::Duration::seconds(5));
    let res = floor(2).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"min_version": 2, "newest_version": 2})
    );
    expect_problem(floor(1).await, 422, "validation_failed").await;
    let res = decrypt(&app, &k, &a.org, &old, "cards/1").await;
    expect_problem(res, 400, "transit_failed").await;
    let res = transit(
        &app,
        "rewrap",
        &k,
        &a.org,
        json!({"ciphertext": old, "context": "cards/1"}),
    )
    .await;
    expect_problem(res, 400, "transit_failed").await;
    // Re-encryption may now retire version 1 for good; version 2 keeps working.
    app.kernel.keyring().reencrypt_all(100).await.unwrap();
    let status = app.kernel.keyring().status().await.unwrap();
    let ours = status.orgs.iter().find(|o| o.org_id == org).unwrap();
    let active: Vec<u32> = ours
        .versions
        .iter()
        .filter(|v| v.state == gatehouse_core::store::KeyState::Active)
        .map(|v| v.version)
        .collect();
    assert_eq!(active, vec![2], "{ours:?}");
    let res = decrypt(&app, &k, &a.org, &rewrapped, "cards/1").await;
    assert_eq!(res.status(), 200);
    app.stop().await;
}

//! API keys (B1) and service authentication (B2).

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Signed, TestApp, expect_problem};

async fn create_key(app: &TestApp, owner: &Signed, permissions: Value) -> Value {
    let res = app
        .org_call(
            Method::POST,
            "/v1/api-keys",
            owner,
            Some(json!({"name": "ci", "permissions": permissions})),
        )
        .await;
    assert_eq!(res.status(), 201, "{:?}", res.text().await);
    res.json().await.unwrap()
}

async fn verify_status(app: &TestApp, key: &str) -> u16 {
    app.call(Method::GET, "/v1/auth/verify", key, None, None)
        .await
        .status()
        .as_u16()
}

/// Replaces one character of the random part with another base62 character.
fn mistype(key: &str) -> String {
    let mut b = key.as_bytes().to_vec();
    b[12] = if b[12] == b'a' { b'b' } else { b'a' };
    String::from_utf8(b).unwrap()
}

#[tokio::test]
async fn create_use_rotate_with_grace_and_revoke() {
    let app = TestApp::spawn().await;
    let owner = app.signup_login("ada@example.com", "laptop").await;
    let created = create_key(&app, &owner, json!(["audit.read"])).await;
    let key = created["key"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(key.starts_with("gk_live_") && key.len() == 46, "{key}");
    assert_eq!(created["prefix"], &key[..12]);
    assert_eq!(created["last4"], &key[42..]);

    // Used as a bearer on the tenant API, with exactly its permissions.
    let res = app
        .call(Method::GET, "/v1/audit-logs", &key, Some(&owner.org), None)
        .await;
    assert_eq!(res.status(), 200);
    let res = app
        .call(
            Method::GET,
            "/v1/organization/members",
            &key,
            Some(&owner.org),
            None,
        )
        .await;
    expect_problem(res, 403, "forbidden").await;
    let res = app
        .call(Method::GET, "/v1/auth/verify", &key, None, None)
        .await;
    let who: Value = res.json().await.unwrap();
    assert_eq!(who["tier"], "api_key");
    assert_eq!(who["permissions"], json!(["audit.read"]));
    assert_eq!(who["organization_id"], owner.org.as_str());
    // A key has no session, and this one no expiry: neither is invented.
    assert!(who.get("session_id").is_none(), "{who}");
    assert!(who.get("expires_at").is_none(), "{who}");

    // Listings never show the key.
    let res = app
        .org_call(Method::GET, "/v1/api-keys", &owner, None)
        .await;
    let text = res.text().await.unwrap();
    assert!(!text.contains(&key) && text.contains(&id), "{text}");

    // Rotate with a 60 s grace: both work inside it, only the new one after.
    let res = app
        .org_call(
            Method::POST,
            &format!("/v1/api-keys/{id}/rotate"),
            &owner,
            Some(json!({"grace_seconds": 60})),
        )
        .await;
    assert_eq!(res.status(), 201);
    let rotated: Value = res.json().await.unwrap();
    let new_key = rotated["key"].as_str().unwrap().to_owned();
    let new_id = rotated["id"].as_str().unwrap().to_owned();
    assert_ne!(new_key, key);
    assert_eq!(verify_status(&app, &key).await, 200);
    assert_eq!(verify_status(&app, &new_key).await, 200);
    app.clock.advance(time::Duration::seconds(61));
    assert_eq!(verify_status(&app, &key).await, 401);
    assert_eq!(verify_status(&app, &new_key).await, 200);

    // Revoke: refused on the very next request.
    let res = app
        .org_call(
            Method::DELETE,
            &format!("/v1/api-keys/{new_id}"),
            &owner,
            None,
        )
        .await;
    assert_eq!(res.status(), 204);
    assert_eq!(verify_status(&app, &new_key).await, 401);

    let events = app.audit_events(&owner.org).await;
    for action in ["api_key.created", "api_key.rotated", "api_key.revoked"] {
        assert!(events.iter().any(|e| e.action == action), "{action}");
    }
    app.stop().await;
}

#[tokio::test]
async fn mistyped_and_expired_keys_are_refused() {
    let app = TestApp::spawn().await;
    let owner = app.signup_login("ada@example.com", "laptop").await;
    let created = create_key(&app, &owner, json!(["audit.read"])).await;
    let key = created["key"].as_str().unwrap();
    assert_eq!(verify_status(&app, key).await, 200);
    assert_eq!(verify_status(&app, &mistype(key)).await, 401);

    let expiring = app
        .org_call(
            Method::POST,
            "/v1/api-keys",
            &owner,
            Some(json!({
                "name": "short",
                "permissions": ["audit.read"],
                "expires_at": (time::OffsetDateTime::UNIX_EPOCH
                    + time::Duration::seconds(app.clock_secs() + 30))
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap(),
            })),
        )
        .await;
    assert_eq!(expiring.status(), 201);
    let expiring: Value = expiring.json().await.unwrap();
    let short = expiring["key"].as_str().unwrap();
    assert_eq!(verify_status(&app, short).await, 200);
    app.clock.advance(time::Duration::seconds(31));
    assert_eq!(verify_status(&app, short).await, 401);
    // A key asking for more than its creator holds is refused.
    let viewer = app.add_member(&owner, "vic@example.com", "viewer").await;
    let res = app
        .org_call(
            Method::POST,
            "/v1/api-keys",
            &viewer,
            Some(json!({"name": "x", "permissions": ["org.read"]})),
        )
        .await;
    expect_problem(res, 403, "forbidden").await;
    app.stop().await;
}

#[tokio::test]
async fn a_mistyped_key_is_refused_by_its_checksum_without_a_store_lookup() {
    // The kernel over a store that cannot be reached: a mistyped key is refused all the same
    // (401, not 503), so the checksum decided it before any lookup.
    let app = TestApp::spawn().await;
    let owner = app.signup_login("ada@example.com", "laptop").await;
    let created = create_key(&app, &owner, json!(["audit.read"])).await;
    let key = created["key"].as_str().unwrap();
    let kernel = crate::health::kernel_over_unreachable_store().await;
    let refused = kernel.api_keys().verify(&mistype(key)).await;
    assert!(
        matches!(refused, Err(gatehouse_core::Error::Unauthenticated(_))),
        "{refused:?}"
    );
    // A well-formed key does need the store: the same kernel answers unavailable.
    let needs_store = kernel.api_keys().verify(key).await;
    assert!(
        matches!(needs_store, Err(gatehouse_core::Error::Store(_))),
        "{needs_store:?}"
    );
    app.stop().await;
}

pub(crate) fn service_secret_file(
    dir: &std::path::Path,
    name: &str,
    b64: &str,
) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, b64).unwrap();
    std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    p
}

pub(crate) const S1: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
const S2: &str = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";

#[tokio::test]
async fn service_auth_accepts_only_the_configured_secrets_and_only_on_internal() {
    let dir = crate::support::temp_dir();
    let f1 = service_secret_file(&dir, "s1.key", S1);
    let f2 = service_secret_file(&dir, "s2.key", S2);
    let app = TestApp::spawn_with(|raw| raw.service_auth.secret_files = vec![f1, f2]).await;
    let owner = app.signup_login("ada@example.com", "laptop").await;
    let created = create_key(&app, &owner, json!(["audit.read"])).await;
    let key = created["key"].as_str().unwrap();
    let verify = |auth: Option<(&'static str, String)>| {
        let mut req = app
            .client
            .post(app.url("/internal/v1/api-keys/verify"))
            .json(&json!({"key": key}));
        if let Some((h, v)) = auth {
            req = req.header(h, v);
        }
        req.send()
    };
    // Both secrets pass during a rotation.
    for s in [S1, S2] {
        let res = verify(Some(("x-service-auth", s.to_owned())))
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["valid"], true);
        assert_eq!(body["organization"], owner.org.as_str());
        assert_eq!(body["permissions"], json!(["audit.read"]));
    }
    // Wrong, missing, a user token or an API key in its place: refused.
    let wrong = S1.replace('A', "B");
    for auth in [
        Some(("x-service-auth", wrong)),
        None,
        Some(("authorization", format!("Bearer {}", owner.access))),
        Some(("authorization", format!("Bearer {key}"))),
        Some(("x-service-auth", owner.access.clone())),
        Some(("x-service-auth", key.to_owned())),
    ] {
        let res = verify(auth).await.unwrap();
        expect_problem(res, 401, "unauthenticated").await;
    }
    // An invalid key is a 200 with valid: false for an authenticated service.
    let res = app
        .client
        .post(app.url("/internal/v1/api-keys/verify"))
        .header("x-service-auth", S1)
        .json(&json!({"key": mistype(key)}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"valid": false}));
    // The service secret never passes on /v1 or /admin/v1.
    for path in ["/v1/auth/verify", "/admin/v1/audit-logs"] {
        let res = app.call(Method::GET, path, S1, None, None).await;
        expect_problem(res, 401, "unauthenticated").await;
        let res = app
            .client
            .get(app.url(path))
            .header("x-service-auth", S1)
            .send()
            .await
            .unwrap();
        expect_problem(res, 401, "unauthenticated").await;
    }
    app.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn rotating_a_key_needs_every_permission_it_carries() {
    let app = TestApp::spawn().await;
    let owner = app.signup_login("ada@example.com", "laptop").await;
    let res = app
        .org_call(
            Method::POST,
            "/v1/organization/roles",
            &owner,
            Some(json!({"name": "keys", "permissions": ["org.read", "api_keys.manage"]})),
        )
        .await;
    assert_eq!(res.status(), 201);
    let keeper = app.add_member(&owner, "keys@example.com", "keys").await;
    let powerful = create_key(&app, &owner, json!(["data.delete"])).await;
    let id = powerful["id"].as_str().unwrap();
    let res = app
        .org_call(
            Method::POST,
            &format!("/v1/api-keys/{id}/rotate"),
            &keeper,
            Some(json!({"grace_seconds": 0})),
        )
        .await;
    expect_problem(res, 403, "forbidden").await;
    // The original still works: nothing was rotated.
    assert_eq!(
        verify_status(&app, powerful["key"].as_str().unwrap()).await,
        200
    );
    app.stop().await;
}

/// (status, permissions) of `key` at verify.
async fn acting(app: &TestApp, key: &str) -> (u16, Value) {
    let res = app
        .call(Method::GET, "/v1/auth/verify", key, None, None)
        .await;
    let status = res.status().as_u16();
    let body: Value = res.json().await.unwrap();
    (status, body["permissions"].clone())
}

/// Issue 18, finding 7: a key acts with at most what its creator holds now: a demoted creator's
/// key loses what the creator lost, a removed creator's key is suspended.
#[tokio::test]
async fn a_key_acts_with_at_most_its_creators_current_permissions() {
    let dir = crate::support::temp_dir();
    let secret = service_secret_file(&dir, "s1.key", S1);
    let app = TestApp::spawn_with(|raw| raw.service_auth.secret_files = vec![secret]).await;
    // What a service checking keys through /internal/v1 is told.
    let internal = |key: String| {
        app.client
            .post(app.url("/internal/v1/api-keys/verify"))
            .header("x-service-auth", S1)
            .json(&json!({"key": key}))
            .send()
    };
    let owner = app.signup_login("owner@example.com", "laptop").await;
    let bob = app.add_member(&owner, "bob@example.com", "admin").await;
    let key = create_key(&app, &bob, json!(["org.read", "audit.read"])).await;
    let key = key["key"].as_str().unwrap().to_owned();
    assert_eq!(
        acting(&app, &key).await,
        (200, json!(["org.read", "audit.read"]))
    );
    let res = app
        .org_call(
            Method::PUT,
            &format!("/v1/organization/members/{}", bob.user),
            &owner,
            Some(json!({"role": "viewer"})),
        )
        .await;
    assert_eq!(res.status(), 204);
    assert_eq!(acting(&app, &key).await, (200, json!(["org.read"])));
    let told: Value = internal(key.clone()).await.unwrap().json().await.unwrap();
    assert_eq!(told["valid"], true);
    assert_eq!(told["permissions"], json!(["org.read"]), "{told}");
    let res = app
        .call(Method::GET, "/v1/audit-logs", &key, Some(&owner.org), None)
        .await;
    assert_eq!(res.status(), 403, "audit.read went with the creator's role");
    let res = app
        .org_call(
            Method::DELETE,
            &format!("/v1/organization/members/{}", bob.user),
            &owner,
            None,
        )
        .await;
    assert_eq!(res.status(), 204);
    let res = app
        .call(Method::GET, "/v1/auth/verify", &key, None, None)
        .await;
    expect_problem(res, 401, "unauthenticated").await;
    let told: Value = internal(key.clone()).await.unwrap().json().await.unwrap();
    assert_eq!(told["valid"], false, "{told}");
    app.stop().await;
}

/// Issue 18, finding 7: a key that may make keys makes none that outlive it, and none that
/// outlive its own suspension.
#[tokio::test]
async fn a_key_made_by_a_key_expires_with_it_at_the_latest() {
    let app = TestApp::spawn().await;
    let owner = app.signup_login("owner@example.com", "laptop").await;
    let in_a_day = gatehouse_core::Clock::now(&app.clock) + time::Duration::days(1);
    let in_a_day = in_a_day
        .replace_nanosecond(0)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let res = app
        .org_call(
            Method::POST,
            "/v1/api-keys",
            &owner,
            Some(json!({"name": "parent", "permissions": ["api_keys.manage", "audit.read"], "expires_at": in_a_day})),
        )
        .await;
    assert_eq!(res.status(), 201);
    let parent: Value = res.json().await.unwrap();
    let parent_key = parent["key"].as_str().unwrap();
    let make = |body: Value| {
        app.call(
            Method::POST,
            "/v1/api-keys",
            parent_key,
            Some(&owner.org),
            Some(body),
        )
    };
    // No expiry asked: it gets the parent's.
    let res = make(json!({"name": "child", "permissions": ["audit.read"]})).await;
    assert_eq!(res.status(), 201);
    let child: Value = res.json().await.unwrap();
    assert_eq!(child["expires_at"], parent["expires_at"], "{child}");
    // Later than the parent: refused.
    let in_a_week = (gatehouse_core::Clock::now(&app.clock) + time::Duration::days(7))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let res =
        make(json!({"name": "late", "permissions": ["audit.read"], "expires_at": in_a_week})).await;
    expect_problem(res, 422, "validation_failed").await;
    // The parent revoked: the child is suspended with it.
    let child_key = child["key"].as_str().unwrap();
    assert_eq!(verify_status(&app, child_key).await, 200);
    let res = app
        .org_call(
            Method::DELETE,
            &format!("/v1/api-keys/{}", parent["id"].as_str().unwrap()),
            &owner,
            None,
        )
        .await;
    assert_eq!(res.status(), 204);
    assert_eq!(verify_status(&app, child_key).await, 401);
    app.stop().await;
}

//! Access tokens (A3): EdDSA JWTs that an independent implementation (PyJWT) verifies from the
//! JWKS document alone, key rotation, and organisation binding (`x-organization-id`).

use std::io::Write;
use std::process::{Command, Stdio};

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{TestApp, expect_problem};

fn python_with_pyjwt() -> std::path::PathBuf {
    crate::interop::python()
}

/// Runs tests/interop/verify_jwt.py (PyJWT) over `tokens` with `jwks`.
fn pyjwt_verify(jwks: &Value, tokens: &[&str], audience: &str) -> Vec<Value> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/verify_jwt.py");
    let mut child = Command::new(python_with_pyjwt())
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the interop Python must start");
    let input = json!({
        "jwks": jwks,
        "tokens": tokens,
        "issuer": "http://127.0.0.1:8080",
        "audience": audience,
    });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "PyJWT interop failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn jwks(app: &TestApp) -> Value {
    let res = app.get("/.well-known/jwks.json").await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

#[tokio::test]
async fn pyjwt_verifies_our_tokens_from_the_jwks_document_across_a_key_rotation() {
    let app = TestApp::spawn().await;
    let a = app.signup_login("ada@example.com", "laptop").await;
    let before = jwks(&app).await;
    assert_eq!(before["keys"].as_array().unwrap().len(), 1);
    let key = &before["keys"][0];
    assert_eq!(
        (&key["kty"], &key["crv"], &key["alg"], &key["use"]),
        (
            &json!("OKP"),
            &json!("Ed25519"),
            &json!("EdDSA"),
            &json!("sig")
        )
    );

    let checked = pyjwt_verify(&before, &[&a.access], "gatehouse");
    assert_eq!(checked[0]["ok"], true, "{checked:?}");
    let claims = &checked[0]["claims"];
    assert_eq!(claims["sub"], a.user.as_str());
    assert_eq!(claims["org"], a.org.as_str());
    assert_eq!(claims["sid"], a.session.as_str());
    assert_eq!(claims["roles"], json!(["owner"]));
    assert_eq!(claims["tier"], "customer");
    for claim in ["iat", "exp", "jti", "iss", "aud"] {
        assert!(!claims[claim].is_null(), "{claim} missing: {claims}");
    }
    // A different audience fails in PyJWT too: the check is real.
    let wrong = pyjwt_verify(&before, &[&a.access], "someone-else");
    assert_eq!(wrong[0]["ok"], false);

    // Rotate (what `gatehouse keys rotate-signing` runs) and let the server reload its keys.
    let new_kid = app.kernel.keyring().rotate_token_key().await.unwrap();
    app.kernel.auth().reload_token_keys().await.unwrap();
    let b = app
        .login(
            "ada@example.com",
            crate::support::PASSWORD,
            "phone",
            &a.user,
        )
        .await;
    let after = jwks(&app).await;
    let kids: Vec<&str> = after["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids.len(), 2, "{after}");
    assert!(kids.contains(&new_kid.to_string().as_str()));
    let both = pyjwt_verify(&after, &[&a.access, &b.access], "gatehouse");
    assert!(both.iter().all(|r| r["ok"] == true), "{both:?}");
    for t in [&a.access, &b.access] {
        let res = app
            .call(Method::GET, "/v1/auth/verify", t, None, None)
            .await;
        assert_eq!(res.status(), 200);
    }

    // Once every token of the old key has expired, it is no longer published.
    app.clock.advance(time::Duration::minutes(16));
    app.kernel.auth().reload_token_keys().await.unwrap();
    let later = jwks(&app).await;
    assert_eq!(later["keys"].as_array().unwrap().len(), 1, "{later}");
    assert_eq!(later["keys"][0]["kid"], new_kid.to_string().as_str());
    app.stop().await;
}

#[tokio::test]
async fn org_routes_need_the_tokens_organisation_and_a_mismatch_is_refused_and_audited() {
    let app = TestApp::spawn().await;
    let a = app.signup_login("ada@example.com", "laptop").await;
    let b = app.signup_login("bob@example.com", "laptop").await;

    let res = app
        .call(
            Method::GET,
            "/v1/organization/members",
            &a.access,
            None,
            None,
        )
        .await;
    let body = expect_problem(res, 400, "organization_required").await;
    assert_eq!(body["field"], "x-organization-id");

    // Every organisation route, pointed at B with A's token: 403, nothing of B's.
    for path in [
        "/v1/organization/members",
        "/v1/organization/roles",
        "/v1/audit-logs",
        "/v1/audit-logs/export",
    ] {
        let res = app
            .call(Method::GET, path, &a.access, Some(&b.org), None)
            .await;
        let text = res.text().await.unwrap();
        assert!(text.contains("organization_mismatch"), "{path}: {text}");
        assert!(!text.contains(&b.user), "{path} leaked B's data: {text}");
    }
    let res = app
        .call(
            Method::PUT,
            &format!("/v1/organization/members/{}", b.user),
            &a.access,
            Some(&b.org),
            Some(json!({"role": "viewer"})),
        )
        .await;
    expect_problem(res, 403, "organization_mismatch").await;

    // Audited on A's chain (whose member tried); nothing is written to B's.
    let events = app.audit_events(&a.org).await;
    let refusals: Vec<_> = events
        .iter()
        .filter(|e| e.action == "auth.org_mismatch")
        .collect();
    assert_eq!(refusals.len(), 5);
    assert!(
        refusals
            .iter()
            .all(|e| e.outcome == "denied" && e.actor_id == a.user && e.details.contains(&b.org))
    );
    assert!(
        !app.audit_events(&b.org)
            .await
            .iter()
            .any(|e| e.action == "auth.org_mismatch")
    );
    // With its own organisation the same token sees only its own members.
    let res = app
        .org_call(Method::GET, "/v1/organization/members", &a, None)
        .await;
    let page: Value = res.json().await.unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["user_id"], a.user.as_str());
    // Forward auth checks the header too when a proxy sends it.
    let res = app
        .call(
            Method::GET,
            "/v1/auth/verify",
            &a.access,
            Some(&b.org),
            None,
        )
        .await;
    expect_problem(res, 403, "organization_mismatch").await;
    app.stop().await;
}

#[tokio::test]
async fn switching_organisation_issues_a_token_for_a_membership_only() {
    let app = TestApp::spawn().await;
    let a = app.signup_login("ada@example.com", "laptop").await;
    let b = app.signup_login("bob@example.com", "laptop").await;
    // Ada joins Bob's organisation as a member.
    let res = app
        .org_call(
            Method::POST,
            "/v1/organization/invitations",
            &b,
            Some(json!({"email": "ada@example.com", "role": "member"})),
        )
        .await;
    assert_eq!(res.status(), 201);
    let token = app
        .mailed_link("ada@example.com", "/accept-invitation")
        .await;
    let res = app
        .post_json(
            "/v1/invitations/accept",
            &json!({"token": token, "password": crate::support::PASSWORD}),
        )
        .await;
    assert_eq!(res.status(), 200);

    let res = app
        .call(
            Method::POST,
            "/v1/auth/switch-organization",
            &a.access,
            None,
            Some(json!({"organization_id": b.org})),
        )
        .await;
    assert_eq!(res.status(), 200);
    let switched: Value = res.json().await.unwrap();
    assert_eq!(switched["organization_id"], b.org.as_str());
    let token = switched["access_token"].as_str().unwrap();
    let res = app
        .call(
            Method::GET,
            "/v1/organization/members",
            token,
            Some(&b.org),
            None,
        )
        .await;
    assert_eq!(res.status(), 200);
    let res = app
        .call(Method::GET, "/v1/auth/verify", token, None, None)
        .await;
    assert_eq!(res.headers()["x-gatehouse-roles"], "member");

    // A third organisation Ada does not belong to.
    let c = app.signup_login("cy@example.com", "laptop").await;
    let res = app
        .call(
            Method::POST,
            "/v1/auth/switch-organization",
            token,
            None,
            Some(json!({"organization_id": c.org})),
        )
        .await;
    expect_problem(res, 403, "forbidden").await;
    app.stop().await;
}

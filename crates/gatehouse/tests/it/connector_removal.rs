//! A person's connectors end with their membership (#24, fifth review): removing a member and
//! erasing one delete their connectors there and the sealed tokens in the transaction that ends
//! the membership, audited as `connector.removed`, and then revoke the tokens at the provider,
//! a connector without a refresh token (never due at the refresh job) included.

use reqwest::Method;
use serde_json::{Value, json};

use crate::connectors::{Setup, connect, hand_out, setup_with};
use crate::support::Signed;

/// A platform provider `crm` asked without `offline_access`: no refresh token is issued.
async fn setup_without_refresh() -> Setup {
    setup_with(|raw| {
        for p in &mut raw.oauth.providers {
            p.scopes = vec!["openid".into(), "email".into()];
        }
    })
    .await
}

/// Whether the connector's row or either of its sealed tokens is still in the database.
async fn anything_left(s: &Setup, org: &str, id: &str) -> bool {
    let org = gatehouse_core::ids::OrgId::from_uuid(org.parse().unwrap());
    let scope = gatehouse_core::scope::TenantScope::for_tests(org);
    let kernel = &s.app.kernel;
    let mut tx = kernel.store().begin_read_scoped(&scope).await.unwrap();
    let uuid: uuid::Uuid = id.parse().unwrap();
    let mut left = tx.connector(uuid).await.unwrap().is_some();
    for field in ["access", "refresh"] {
        let opened = kernel
            .keyring()
            .open(
                tx.as_mut(),
                gatehouse_core::keyring::FieldRef {
                    kind: gatehouse_core::keyring::SealedKind::ConnectorToken,
                    record_id: id,
                    field,
                },
            )
            .await
            .unwrap();
        left |= opened.is_some();
    }
    left
}

/// A connection without a refresh token by `member`, its access token live at the provider.
async fn connected_unrefreshable(s: &Setup, member: &Signed) -> (String, String) {
    let c = connect(s, member, "bob").await;
    assert_eq!(c["refreshable"], false, "{c}");
    let id = c["id"].as_str().unwrap().to_owned();
    assert_eq!(hand_out(&s.app, &id, member).await.status(), 200);
    let (access, refresh) = s.op.issued_tokens().await;
    assert!(refresh.is_empty(), "{refresh:?}");
    let access = access.last().unwrap().clone();
    assert_eq!(s.op.userinfo_status(&access).await, 200);
    assert!(anything_left(s, &member.org, &id).await);
    (id, access)
}

async fn removed_event(s: &Setup, org: &str, id: &str) -> Value {
    let e = s
        .app
        .audit_events(org)
        .await
        .into_iter()
        .find(|e| e.action == "connector.removed" && e.resource_id == id)
        .expect("no connector.removed event");
    serde_json::from_str(&e.details).unwrap()
}

#[tokio::test]
async fn a_removed_members_connector_without_a_refresh_token_is_deleted_and_revoked() {
    let s = setup_without_refresh().await;
    let app = &s.app;
    let owner = app.signup_login("rm-owner@example.com", "laptop").await;
    let member = app
        .add_member(&owner, "rm-member@example.com", "member")
        .await;
    let (id, access) = connected_unrefreshable(&s, &member).await;
    let res = app
        .org_call(
            Method::DELETE,
            &format!("/v1/organization/members/{}", member.user),
            &owner,
            None,
        )
        .await;
    assert_eq!(res.status(), 204, "{:?}", res.text().await);
    assert!(!anything_left(&s, &owner.org, &id).await);
    let details = removed_event(&s, &owner.org, &id).await;
    assert_eq!(
        details["reason"],
        "the owner was removed from the organisation"
    );
    assert_eq!(details["owner"], member.user);
    assert_eq!(
        s.op.userinfo_status(&access).await,
        401,
        "the access token is still active at the provider"
    );
    assert_ne!(hand_out(app, &id, &member).await.status(), 200);
    app.chain_verifies(&owner.org).await;
    s.app.stop().await;
}

#[tokio::test]
async fn an_erased_members_connector_without_a_refresh_token_is_deleted_and_revoked() {
    let s = setup_without_refresh().await;
    let app = &s.app;
    let owner = app.signup_login("er-owner@example.com", "laptop").await;
    let member = app
        .add_member(&owner, "er-member@example.com", "member")
        .await;
    let (id, access) = connected_unrefreshable(&s, &member).await;
    // Within the owner's step-up window (just signed in).
    let res = app
        .org_call(
            Method::POST,
            "/v1/erasures",
            &owner,
            Some(json!({"user_id": member.user})),
        )
        .await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    assert!(!anything_left(&s, &owner.org, &id).await);
    let details = removed_event(&s, &owner.org, &id).await;
    assert_eq!(details["reason"], "the owner was erased");
    assert_eq!(
        s.op.userinfo_status(&access).await,
        401,
        "the access token is still active at the provider"
    );
    app.chain_verifies(&owner.org).await;
    s.app.stop().await;
}

/// A token endpoint that holds its answer until the test lets it go, and counts revocations.
#[derive(Default)]
struct Held {
    reached: std::sync::Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    go: std::sync::Mutex<Option<tokio::sync::oneshot::Receiver<()>>>,
    revoked: std::sync::atomic::AtomicU32,
}

async fn held_token(
    axum::extract::State(h): axum::extract::State<std::sync::Arc<Held>>,
) -> axum::Json<Value> {
    let reached = h.reached.lock().unwrap().take();
    if let Some(tx) = reached {
        let _ = tx.send(());
    }
    let go = h.go.lock().unwrap().take();
    if let Some(rx) = go {
        let _ = rx.await;
    }
    axum::Json(
        json!({"access_token": "held-access-7Kq", "token_type": "Bearer",
                      "expires_in": 3600, "refresh_token": "held-refresh-9Xw"}),
    )
}

async fn held_revoke(axum::extract::State(h): axum::extract::State<std::sync::Arc<Held>>) {
    h.revoked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
}

/// An organisation's provider deleted while a callback exchanges its code: no connector is made
/// for it, and the tokens just granted are revoked at the provider (#24, fifth review).
#[tokio::test]
async fn a_provider_deleted_during_the_code_exchange_gets_no_connector_and_its_tokens_revoked() {
    let s = setup_with(|_| {}).await;
    let app = &s.app;
    let held = std::sync::Arc::new(Held::default());
    let (reached_tx, reached_rx) = tokio::sync::oneshot::channel();
    let (go_tx, go_rx) = tokio::sync::oneshot::channel();
    *held.reached.lock().unwrap() = Some(reached_tx);
    *held.go.lock().unwrap() = Some(go_rx);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = axum::Router::new()
        .route("/token", axum::routing::post(held_token))
        .route("/revoke", axum::routing::post(held_revoke))
        .with_state(std::sync::Arc::clone(&held));
    let server = tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let owner = app.signup_login("held-owner@example.com", "laptop").await;
    let res = app
        .org_call(
            Method::POST,
            "/v1/connectors/providers",
            &owner,
            Some(json!({
                "name": "held-crm",
                "authorization_url": format!("{base}/authorize"),
                "token_url": format!("{base}/token"),
                "revocation_url": format!("{base}/revoke"),
                "client_id": "held-client",
                "client_secret": "held-secret",
                "scopes": ["crm.read"],
            })),
        )
        .await;
    assert_eq!(res.status(), 201, "{:?}", res.text().await);
    let res = app
        .org_call(Method::POST, "/v1/connectors/held-crm/start", &owner, None)
        .await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let started: Value = res.json().await.unwrap();
    let url = started["authorization_url"].as_str().unwrap();
    let state = crate::oidc_provider::query_param(url, "state").unwrap();
    let redirect = crate::oidc_provider::query_param(url, "redirect_uri").unwrap();
    let mut back = reqwest::Url::parse(&redirect).unwrap();
    back.query_pairs_mut()
        .append_pair("code", "held-code")
        .append_pair("state", &state);
    let back = back.to_string();
    let deleter = async {
        reached_rx.await.unwrap();
        let res = app
            .org_call(
                Method::DELETE,
                "/v1/connectors/providers/held-crm",
                &owner,
                None,
            )
            .await;
        assert_eq!(res.status(), 204, "{:?}", res.text().await);
        go_tx.send(()).unwrap();
    };
    let (res, ()) = tokio::join!(
        crate::connectors::callback(app, &back, Some(&owner)),
        deleter
    );
    assert_eq!(res.status(), 404, "{:?}", res.text().await);
    assert_eq!(held.revoked.load(std::sync::atomic::Ordering::SeqCst), 2);
    let listed: Value = app
        .org_call(Method::GET, "/v1/connectors", &owner, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"], json!([]), "{listed}");
    let failed = app
        .audit_events(&owner.org)
        .await
        .into_iter()
        .find(|e| e.action == "connector.connect_failed")
        .expect("the failed connection was not recorded");
    assert!(
        failed.details.contains("were revoked"),
        "{}",
        failed.details
    );
    server.abort();
    s.app.stop().await;
}

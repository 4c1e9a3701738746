//! Connectors (B3, issue 24) over HTTP against a real OpenID provider (`oidc-provider`, see
//! `oidc_provider.rs`): connecting through the authorization code flow with PKCE and a signed
//! state, the token handed to a service on the person's behalf, refreshed ahead of expiry by
//! the leased job, and revoked at the provider on disconnect; tokens never in a `/v1` answer,
//! a log line or the database's bytes; and every refused state refused before its code reaches
//! the provider.

use reqwest::Method;
use serde_json::Value;

use crate::oauth::dev_oauth;
use crate::oidc_provider::{OidcAccount, OidcClient, OidcOptions, OidcProvider};
use crate::support::{Signed, TestApp, expect_problem, temp_dir};

/// What the provider sends browsers back to: Gatehouse's public URL (the tests call the
/// callback themselves, so nothing listens there).
pub const PUBLIC: &str = "http://gatehouse.test";
pub const SERVICE_SECRET: &str = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";
const CLIENT_SECRET: &str = "connectors-client-secret-7Qz";

pub struct Setup {
    pub op: OidcProvider,
    pub app: TestApp,
    pub client: OidcClient,
}

fn secret_file(dir: &std::path::Path, name: &str, value: &str) -> std::path::PathBuf {
    let f = dir.join(name);
    std::fs::write(&f, value).unwrap();
    std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    f
}

/// A provider with short-lived access tokens, and a Gatehouse offering it as the platform
/// provider `crm`, with a service allowed on `/internal/v1` and the refresh job ticking fast.
pub async fn setup_with(edit: impl FnOnce(&mut gatehouse::config::RawConfig)) -> Setup {
    let mut client = OidcClient::new(
        "gatehouse-connectors",
        &format!("{PUBLIC}/v1/connectors/crm/callback"),
    );
    client.client_secret = CLIENT_SECRET.into();
    let op = OidcProvider::start(OidcOptions {
        clients: vec![client.clone()],
        accounts: vec![
            OidcAccount::new("alice", "alice@crm.example"),
            OidcAccount::new("bob", "bob@crm.example"),
        ],
        access_token_ttl: 60,
        ..OidcOptions::default()
    });
    let dir = temp_dir();
    let service = secret_file(&dir, "sync-worker.key", SERVICE_SECRET);
    let client_secret = secret_file(&dir, "crm-client.secret", CLIENT_SECRET);
    let issuer = op.issuer();
    let app = TestApp::spawn_in(dir, |raw| {
        dev_oauth(raw);
        raw.oauth.public_url = PUBLIC.into();
        raw.oauth.connector_poll_interval_ms = 100;
        raw.oauth.providers = vec![gatehouse::config::oauth::ProviderConfig {
            name: "crm".into(),
            issuer: Some(issuer),
            client_id: client.client_id.clone(),
            client_secret_file: Some(client_secret),
            scopes: vec!["openid".into(), "offline_access".into(), "email".into()],
            ..Default::default()
        }];
        raw.service_auth.secret_files = vec![service];
        edit(raw);
    })
    .await;
    Setup { op, app, client }
}

/// Starts connecting `who` at `crm` and drives the provider (as `account`) to the redirect back;
/// returns that URL (the callback with `code` and `state`), not yet called.
pub async fn authorized(s: &Setup, who: &Signed, account: &str) -> String {
    let res = s
        .app
        .org_call(Method::POST, "/v1/connectors/crm/start", who, None)
        .await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let started: Value = res.json().await.unwrap();
    let url = started["authorization_url"].as_str().unwrap();
    assert!(url.contains("code_challenge_method=S256"), "{url}");
    let back = s.op.authorize(url, account).await;
    assert!(
        back.starts_with(&format!("{PUBLIC}/v1/connectors/crm/callback?")),
        "{back}"
    );
    back
}

/// Calls Gatehouse's callback the provider sent the browser back to (its path and query), with
/// `relay`'s token when given (as a bearer-mode product's page relays it).
pub async fn callback(app: &TestApp, back: &str, relay: Option<&Signed>) -> reqwest::Response {
    let path = back
        .strip_prefix(PUBLIC)
        .expect("a redirect to the public URL");
    let mut req = app.client.get(app.url(path));
    if let Some(who) = relay {
        req = req
            .bearer_auth(&who.access)
            .header("x-organization-id", &who.org);
    }
    req.send().await.unwrap()
}

pub async fn connect(s: &Setup, who: &Signed, account: &str) -> Value {
    let back = authorized(s, who, account).await;
    let res = callback(&s.app, &back, Some(who)).await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    res.json().await.unwrap()
}

pub async fn hand_out(app: &TestApp, id: &str, who: &Signed) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/internal/v1/connectors/{id}/token")))
        .header("x-service-auth", SERVICE_SECRET)
        .header("x-gatehouse-on-behalf-of", &who.access)
        .header("x-gatehouse-service", "crm sync")
        .send()
        .await
        .unwrap()
}

async fn token_of(app: &TestApp, id: &str, who: &Signed) -> String {
    let res = hand_out(app, id, who).await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    body["access_token"].as_str().unwrap().to_owned()
}

/// Waits (up to 15 s of real time) until `pred` holds of the connector as `/v1` shows it.
async fn connector_until(
    app: &TestApp,
    who: &Signed,
    id: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    for _ in 0..150 {
        let res = app
            .org_call(Method::GET, &format!("/v1/connectors/{id}"), who, None)
            .await;
        assert_eq!(res.status(), 200);
        let c: Value = res.json().await.unwrap();
        if pred(&c) {
            return c;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the connector never reached the expected state");
}

/// Which of `needles` occur in the SQLite database's files (empty on PostgreSQL, whose files
/// this test cannot read: there the sealed form is shown by the store's own tests).
fn in_database_files(app: &TestApp, needles: &[String]) -> Vec<String> {
    let data = app.dir.join("data");
    let mut hits = Vec::new();
    for file in ["gatehouse.db", "gatehouse.db-wal"] {
        let Ok(bytes) = std::fs::read(data.join(file)) else {
            continue;
        };
        for n in needles {
            if bytes.windows(n.len()).any(|w| w == n.as_bytes()) {
                hits.push(format!("a token in {file}"));
            }
        }
    }
    hits
}

#[tokio::test(flavor = "current_thread")]
async fn a_connector_is_connected_used_refreshed_ahead_of_expiry_and_revoked_at_disconnect() {
    let capture = crate::support::Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(capture.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let s = setup_with(|raw| raw.log_level = "trace".into()).await;
    let app = &s.app;
    let owner = app
        .signup_login("connect-owner@example.com", "laptop")
        .await;
    let mut answers: Vec<String> = Vec::new();

    // The provider is listed without its secret.
    let res = app
        .org_call(Method::GET, "/v1/connectors/providers", &owner, None)
        .await;
    assert_eq!(res.status(), 200);
    let listed = res.text().await.unwrap();
    assert!(
        listed.contains("\"crm\"") && !listed.contains(CLIENT_SECRET),
        "{listed}"
    );

    let connector = connect(&s, &owner, "alice").await;
    answers.push(connector.to_string());
    let id = connector["id"].as_str().unwrap().to_owned();
    assert_eq!(connector["status"], "active");
    assert_eq!(connector["refreshable"], true);
    assert_eq!(
        connector["scopes"],
        serde_json::json!(["openid", "offline_access", "email"])
    );
    assert_eq!(s.op.token_requests("authorization_code").await, 1);

    // A service gets the access token on the owner's behalf; the provider honours it.
    let first = token_of(app, &id, &owner).await;
    assert_eq!(s.op.userinfo_status(&first).await, 200);
    // Again from the sealed cache: the same token, and each use audited.
    assert_eq!(token_of(app, &id, &owner).await, first);
    assert!(!app.kernel.connectors().token_cache().is_empty());

    // Refreshed ahead of expiry: the provider's tokens live 60 s, so the job refreshes at 30 s.
    app.clock.advance(time::Duration::seconds(29));
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        s.op.token_requests("refresh_token").await,
        0,
        "not before it is due"
    );
    let expires_before = connector["expires_at"].clone();
    app.clock.advance(time::Duration::seconds(2));
    let refreshed = connector_until(app, &owner, &id, |c| c["expires_at"] != expires_before).await;
    answers.push(refreshed.to_string());
    assert_eq!(s.op.token_requests("refresh_token").await, 1);
    let second = token_of(app, &id, &owner).await;
    assert_ne!(
        second, first,
        "the cached token was forgotten at the refresh"
    );
    assert_eq!(s.op.userinfo_status(&second).await, 200);

    // Listings and reads never carry a token.
    for path in ["/v1/connectors".to_owned(), format!("/v1/connectors/{id}")] {
        let res = app.org_call(Method::GET, &path, &owner, None).await;
        assert_eq!(res.status(), 200);
        answers.push(res.text().await.unwrap());
    }

    // Disconnect: revoked at the provider (RFC 7009), then erased here.
    let res = app
        .org_call(
            Method::DELETE,
            &format!("/v1/connectors/{id}"),
            &owner,
            None,
        )
        .await;
    assert_eq!(res.status(), 200);
    let gone: Value = res.json().await.unwrap();
    answers.push(gone.to_string());
    assert_eq!(gone["revoked_at_provider"], true);
    let (access, refresh) = s.op.issued_tokens().await;
    assert_eq!((access.len(), refresh.len()), (2, 2));
    for r in &refresh {
        assert!(
            !s.op.introspect(&s.client, r).await,
            "a refresh token still active"
        );
    }
    assert_eq!(s.op.userinfo_status(&second).await, 401);
    expect_problem(hand_out(app, &id, &owner).await, 404, "not_found").await;
    let res = app
        .org_call(Method::GET, &format!("/v1/connectors/{id}"), &owner, None)
        .await;
    assert_eq!(res.status(), 404);

    let tokens: Vec<String> = access.iter().chain(refresh.iter()).cloned().collect();
    for a in &answers {
        for t in &tokens {
            assert!(!a.contains(t.as_str()), "a /v1 answer carries a token: {a}");
        }
    }
    // Sealed at rest: while connected, and after, no token is in the database's bytes.
    assert_eq!(in_database_files(app, &tokens), Vec::<String>::new());
    let actions: Vec<String> = app
        .audit_events(&owner.org)
        .await
        .into_iter()
        .map(|e| e.action)
        .collect();
    for want in [
        "connector.authorization_started",
        "oauth.state_spent",
        "connector.connected",
        "connector.token_used",
        "connector.refreshed",
        "connector.disconnected",
    ] {
        assert!(
            actions.iter().any(|a| a == want),
            "{want} missing from {actions:?}"
        );
    }
    app.chain_verifies(&owner.org).await;
    let Setup { app, op, .. } = s;
    app.stop().await;
    drop(op);
    let logs = capture.text();
    assert!(
        logs.contains("connectors"),
        "TRACE logging captured nothing of the flow"
    );
    for t in tokens
        .iter()
        .chain(std::iter::once(&CLIENT_SECRET.to_owned()))
    {
        assert!(
            !logs.contains(t.as_str()),
            "a log line carries a token or the client secret"
        );
    }
}

#[tokio::test]
async fn while_connected_the_tokens_are_only_sealed_in_the_database() {
    let s = setup_with(|_| {}).await;
    let owner = s
        .app
        .signup_login("sealed-owner@example.com", "laptop")
        .await;
    let c = connect(&s, &owner, "alice").await;
    let (access, refresh) = s.op.issued_tokens().await;
    let tokens: Vec<String> = access.into_iter().chain(refresh).collect();
    assert_eq!(tokens.len(), 2);
    if std::env::var_os("GH_IT_POSTGRES").is_none() {
        assert!(s.app.dir.join("data/gatehouse.db").exists());
    }
    assert_eq!(in_database_files(&s.app, &tokens), Vec::<String>::new());
    // They are there, sealed: the service gets the access token back.
    let id = c["id"].as_str().unwrap();
    assert_eq!(token_of(&s.app, id, &owner).await, tokens[0]);
    // The person's export (G1) lists the connector, never a token.
    let (_, lines, _) = crate::exports::my_export(&s.app, &owner, 100).await;
    let listed: Vec<&Value> = lines.iter().filter(|l| l["type"] == "connector").collect();
    assert_eq!(listed.len(), 1, "{lines:?}");
    assert_eq!(listed[0]["id"], id);
    assert_eq!(listed[0]["provider"], "crm");
    let text = serde_json::to_string(&lines).unwrap();
    for t in &tokens {
        assert!(!text.contains(t.as_str()), "a token in the export");
    }
    s.app.stop().await;
}

/// The hand-out decides `connectors.use` from the cached membership (no transaction per call):
/// a role change must still apply to the very next call, as the cache is forgotten with it.
#[tokio::test]
async fn a_demoted_members_next_hand_out_is_refused_though_their_role_was_cached() {
    let s = setup_with(|_| {}).await;
    let app = &s.app;
    let owner = app.signup_login("demote-owner@example.com", "laptop").await;
    let member = app
        .add_member(&owner, "demote-member@example.com", "member")
        .await;
    let c = connect(&s, &member, "bob").await;
    let id = c["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/organization/members/{}", member.user);
    let set_role = |role: &'static str| {
        app.org_call(
            Method::PUT,
            &path,
            &owner,
            Some(serde_json::json!({ "role": role })),
        )
    };
    // The first hand-out reads the membership and caches the role; the second is served from it.
    let first = token_of(app, &id, &member).await;
    assert_eq!(token_of(app, &id, &member).await, first);
    assert_eq!(set_role("viewer").await.status(), 204);
    expect_problem(hand_out(app, &id, &member).await, 403, "forbidden").await;
    // Refused again: a refusal is always decided in the store, and recorded each time.
    expect_problem(hand_out(app, &id, &member).await, 403, "forbidden").await;
    let denied = app
        .audit_events(&owner.org)
        .await
        .into_iter()
        .filter(|e| e.action == "permission.denied")
        .count();
    assert_eq!(denied, 2);
    assert_eq!(set_role("member").await.status(), 204);
    assert_eq!(token_of(app, &id, &member).await, first);
    app.chain_verifies(&owner.org).await;
    s.app.stop().await;
}

/// Must 5's hand-out audit: a pairing's first hand-out (connector, person, service) is committed
/// (and label) on its own before it answers; the rest are counted and written at the flush, so the chain
/// accounts for every hand-out.
#[tokio::test]
async fn hand_outs_after_a_pairings_first_are_counted_and_written_at_the_flush() {
    let s = setup_with(|_| {}).await;
    let app = &s.app;
    let owner = app.signup_login("tally-owner@example.com", "laptop").await;
    let c = connect(&s, &owner, "alice").await;
    let id = c["id"].as_str().unwrap().to_owned();
    let used = |events: &[gatehouse_core::audit::AuditRecord]| -> Vec<Value> {
        events
            .iter()
            .filter(|e| e.action == "connector.token_used")
            .map(|e| {
                let mut d: Value = serde_json::from_str(&e.details).unwrap();
                d["request_id"] = serde_json::json!(e.request_id);
                d
            })
            .collect()
    };
    let first = token_of(app, &id, &owner).await;
    let recorded = used(&app.audit_events(&owner.org).await);
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert_eq!(recorded[0]["uses"], 1);
    assert_eq!(recorded[0]["service_label"], "crm sync");
    assert!(recorded[0]["request_id"].is_string(), "{recorded:?}");
    for _ in 0..4 {
        assert_eq!(token_of(app, &id, &owner).await, first);
    }
    assert!(!app.kernel.connectors().usage().is_empty());
    // A flush abandoned part-way (as the activity job is stopped at shutdown) loses nothing:
    // the next flush waits for it, and the counts are in the chain.
    let abandoned = tokio::time::timeout(
        std::time::Duration::ZERO,
        app.kernel.connectors().flush_usage(),
    )
    .await;
    if let Ok(done) = abandoned {
        assert_eq!(done.unwrap(), 1);
    }
    assert_eq!(app.kernel.connectors().flush_usage().await.unwrap(), 0);
    assert!(app.kernel.connectors().usage().is_empty());
    let recorded = used(&app.audit_events(&owner.org).await);
    let total: u64 = recorded.iter().map(|d| d["uses"].as_u64().unwrap()).sum();
    assert_eq!(total, 5, "every hand-out is accounted for: {recorded:?}");
    let counted: Vec<&Value> = recorded.iter().filter(|d| d["uses"] != 1).collect();
    assert!(
        counted
            .iter()
            .all(|d| d["first_at"].is_i64() && d["last_at"].is_i64())
    );
    // After the flush the pairing's next hand-out is committed on its own again.
    let before = recorded.len();
    token_of(app, &id, &owner).await;
    let recorded = used(&app.audit_events(&owner.org).await);
    assert_eq!(recorded.len(), before + 1);
    app.chain_verifies(&owner.org).await;
    s.app.stop().await;
}

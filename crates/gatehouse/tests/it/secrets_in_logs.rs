//! D5: plant a known master key, password, token and vault password, run this operations
//! with logging at TRACE, and find none of them in any log line.

use gatehouse_core::audit::Audited;
use std::sync::Arc;

use crate::support::Capture;
use base64::Engine;
use gatehouse::config::LogFormat;
use gatehouse::{App, Config};
use gatehouse_core::TenantScope;
use gatehouse_core::keyring::{FieldRef, SealedKind};
use gatehouse_crypto::{Key32, SecretString};

const PASSWORD: &str = "planted-Password-9f3kQ";
const TOKEN: &str = "planted-token-77xq2-secret";
const VAULT_PASSWORD: &str = "planted-vault-master-pw";
const VAULT_VALUE: &str = "planted-vault-value-zz9";

#[tokio::test(flavor = "current_thread")]
async fn no_log_line_contains_a_planted_secret() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_max_level(tracing::Level::TRACE)
        .with_writer(capture.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let b64 = base64::engine::general_purpose::STANDARD;
    let master = [0x5a_u8; 32];
    let new_master = [0x6b_u8; 32];
    let master_b64 = b64.encode(master);
    let new_master_b64 = b64.encode(new_master);
    let hex = |k: &[u8]| k.iter().map(|b| format!("{b:02x}")).collect::<String>();

    let dir = crate::support::temp_dir();
    let mut raw = crate::support::raw_config(&dir);
    raw.log_format = LogFormat::Json;
    raw.log_level = "trace".into();
    let config = Config::from_raw(raw, Some(&master_b64)).unwrap();
    tracing::debug!(?config, "configuration");
    let app = App::build(&config).await.unwrap();
    let kernel = Arc::clone(app.kernel());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.serve(listener, async move {
        let _ = stopped.await;
    }));

    let mut body = crate::support::signup_body("planted@example.com");
    body["password"] = serde_json::json!(PASSWORD);
    let res = reqwest::Client::new()
        .post(format!("http://{addr}/v1/auth/signup"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);

    // Sign-in tokens and an API key, created and used.
    let client = reqwest::Client::new();
    let login: serde_json::Value = client
        .post(format!("http://{addr}/v1/auth/login"))
        .json(&serde_json::json!({"email": "planted@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let org = gatehouse_core::OrgId::parse(login["organization_id"].as_str().unwrap()).unwrap();
    let access = login["access_token"].as_str().unwrap().to_owned();
    let refresh = login["refresh_token"].as_str().unwrap().to_owned();
    let created: serde_json::Value = client
        .post(format!("http://{addr}/v1/api-keys"))
        .bearer_auth(&access)
        .header("x-organization-id", org.to_string())
        .json(&serde_json::json!({"name": "planted", "permissions": ["audit.read"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let api_key = created["key"].as_str().unwrap().to_owned();
    let used = client
        .get(format!("http://{addr}/v1/auth/verify"))
        .bearer_auth(&api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(used.status(), 200);

    let keyring = kernel.keyring();
    let field = FieldRef {
        kind: SealedKind::ConnectorToken,
        record_id: "c1",
        field: "access_token",
    };
    let mut tx = kernel
        .store()
        .begin_scoped(&TenantScope::for_tests(org))
        .await
        .unwrap();
    keyring
        .seal(tx.as_mut(), field, TOKEN.as_bytes())
        .await
        .unwrap();
    tx.commit(Audited::for_tests()).await.unwrap();
    keyring.rotate_org(org).await.unwrap();
    keyring.reencrypt_org(org, 10, None).await.unwrap();
    let mut tx = kernel
        .store()
        .begin_scoped(&TenantScope::for_tests(org))
        .await
        .unwrap();
    let opened = keyring.open(tx.as_mut(), field).await.unwrap().unwrap();
    tracing::debug!(?opened, "opened a sealed value");
    assert_eq!(opened.expose(), TOKEN.as_bytes());
    drop(tx);
    keyring
        .rotate_master(&Key32::from_bytes(new_master))
        .await
        .unwrap();

    let vault_path = dir.join("planted.vault");
    let pw = SecretString::new(VAULT_PASSWORD.into());
    let mut vault =
        gatehouse_vault::Vault::create(&vault_path, &pw, gatehouse_vault::KdfParams::default())
            .unwrap();
    vault.insert("x", SecretString::new(VAULT_VALUE.into()));
    vault.save().unwrap();
    let vault = gatehouse_vault::Vault::open(&vault_path, &pw).unwrap();
    tracing::debug!(?vault, value = ?vault.get("x"), "vault opened");

    let _ = stop.send(());
    server.await.unwrap().unwrap();

    let logs = capture.text();
    // The capture really saw this run: a request line, the keyring's own lines, the debug lines.
    assert!(logs.contains("request completed"), "{logs}");
    assert!(logs.contains("added a data-key version"));
    assert!(logs.contains("opened a sealed value") && logs.contains("vault opened"));
    assert!(logs.lines().count() > 20, "{}", logs.lines().count());
    for planted in [
        PASSWORD,
        TOKEN,
        VAULT_PASSWORD,
        VAULT_VALUE,
        &master_b64,
        &new_master_b64,
        &hex(&master),
        &hex(&new_master),
        "90, 90, 90, 90",
        "107, 107, 107, 107",
        &access,
        &refresh,
        &api_key,
        // The random parts alone, in case something logged a fragment.
        &api_key[8..40],
        refresh.splitn(3, '_').nth(2).unwrap(),
    ] {
        assert!(!logs.contains(planted), "a log line contains {planted}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

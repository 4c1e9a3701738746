//! E4: liveness and readiness.

use std::sync::Arc;

use gatehouse_core::keyring::{Keyring, KeyringSettings};
use gatehouse_core::password_pool::PasswordPool;
use gatehouse_core::store::{MailBacklog, MailQueue, MailRecord, PlatformTx, Store, TenantTx};
use gatehouse_core::{Kernel, KeySource, StoreError, SystemClock, TenantScope};
use gatehouse_crypto::{Argon2Params, Key32};
use gatehouse_http::{AppState, HttpSettings};
use gatehouse_store_sqlite::SqliteStore;

use crate::support::{TestApp, expect_problem};

#[tokio::test]
async fn live_and_ready_report_their_checks() {
    let app = TestApp::spawn().await;
    let live: serde_json::Value = app.get("/health/live").await.json().await.unwrap();
    assert_eq!(live["status"], "ok");

    let res = app.get("/health/ready").await;
    assert_eq!(res.status(), 200);
    let ready: serde_json::Value = res.json().await.unwrap();
    assert_eq!(ready["status"], "ready");
    let names: Vec<&str> = ready["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["store", "keys", "password_hashing"]);
    // Operators see every check, with its detail.
    let (status, details) = app.ready_details().await;
    assert_eq!(status, 200);
    let names: Vec<&str> = details["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["store", "keys", "password_hashing", "mail"]);
    assert!(details["checks"][3]["detail"].is_string(), "{details}");
    assert!(
        ready["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["ok"] == true)
    );
    // Alone, the instance holds the leased jobs and has run those whose first tick is at once;
    // checkpoints tick first one interval after start (five minutes by default): listed, not run.
    let ran_at_once = |j: &serde_json::Value| {
        j["name"] == "checkpoints" || (j["held"] == true && j["last_outcome"] == "ok")
    };
    let mut jobs = serde_json::Value::Null;
    for _ in 0..100 {
        let r: serde_json::Value = app.get("/health/ready").await.json().await.unwrap();
        jobs = r["jobs"].clone();
        if jobs
            .as_array()
            .is_some_and(|j| j.len() == 4 && j.iter().all(ran_at_once))
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let mut names: Vec<&str> = jobs
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "checkpoints",
            "connectors",
            "lifecycle",
            "reencryption",
            "sso_domains"
        ],
        "{jobs}"
    );
    for j in jobs.as_array().unwrap() {
        if j["name"] == "checkpoints" {
            assert_eq!(j["last_run"], serde_json::Value::Null, "{jobs}");
            continue;
        }
        assert_eq!(j["held"], true, "{jobs}");
        assert_eq!(j["last_outcome"], "ok", "{jobs}");
        assert!(
            j["holder"].as_str().unwrap().starts_with("gatehouse-"),
            "{jobs}"
        );
        assert!(j["last_run"].is_string(), "{jobs}");
    }
    // Operators see the same jobs.
    let (_, details) = app.ready_details().await;
    assert_eq!(details["jobs"].as_array().unwrap().len(), 5, "{details}");
    app.stop().await;
}

/// A store that cannot be reached: every call fails as a lost connection would.
#[derive(Debug)]
struct UnreachableStore;

#[async_trait::async_trait]
impl Store for UnreachableStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }
    async fn ping(&self) -> Result<(), StoreError> {
        Err(StoreError::Unavailable("connection refused".into()))
    }
    async fn begin(&self) -> Result<Box<dyn PlatformTx>, StoreError> {
        Err(StoreError::Unavailable("connection refused".into()))
    }
    async fn begin_read(&self) -> Result<Box<dyn PlatformTx>, StoreError> {
        Err(StoreError::Unavailable("connection refused".into()))
    }
    async fn begin_scoped(&self, _: &TenantScope) -> Result<Box<dyn TenantTx>, StoreError> {
        Err(StoreError::Unavailable("connection refused".into()))
    }
    async fn begin_read_scoped(&self, _: &TenantScope) -> Result<Box<dyn TenantTx>, StoreError> {
        Err(StoreError::Unavailable("connection refused".into()))
    }
    async fn touch_sessions(
        &self,
        _: &[(uuid::Uuid, time::OffsetDateTime)],
    ) -> Result<(), StoreError> {
        Err(StoreError::Unavailable("connection refused".into()))
    }
    async fn touch_api_keys(
        &self,
        _: &[(gatehouse_core::OrgId, uuid::Uuid, time::OffsetDateTime)],
    ) -> Result<(), StoreError> {
        Err(StoreError::Unavailable("connection refused".into()))
    }
}

#[async_trait::async_trait]
impl MailQueue for UnreachableStore {
    async fn claim_due_mail(
        &self,
        _: time::OffsetDateTime,
        _: time::OffsetDateTime,
        _: u32,
    ) -> Result<Vec<MailRecord>, StoreError> {
        Err(StoreError::Unavailable("connection refused".into()))
    }
    async fn mail_delivered(
        &self,
        _: uuid::Uuid,
        _: time::OffsetDateTime,
    ) -> Result<(), StoreError> {
        Err(StoreError::Unavailable("connection refused".into()))
    }
    async fn mail_failed(
        &self,
        _: uuid::Uuid,
        _: u32,
        _: time::OffsetDateTime,
        _: &str,
    ) -> Result<(), StoreError> {
        Err(StoreError::Unavailable("connection refused".into()))
    }
    async fn mail_dead(
        &self,
        _: uuid::Uuid,
        _: u32,
        _: time::OffsetDateTime,
        _: &str,
    ) -> Result<(), StoreError> {
        Err(StoreError::Unavailable("connection refused".into()))
    }
    async fn mail_backlog(&self) -> Result<MailBacklog, StoreError> {
        Err(StoreError::Unavailable("connection refused".into()))
    }
    async fn mail_opted_out(
        &self,
        _: gatehouse_core::OrgId,
        _: &[u8],
        _: &str,
    ) -> Result<bool, StoreError> {
        Err(StoreError::Unavailable("connection refused".into()))
    }
}

#[async_trait::async_trait]
impl gatehouse_core::store::WebhookQueue for UnreachableStore {
    async fn claim_due_webhooks(
        &self,
        _: time::OffsetDateTime,
        _: time::OffsetDateTime,
        _: u32,
    ) -> Result<Vec<gatehouse_core::store::DeliveryRow>, StoreError> {
        Err(StoreError::Unavailable("connection refused".into()))
    }
    async fn record_webhook_attempts(
        &self,
        _: gatehouse_core::OrgId,
        _: &[gatehouse_core::store::AttemptRow],
        _: &[gatehouse_core::store::DeliveryOutcome],
        _: &[(uuid::Uuid, Option<time::OffsetDateTime>)],
    ) -> Result<(), StoreError> {
        Err(StoreError::Unavailable("connection refused".into()))
    }
}

#[async_trait::async_trait]
impl gatehouse_core::store::ConnectorQueue for UnreachableStore {
    async fn connectors_due(
        &self,
        _: time::OffsetDateTime,
        _: u32,
    ) -> Result<Vec<(gatehouse_core::OrgId, uuid::Uuid)>, StoreError> {
        Err(StoreError::Unavailable("connection refused".into()))
    }
}

#[async_trait::async_trait]
impl gatehouse_core::store::Housekeeping for UnreachableStore {
    async fn acquire_lease(
        &self,
        _: &str,
        _: &str,
        _: time::OffsetDateTime,
        _: time::OffsetDateTime,
    ) -> Result<bool, StoreError> {
        Err(StoreError::Unavailable("connection refused".into()))
    }
    async fn settle_erasure(&self) -> Result<bool, StoreError> {
        Err(StoreError::Unavailable("connection refused".into()))
    }
    async fn lease_holder(
        &self,
        _: &str,
        _: time::OffsetDateTime,
    ) -> Result<Option<String>, StoreError> {
        Err(StoreError::Unavailable("connection refused".into()))
    }
    async fn release_lease(&self, _: &str, _: &str) -> Result<(), StoreError> {
        Err(StoreError::Unavailable("connection refused".into()))
    }
    async fn orgs_with_expired(
        &self,
        _: time::OffsetDateTime,
        _: Option<gatehouse_core::OrgId>,
        _: u32,
    ) -> Result<Vec<gatehouse_core::OrgId>, StoreError> {
        Err(StoreError::Unavailable("connection refused".into()))
    }
}

/// A kernel whose store cannot be reached (its keyring starts over a working store first).
pub async fn kernel_over_unreachable_store() -> Kernel {
    let dir = crate::support::temp_dir();
    let sqlite = SqliteStore::connect(&format!("sqlite://{}/k.db", dir.display()), 1)
        .await
        .unwrap();
    sqlite.migrate().await.unwrap();
    let keyring = Keyring::start(
        Arc::new(sqlite),
        Arc::new(SystemClock),
        &Key32::from_bytes([9; 32]),
        KeyringSettings::default(),
    )
    .await
    .unwrap();
    Kernel::new(
        Arc::new(UnreachableStore),
        Arc::new(SystemClock),
        PasswordPool::start(1, 4, Argon2Params::MINIMUM).unwrap(),
        Arc::new(keyring),
        KeySource::Environment,
    )
}

#[tokio::test]
async fn ready_fails_and_requests_degrade_to_503_when_the_store_is_unreachable() {
    let kernel = kernel_over_unreachable_store().await;
    let router = gatehouse_http::router(AppState::new(Arc::new(kernel)), &HttpSettings::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    let client = reqwest::Client::new();

    let res = client
        .get(format!("{base}/health/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["checks"][0]["name"], "store");
    assert_eq!(body["checks"][0]["ok"], false);
    // Liveness does not depend on the store.
    assert_eq!(
        client
            .get(format!("{base}/health/live"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // A request that needs the store gets a 503 problem, not a 500.
    let res = client
        .post(format!("{base}/v1/auth/signup"))
        .json(&crate::support::signup_body("x@example.com"))
        .send()
        .await
        .unwrap();
    let p = expect_problem(res, 503, "store_unavailable").await;
    assert!(
        !p.to_string().contains("connection refused"),
        "internal detail leaked: {p}"
    );
    server.abort();
}

#[tokio::test]
async fn readiness_with_the_store_down_does_not_also_wait_for_the_outbox() {
    // On PostgreSQL each store call waits out the pool's acquire timeout (5 s) while the
    // database is down: asking the outbox after a failed ping doubled the probe's time.
    let kernel = kernel_over_unreachable_store().await;
    let r = kernel.readiness().await;
    assert!(!r.ready);
    let mail = r.checks.iter().find(|c| c.name == "mail").unwrap();
    assert!(!mail.ok);
    assert_eq!(
        mail.detail,
        "the outbox cannot be read: the store is unavailable"
    );
}

//! The data lifecycle (G3) over the real server: expired records and secrets invisible at their
//! expiry and physically purged in bounded batches with one audit event each; with two
//! instances over one database, each batch purged once, by the lease holder.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::product::declare_reports;
use crate::support::{Signed, TestApp, expect_problem};

fn rfc3339(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

async fn create(app: &TestApp, who: &Signed, path: &str, body: Value) -> String {
    let res = app.org_call(Method::POST, path, who, Some(body)).await;
    assert_eq!(res.status(), 201, "{:?}", res.text().await);
    res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The record ids still stored for `org`, read past every filter (expired rows included).
async fn stored_records(app: &TestApp, org: &str, ids: &[String]) -> usize {
    let scope = gatehouse_core::TenantScope::for_tests(gatehouse_core::OrgId::parse(org).unwrap());
    let mut tx = app.kernel.store().begin_read_scoped(&scope).await.unwrap();
    let mut n = 0;
    for id in ids {
        if tx.record(id.parse().unwrap()).await.unwrap().is_some() {
            n += 1;
        }
    }
    n
}

/// The digest an event of many ids carries: SHA-256 of the sorted ids joined by newlines.
fn ids_sha256(ids: &[String]) -> String {
    let mut sorted = ids.to_vec();
    sorted.sort();
    gatehouse_crypto::sha256(&[sorted.join("\n").as_bytes()])
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Purge events of `org`: (details, instance) per event, oldest first; their `ids` (listed up to
/// 50) checked against `count`.
async fn purge_details(app: &TestApp, org: &str, action: &str) -> Vec<(Value, String)> {
    let mut events: Vec<_> = app
        .audit_events(org)
        .await
        .into_iter()
        .filter(|e| e.action == action)
        .collect();
    events.sort_by_key(|e| e.seq);
    events
        .into_iter()
        .map(|e| {
            assert_eq!(
                (e.actor_kind.as_str(), e.actor_id.as_str()),
                ("system", "lifecycle")
            );
            let d: Value = serde_json::from_str(&e.details).unwrap();
            assert!(e.details.len() <= 4096);
            if let Some(ids) = d["ids"].as_array() {
                assert_eq!(d["count"], ids.len());
            }
            let instance = d["instance"].as_str().unwrap().to_owned();
            (d, instance)
        })
        .collect()
}

/// `record.purged` events of `org`: (ids, instance) per event, oldest first.
async fn purge_events(app: &TestApp, org: &str, action: &str) -> Vec<(Vec<String>, String)> {
    let mut events: Vec<_> = app
        .audit_events(org)
        .await
        .into_iter()
        .filter(|e| e.action == action)
        .collect();
    events.sort_by_key(|e| e.seq);
    events
        .into_iter()
        .map(|e| {
            assert_eq!(
                (e.actor_kind.as_str(), e.actor_id.as_str()),
                ("system", "lifecycle")
            );
            let d: Value = serde_json::from_str(&e.details).unwrap();
            let ids: Vec<String> = d["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect();
            assert_eq!(d["count"], ids.len());
            (ids, d["instance"].as_str().unwrap().to_owned())
        })
        .collect()
}

async fn listed(app: &TestApp, who: &Signed, path: &str) -> usize {
    let res = app.org_call(Method::GET, path, who, None).await;
    assert_eq!(res.status(), 200);
    res.json::<Value>().await.unwrap()["items"]
        .as_array()
        .unwrap()
        .len()
}

#[tokio::test]
async fn expired_records_and_secrets_are_purged_in_batches_with_one_event_each() {
    // The background job ticks at start and then every 30 s: this test drives the purge itself.
    let app = TestApp::spawn_with(|raw| {
        declare_reports(raw);
        raw.lifecycle.batch = 100;
        raw.lifecycle.purge_interval_secs = 15;
    })
    .await;
    let owner = app.signup_login("owner@example.com", "laptop").await;
    let soon = rfc3339(app.clock_secs() + 60);
    // A millisecond apart, so the purge (oldest expiry first) takes them in this order.
    let base = time::OffsetDateTime::from_unix_timestamp(app.clock_secs() + 60).unwrap();
    let mut expiring = Vec::new();
    for i in 0..250 {
        let at = (base + time::Duration::milliseconds(i))
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        let body = json!({"type": "report", "external_id": format!("r{i}"),
                          "level": "organization", "content": {"i": i}, "expires_at": at});
        expiring.push(create(&app, &owner, "/v1/records", body).await);
    }
    let kept = create(
        &app,
        &owner,
        "/v1/records",
        json!({"type": "report", "external_id": "kept", "level": "organization"}),
    )
    .await;
    let secret = create(
        &app,
        &owner,
        "/v1/secrets",
        json!({"name": "short-lived", "value": "s3cr3t-value", "expires_at": soon}),
    )
    .await;
    assert_eq!(listed(&app, &owner, "/v1/secrets").await, 1);

    // At the last expiry instant: invisible everywhere, still stored.
    app.clock.advance(time::Duration::seconds(61));
    let path = format!("/v1/secrets/{secret}");
    let res = app.org_call(Method::GET, &path, &owner, None).await;
    expect_problem(res, 404, "not_found").await;
    assert_eq!(listed(&app, &owner, "/v1/secrets").await, 0);
    assert_eq!(listed(&app, &owner, "/v1/records").await, 1);
    assert_eq!(stored_records(&app, &owner.org, &expiring).await, 250);

    let report = app.kernel.lifecycle().purge_expired("test").await.unwrap();
    assert_eq!(
        (
            report.records,
            report.secrets,
            report.batches,
            report.failures
        ),
        (250, 1, 4, 0)
    );
    assert_eq!(stored_records(&app, &owner.org, &expiring).await, 0);
    assert_eq!(stored_records(&app, &owner.org, &[kept]).await, 1);
    // One event per batch of at most 100, within the 4 KiB detail bound: a batch of more than
    // 50 is named by its count and digest, a smaller one by its ids too.
    let events = purge_details(&app, &owner.org, "record.purged").await;
    let counts: Vec<u64> = events
        .iter()
        .map(|(d, _)| d["count"].as_u64().unwrap())
        .collect();
    assert_eq!(counts, [100, 100, 50]);
    for ((d, _), slice) in events.iter().zip(expiring.chunks(100)) {
        assert_eq!(d["ids_sha256"], ids_sha256(slice));
        assert_eq!(d["ids"].is_array(), slice.len() <= 50);
    }
    let listed: BTreeSet<String> = events[2].0["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        listed,
        expiring[200..].iter().cloned().collect::<BTreeSet<_>>()
    );
    let secrets = purge_events(&app, &owner.org, "secret.purged").await;
    assert_eq!(secrets, [(vec![secret.clone()], "test".to_owned())]);
    // The value is gone with its row, not only hidden.
    let scope =
        gatehouse_core::TenantScope::for_tests(gatehouse_core::OrgId::parse(&owner.org).unwrap());
    let mut tx = app.kernel.store().begin_read_scoped(&scope).await.unwrap();
    assert_eq!(tx.secret(secret.parse().unwrap()).await.unwrap(), None);
    assert_eq!(
        tx.sealed("shared_secret", &secret, "v1").await.unwrap(),
        None
    );
    drop(tx);
    // A second run finds nothing and writes nothing.
    let again = app.kernel.lifecycle().purge_expired("test").await.unwrap();
    assert_eq!(again.batches, 0);
    app.chain_verifies(&owner.org).await;
    app.stop().await;
}

#[tokio::test]
async fn with_two_instances_the_lease_holder_purges_each_batch_once() {
    let edit = |raw: &mut gatehouse::config::RawConfig| {
        declare_reports(raw);
        raw.lifecycle.batch = 10;
        raw.lifecycle.purge_interval_secs = 1;
    };
    let one = TestApp::spawn_with(edit).await;
    // One clock for both, so neither sees the other's lease run out while it is renewed.
    let two = TestApp::spawn_in_with_clock(one.dir.clone(), one.clock.clone(), edit).await;
    let owner = one.signup_login("owner@example.com", "laptop").await;
    let expiry = rfc3339(one.clock_secs() + 2);
    let mut ids = Vec::new();
    for i in 0..35 {
        let body = json!({"type": "report", "external_id": format!("r{i}"),
                          "level": "organization", "expires_at": expiry});
        ids.push(create(&one, &owner, "/v1/records", body).await);
    }
    // Time moves a second at a time, slower than the holder renews (every second, for three).
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        one.clock.advance(time::Duration::seconds(1));
    }
    let mut waited = 0;
    while stored_records(&one, &owner.org, &ids).await > 0 {
        assert!(waited < 200, "expired records still stored after 20 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }
    let events = purge_events(&one, &owner.org, "record.purged").await;
    let instances: BTreeSet<&str> = events.iter().map(|(_, i)| i.as_str()).collect();
    assert_eq!(instances.len(), 1, "{instances:?}");
    let mut named: Vec<String> = events.iter().flat_map(|(ids, _)| ids.clone()).collect();
    named.sort();
    let mut want = ids.clone();
    want.sort();
    // Every record in exactly one batch: none purged twice, none missed.
    assert_eq!(named, want);
    assert_eq!(events.len(), 4);
    two.chain_verifies(&owner.org).await;
    two.stop().await;
    one.stop().await;
}

#[tokio::test]
async fn spent_sessions_are_pruned_after_their_retention_with_an_operators_event() {
    let app = TestApp::spawn_with(|raw| {
        raw.lifecycle.purge_interval_secs = 15;
        raw.lifecycle.sessions_retention_hours = 24;
    })
    .await;
    let ada = app.signup_login("ada@example.com", "laptop").await;
    let phone = app
        .login("ada@example.com", crate::support::PASSWORD, "phone", "")
        .await;
    let res = app
        .call(
            Method::DELETE,
            &format!("/v1/me/sessions/{}", phone.session),
            &ada.access,
            None,
            None,
        )
        .await;
    assert_eq!(res.status(), 204, "{:?}", res.text().await);
    let session = |id: &str| {
        let id: uuid::Uuid = id.parse().unwrap();
        let kernel = std::sync::Arc::clone(&app.kernel);
        async move {
            let mut tx = kernel.store().begin().await.unwrap();
            tx.session(id).await.unwrap()
        }
    };
    // Within the retention the revoked session stays (the device list may show it).
    app.clock.advance(time::Duration::hours(23));
    let report = app
        .kernel
        .lifecycle()
        .prune("test", &gatehouse_core::store::PruneJob::ALL)
        .await
        .unwrap();
    assert!(report.rows.is_empty(), "{report:?}");
    assert!(session(&phone.session).await.is_some());
    // Past it: the revoked session (with its IP and user agent) goes; the live one stays.
    app.clock.advance(time::Duration::hours(2));
    let report = app
        .kernel
        .lifecycle()
        .prune("test", &gatehouse_core::store::PruneJob::ALL)
        .await
        .unwrap();
    assert_eq!(report.rows.get("sessions"), Some(&1), "{report:?}");
    assert!(session(&phone.session).await.is_none());
    assert!(session(&ada.session).await.is_some());
    let text = app.metrics().await;
    assert!(
        text.contains("gatehouse_lifecycle_removed_total{what=\"sessions\"} 1"),
        "{text}"
    );
    // The operators' trail names the job, the count and the cutoff, and verifies.
    let mut tx = app.kernel.store().begin_read().await.unwrap();
    let head = tx.peek_operator_audit_head().await.unwrap().unwrap();
    let records = tx.operator_audit_events(head.seq - 1, 1).await.unwrap();
    drop(tx);
    let last = records.last().unwrap();
    assert_eq!(last.action, "retention.pruned");
    assert_eq!(last.resource_id, "sessions");
    let details: Value = serde_json::from_str(&last.details).unwrap();
    assert_eq!(details["rows"], 1);
    assert_eq!(details["retention_secs"], 24 * 3600);
    let verified =
        gatehouse_core::audit::verify_operators(app.kernel.store(), app.kernel.keyring())
            .await
            .unwrap();
    assert!(verified.is_ok(), "{verified:?}");
    app.stop().await;
}

#[tokio::test]
async fn by_default_an_expired_or_revoked_session_goes_at_the_next_purge() {
    let app = TestApp::spawn_with(|raw| raw.lifecycle.purge_interval_secs = 15).await;
    let ada = app.signup_login("ada@example.com", "laptop").await;
    let phone = app
        .login("ada@example.com", crate::support::PASSWORD, "phone", "")
        .await;
    let res = app
        .call(
            Method::DELETE,
            &format!("/v1/me/sessions/{}", phone.session),
            &ada.access,
            None,
            None,
        )
        .await;
    assert_eq!(res.status(), 204);
    // What the job runs at every purge tick: the revoked session, with its IP and agent, goes.
    let report = app
        .kernel
        .lifecycle()
        .prune("test", &gatehouse_core::lifecycle::EVERY_PURGE)
        .await
        .unwrap();
    assert_eq!(report.rows.get("sessions"), Some(&1), "{report:?}");
    let mut tx = app.kernel.store().begin().await.unwrap();
    assert!(
        tx.session(phone.session.parse().unwrap())
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        tx.session(ada.session.parse().unwrap())
            .await
            .unwrap()
            .is_some()
    );
    drop(tx);
    // A week later the live one has expired too, and goes the same way.
    app.clock.advance(time::Duration::days(8));
    let report = app
        .kernel
        .lifecycle()
        .prune("test", &gatehouse_core::lifecycle::EVERY_PURGE)
        .await
        .unwrap();
    assert_eq!(report.rows.get("sessions"), Some(&1), "{report:?}");
    app.stop().await;
}

//! The contract of `WebhookStore` and `WebhookQueue` (core's `store/webhooks.rs`): endpoints
//! round-trip and are found by subscribed type only while enabled; queued deliveries are leased
//! by one claim until their lease runs out; attempts and outcomes are recorded in their
//! organisation; a disabled endpoint's pending deliveries die; nothing crosses organisations.

use std::sync::Arc;

use gatehouse_core::audit::Audited;
use gatehouse_core::page::PageRequest;
use gatehouse_core::store::{
    AttemptRow, DeliveryOutcome, DeliveryRow, DeliveryState, EndpointRow, Store, WebhookMessageRow,
};
use gatehouse_core::{Clock, FakeClock, OrgId, TenantScope};
use time::Duration;

use crate::cases::{clock, seed};

fn endpoint(clock: &FakeClock, org: OrgId, types: &[&str]) -> EndpointRow {
    EndpointRow {
        org_id: org,
        id: gatehouse_core::ids::new_uuid(clock),
        url: "https://hooks.example.com/in".into(),
        event_types: types.iter().map(|t| (*t).to_owned()).collect(),
        description: Some("billing".into()),
        disabled: None,
        secret_version: 1,
        previous_until: None,
        failing_since: None,
        created_at: clock.now(),
        updated_at: clock.now(),
    }
}

fn queued(clock: &FakeClock, e: &EndpointRow) -> (WebhookMessageRow, DeliveryRow) {
    let m = WebhookMessageRow {
        org_id: e.org_id,
        id: gatehouse_core::ids::new_uuid(clock),
        event_type: "invoice.paid".into(),
        payload: br#"{"type":"invoice.paid"}"#.to_vec(),
        created_at: clock.now(),
    };
    let d = DeliveryRow {
        org_id: e.org_id,
        id: gatehouse_core::ids::new_uuid(clock),
        endpoint_id: e.id,
        message_id: m.id,
        state: DeliveryState::Pending,
        attempts: 0,
        next_attempt_at: clock.now(),
        created_at: clock.now(),
    };
    (m, d)
}

pub async fn webhooks_lease_deliveries_once_and_stay_in_their_organisation(store: Arc<dyn Store>) {
    let clock = clock();
    let orgs = seed(store.as_ref(), &clock, 2).await;
    let (a, b) = (orgs[0].0, orgs[1].0);
    let ea = endpoint(&clock, a, &["invoice.paid", "member.added"]);
    let eb = endpoint(&clock, b, &["invoice.paid"]);
    let (ma, da) = queued(&clock, &ea);
    let (mb, db) = queued(&clock, &eb);
    for (org, e, m, d) in [(a, &ea, &ma, &da), (b, &eb, &mb, &db)] {
        let mut tx = store
            .begin_scoped(&TenantScope::for_tests(org))
            .await
            .unwrap();
        tx.insert_endpoint(e).await.unwrap();
        tx.enqueue_webhooks(std::slice::from_ref(m), std::slice::from_ref(d))
            .await
            .unwrap();
        tx.commit(Audited::for_tests()).await.unwrap();
    }
    // 100 more at once: multi-row inserts in chunks of 64, 32 and 4, every row stored.
    // Due tomorrow, so the claims below see only the two above.
    let many: Vec<(WebhookMessageRow, DeliveryRow)> = (0..100)
        .map(|_| {
            let (m, mut d) = queued(&clock, &ea);
            d.next_attempt_at += Duration::days(1);
            (m, d)
        })
        .collect();
    let (ms, ds): (Vec<_>, Vec<_>) = many.iter().cloned().unzip();
    let mut tx = store
        .begin_scoped(&TenantScope::for_tests(a))
        .await
        .unwrap();
    tx.enqueue_webhooks(&ms, &ds).await.unwrap();
    for (m, d) in ms
        .iter()
        .zip(&ds)
        .step_by(9)
        .chain(ms.iter().zip(&ds).next_back())
    {
        assert_eq!(tx.webhook_message(m.id).await.unwrap().as_ref(), Some(m));
        assert_eq!(tx.delivery(d.id).await.unwrap().as_ref(), Some(d));
    }
    tx.commit(Audited::for_tests()).await.unwrap();
    let mut tx = store
        .begin_scoped(&TenantScope::for_tests(b))
        .await
        .unwrap();
    // A row of another organisation refuses the whole call.
    assert!(tx.enqueue_webhooks(&ms[..1], &ds[..1]).await.is_err());
    assert_eq!(tx.webhook_message(ms[0].id).await.unwrap(), None);
    drop(tx);
    let mut tx = store
        .begin_scoped(&TenantScope::for_tests(a))
        .await
        .unwrap();
    assert_eq!(tx.endpoint(ea.id).await.unwrap(), Some(ea.clone()));
    assert_eq!(tx.lock_endpoint(ea.id).await.unwrap(), Some(ea.clone()));
    assert_eq!(
        tx.lock_endpoint(eb.id).await.unwrap(),
        None,
        "crossed organisations"
    );
    assert_eq!(
        tx.endpoint(eb.id).await.unwrap(),
        None,
        "crossed organisations"
    );
    assert_eq!(
        tx.webhook_message(mb.id).await.unwrap(),
        None,
        "crossed organisations"
    );
    assert_eq!(
        tx.delivery(db.id).await.unwrap(),
        None,
        "crossed organisations"
    );
    assert_eq!(tx.webhook_message(ma.id).await.unwrap(), Some(ma.clone()));
    let found: Vec<_> = tx
        .endpoints_for("member.added")
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(found, [ea.id]);
    assert!(
        tx.endpoints_for("member").await.unwrap().is_empty(),
        "a prefix is not a type"
    );
    assert!(
        tx.endpoints_for("added").await.unwrap().is_empty(),
        "a suffix is not a type"
    );
    drop(tx);

    // One claim leases both due deliveries; a second finds nothing until the lease runs out.
    let now = clock.now();
    let lease = now + Duration::seconds(30);
    let claimed = store.claim_due_webhooks(now, lease, 10).await.unwrap();
    assert_eq!(claimed.len(), 2);
    assert!(
        store
            .claim_due_webhooks(now, lease, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // The lease runs out: another claim takes both again, under a later lease.
    let lease2 = lease + Duration::seconds(30);
    assert_eq!(
        store
            .claim_due_webhooks(lease, lease2, 10)
            .await
            .unwrap()
            .len(),
        2
    );

    // Attempts and outcomes land in their organisation only.
    let attempt = AttemptRow {
        org_id: a,
        id: gatehouse_core::ids::new_uuid(&clock),
        delivery_id: da.id,
        endpoint_id: ea.id,
        message_id: ma.id,
        attempt: 1,
        at: now,
        status: Some(500),
        latency_ms: 12,
        error: None,
        response: "oops".into(),
    };
    let outcome = DeliveryOutcome {
        id: da.id,
        state: DeliveryState::Delivered,
        attempts: 1,
        next_attempt_at: now,
        leased_until: lease,
    };
    // Written under the first lease, which ran out: the outcome is not applied.
    store
        .record_webhook_attempts(a, &[], std::slice::from_ref(&outcome), &[])
        .await
        .unwrap();
    let mut tx = store
        .begin_read_scoped(&TenantScope::for_tests(a))
        .await
        .unwrap();
    let d = tx.delivery(da.id).await.unwrap().unwrap();
    assert_eq!(
        (d.state, d.next_attempt_at),
        (DeliveryState::Pending, lease2),
        "a stale lease wrote its outcome"
    );
    drop(tx);
    let outcome = DeliveryOutcome {
        state: DeliveryState::Pending,
        next_attempt_at: now + Duration::hours(1),
        leased_until: lease2,
        ..outcome
    };
    store
        .record_webhook_attempts(
            a,
            std::slice::from_ref(&attempt),
            &[outcome],
            &[(ea.id, Some(now))],
        )
        .await
        .unwrap();
    // An attempt of another organisation is refused.
    let foreign = AttemptRow {
        org_id: b,
        ..attempt.clone()
    };
    assert!(
        store
            .record_webhook_attempts(a, &[foreign], &[], &[])
            .await
            .is_err()
    );
    let mut tx = store
        .begin_scoped(&TenantScope::for_tests(a))
        .await
        .unwrap();
    let d = tx.delivery(da.id).await.unwrap().unwrap();
    assert_eq!(
        (d.state, d.attempts, d.next_attempt_at),
        (DeliveryState::Pending, 1, now + Duration::hours(1))
    );
    assert_eq!(
        tx.endpoint(ea.id).await.unwrap().unwrap().failing_since,
        Some(now)
    );
    let log = tx
        .list_attempts(ea.id, PageRequest::parse(None, Some(10)).unwrap())
        .await
        .unwrap();
    assert_eq!(log.items, vec![attempt.clone()]);
    // Disabled: no longer found, and its pending deliveries die.
    let mut off = tx.endpoint(ea.id).await.unwrap().unwrap();
    off.disabled = Some("failing".into());
    assert!(tx.update_endpoint(&off).await.unwrap());
    // Its one due delivery and the hundred due tomorrow.
    assert_eq!(tx.kill_deliveries(ea.id).await.unwrap(), 101);
    assert_eq!(
        tx.delivery(da.id).await.unwrap().unwrap().state,
        DeliveryState::Dead
    );
    assert!(tx.endpoints_for("invoice.paid").await.unwrap().is_empty());
    // Deleting the endpoint takes its deliveries and log.
    assert!(tx.delete_endpoint(ea.id).await.unwrap());
    assert_eq!(tx.delivery(da.id).await.unwrap(), None);
    assert!(
        tx.list_attempts(ea.id, PageRequest::parse(None, Some(10)).unwrap())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    tx.commit(Audited::for_tests()).await.unwrap();
    let mut tx = store
        .begin_read_scoped(&TenantScope::for_tests(b))
        .await
        .unwrap();
    assert!(
        tx.endpoint(eb.id).await.unwrap().is_some(),
        "another organisation's endpoint went"
    );
}

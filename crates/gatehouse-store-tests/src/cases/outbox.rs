//! The contract of `OutboxStore` and `MailQueue` (core's `store/outbox.rs`): mail commits with its
//! transaction, is leased, retried and delivered (its sealed body erased), and concurrent claims
//! never share a message.

use std::collections::BTreeSet;

use gatehouse_core::audit::Audited;
use gatehouse_core::store::{MailBacklog, MailRecord};
use gatehouse_core::{Clock, FakeClock};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::Fixture;
use crate::cases::clock;

fn message(clock: &FakeClock, next_attempt_at: OffsetDateTime) -> MailRecord {
    MailRecord {
        id: gatehouse_core::ids::new_uuid(clock),
        envelope: vec![0x5e; 48],
        created_at: clock.now(),
        attempts: 0,
        next_attempt_at,
        sent_at: None,
        last_error: None,
        recipient: Vec::new(),
        kind: String::new(),
        org_id: None,
        list: None,
    }
}

pub async fn second_factor_mail_commits_with_its_transaction(f: &dyn Fixture) {
    let store = f.store();
    let clock = clock();
    let now = clock.now();
    let dropped = message(&clock, now);
    clock.advance(Duration::milliseconds(1));
    let kept = message(&clock, now);

    let mut tx = store.begin().await.unwrap();
    tx.enqueue_mail(&dropped).await.unwrap();
    drop(tx);
    assert_eq!(store.mail_backlog().await.unwrap(), MailBacklog::default());
    assert!(
        store
            .claim_due_mail(now, now + Duration::minutes(5), 10)
            .await
            .unwrap()
            .is_empty()
    );

    let mut tx = store.begin().await.unwrap();
    tx.enqueue_mail(&kept).await.unwrap();
    tx.commit(Audited::for_tests()).await.unwrap();
    assert_eq!(
        store.mail_backlog().await.unwrap(),
        MailBacklog {
            pending: 1,
            failing: 0,
            oldest: Some(kept.created_at),
            last_error: None,
        }
    );
    let lease = now + Duration::minutes(5);
    assert_eq!(
        store.claim_due_mail(now, lease, 10).await.unwrap(),
        vec![MailRecord {
            next_attempt_at: lease,
            ..kept
        }]
    );
}

pub async fn second_factor_mail_is_leased_retried_and_delivered(f: &dyn Fixture) {
    let store = f.store();
    let clock = clock();
    let t0 = clock.now();
    let first = message(&clock, t0);
    clock.advance(Duration::milliseconds(1));
    let later = message(&clock, t0 + Duration::minutes(10));
    clock.advance(Duration::milliseconds(1));
    let second = message(&clock, t0);
    let mut tx = store.begin().await.unwrap();
    // Queued in another order than created: claims still come oldest first.
    for m in [&second, &later, &first] {
        tx.enqueue_mail(m).await.unwrap();
    }
    tx.commit(Audited::for_tests()).await.unwrap();

    // Only what is due, oldest first, leased until lease_until.
    let now = t0 + Duration::seconds(1);
    let lease = now + Duration::minutes(5);
    let claimed = store.claim_due_mail(now, lease, 10).await.unwrap();
    assert_eq!(
        claimed.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![first.id, second.id]
    );
    assert!(claimed.iter().all(|m| m.next_attempt_at == lease));
    assert_eq!(claimed[0].envelope, first.envelope);
    // Leased: no other worker takes them before the lease ends.
    assert!(
        store
            .claim_due_mail(now, lease, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let before_lease_ends = lease - Duration::microseconds(1);
    assert!(
        store
            .claim_due_mail(before_lease_ends, before_lease_ends, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // After the lease the unfinished messages come back, at most `limit` at a time.
    let relet = lease + Duration::minutes(1);
    let again = store.claim_due_mail(lease, relet, 1).await.unwrap();
    assert_eq!(
        again.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![first.id]
    );
    let again = store.claim_due_mail(lease, relet, 1).await.unwrap();
    assert_eq!(
        again.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![second.id]
    );
    assert!(
        store
            .claim_due_mail(lease, relet, 0)
            .await
            .unwrap()
            .is_empty()
    );

    // A failure is recorded, with a bounded error, and shows in the backlog.
    let error = "é".repeat(600);
    let retry_at = relet + Duration::minutes(30);
    store
        .mail_failed(first.id, 1, retry_at, &error)
        .await
        .unwrap();
    let backlog = store.mail_backlog().await.unwrap();
    assert_eq!((backlog.pending, backlog.failing), (3, 1));
    assert_eq!(backlog.oldest, Some(first.created_at));
    assert_eq!(backlog.last_error, Some("é".repeat(500)));
    store
        .mail_failed(second.id, 2, retry_at, "connection refused")
        .await
        .unwrap();
    let backlog = store.mail_backlog().await.unwrap();
    assert_eq!((backlog.pending, backlog.failing), (3, 2));
    assert_eq!(backlog.last_error.as_deref(), Some("connection refused"));
    // Not due before the retry time (only the message queued for later is, by now); then they
    // come back with their attempts.
    let early = store
        .claim_due_mail(
            retry_at - Duration::seconds(1),
            retry_at + Duration::hours(1),
            10,
        )
        .await
        .unwrap();
    assert_eq!(
        early.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![later.id]
    );
    let retried = store
        .claim_due_mail(retry_at, retry_at + Duration::minutes(5), 10)
        .await
        .unwrap();
    assert_eq!(
        retried.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![first.id, second.id]
    );
    assert_eq!(retried[0].attempts, 1);
    assert_eq!(retried[0].last_error, Some("é".repeat(500)));
    assert_eq!(retried[1].attempts, 2);

    // Delivered: out of the backlog, its error cleared, its sealed body erased.
    let lit = f.uuid_literal(&first.id.simple().to_string());
    // (The outbox refuses a negative attempt count, so this fails exactly when a row matches.)
    let body_kept =
        format!("UPDATE mail_outbox SET attempts = -1 WHERE id = {lit} AND length(envelope) > 0");
    let delivered_row =
        format!("UPDATE mail_outbox SET attempts = -1 WHERE id = {lit} AND sent_at IS NOT NULL");
    assert!(f.probe(&body_kept).await.is_err());
    store
        .mail_delivered(first.id, retry_at + Duration::seconds(2))
        .await
        .unwrap();
    assert!(f.probe(&body_kept).await.is_ok(), "envelope kept");
    assert!(f.probe(&delivered_row).await.is_err(), "row lost");
    let backlog = store.mail_backlog().await.unwrap();
    assert_eq!(
        backlog,
        MailBacklog {
            pending: 2,
            failing: 1,
            oldest: Some(later.created_at),
            last_error: Some("connection refused".into()),
        }
    );
    store
        .mail_delivered(second.id, retry_at + Duration::seconds(3))
        .await
        .unwrap();
    let backlog = store.mail_backlog().await.unwrap();
    assert_eq!(
        backlog,
        MailBacklog {
            pending: 1,
            failing: 0,
            oldest: Some(later.created_at),
            last_error: None,
        }
    );
    // Delivered messages never come back, whenever the worker looks.
    let far = retry_at + Duration::days(30);
    let rest = store.claim_due_mail(far, far, 10).await.unwrap();
    assert_eq!(
        rest.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![later.id]
    );
    store.mail_delivered(later.id, far).await.unwrap();
    assert_eq!(store.mail_backlog().await.unwrap(), MailBacklog::default());
    assert!(store.claim_due_mail(far, far, 10).await.unwrap().is_empty());
}

pub async fn second_factor_concurrent_claims_never_share_a_message(f: &dyn Fixture) {
    let store = f.store();
    let clock = clock();
    let now = clock.now();
    let mut tx = store.begin().await.unwrap();
    let mut queued = BTreeSet::new();
    for _ in 0..24 {
        let m = message(&clock, now);
        tx.enqueue_mail(&m).await.unwrap();
        queued.insert(m.id);
        clock.advance(Duration::milliseconds(1));
    }
    tx.commit(Audited::for_tests()).await.unwrap();

    let worker = || {
        let store = store.clone();
        async move {
            let mut mine = Vec::new();
            for _ in 0..8 {
                let got = store
                    .claim_due_mail(now, now + Duration::minutes(5), 5)
                    .await
                    .unwrap();
                mine.extend(got.into_iter().map(|m| m.id));
            }
            mine
        }
    };
    let (a, b) = tokio::join!(tokio::spawn(worker()), tokio::spawn(worker()));
    let (a, b) = (a.unwrap(), b.unwrap());
    let all: Vec<Uuid> = a.iter().chain(&b).copied().collect();
    let distinct: BTreeSet<Uuid> = all.iter().copied().collect();
    assert_eq!(all.len(), distinct.len(), "a message was claimed twice");
    assert_eq!(distinct, queued, "every due message is claimed");
}

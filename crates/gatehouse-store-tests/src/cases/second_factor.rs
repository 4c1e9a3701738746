//! The contract of `SecondFactorStore` (core's `store/second_factor.rs`): a pending TOTP factor is
//! replaced until confirmed, a step is never replayed, deleting the factor removes the recovery
//! codes, and recovery codes are single-use and personal. Every single-use promise holds on the
//! store itself, not only in the domain code that reads before it writes.

use gatehouse_core::audit::Audited;
use gatehouse_core::store::{Store, TotpFactorRecord, UserRecord};
use gatehouse_core::{Clock, FakeClock, StoreError, UserId};
use time::{Duration, OffsetDateTime};

use crate::Fixture;
use crate::cases::{clock, new_user};
use crate::data::user;

fn pending(user: UserId, envelope: &[u8], at: OffsetDateTime) -> TotpFactorRecord {
    TotpFactorRecord {
        user_id: user,
        envelope: envelope.to_vec(),
        created_at: at,
        confirmed_at: None,
        last_step: 0,
    }
}

/// A user with a confirmed factor whose first code was for `step`.
async fn confirmed_user(
    store: &dyn Store,
    clock: &FakeClock,
    email: &str,
    step: u64,
) -> UserRecord {
    let u = new_user(store, clock, email).await;
    let mut tx = store.begin().await.unwrap();
    tx.put_pending_totp(&pending(u.id, b"seed", clock.now()))
        .await
        .unwrap();
    assert!(
        tx.confirm_totp(u.id, b"seed", step, clock.now())
            .await
            .unwrap()
    );
    tx.commit(Audited::for_tests()).await.unwrap();
    u
}

pub async fn second_factor_pending_totp_is_replaced_until_confirmed(f: &dyn Fixture) {
    let store = f.store();
    let clock = clock();
    let u = new_user(store.as_ref(), &clock, "ada@example.com").await;
    let first = pending(u.id, b"first seed", clock.now());
    clock.advance(Duration::seconds(30));
    let second = pending(u.id, b"second seed", clock.now());

    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.totp_factor(u.id).await.unwrap(), None);
    tx.put_pending_totp(&first).await.unwrap();
    assert_eq!(tx.totp_factor(u.id).await.unwrap(), Some(first.clone()));
    // Enrolment started again before it was confirmed: the new seed replaces the old.
    tx.put_pending_totp(&second).await.unwrap();
    assert_eq!(tx.totp_factor(u.id).await.unwrap(), Some(second.clone()));
    // An unconfirmed factor accepts no code.
    assert!(!tx.use_totp_step(u.id, 5).await.unwrap());
    tx.commit(Audited::for_tests()).await.unwrap();

    let confirmed_at = clock.now();
    let mut tx = store.begin().await.unwrap();
    // A code checked against the replaced seed confirms nothing.
    assert!(
        !tx.confirm_totp(u.id, b"first seed", 1_000, confirmed_at)
            .await
            .unwrap()
    );
    assert!(
        tx.confirm_totp(u.id, b"second seed", 1_000, confirmed_at)
            .await
            .unwrap()
    );
    // Only once: a second confirmation changes nothing.
    assert!(
        !tx.confirm_totp(
            u.id,
            b"second seed",
            2_000,
            confirmed_at + Duration::minutes(1)
        )
        .await
        .unwrap()
    );
    let stored = tx.totp_factor(u.id).await.unwrap().unwrap();
    assert_eq!(
        stored,
        TotpFactorRecord {
            confirmed_at: Some(confirmed_at),
            last_step: 1_000,
            ..second.clone()
        }
    );
    // A confirmed factor is never replaced by a new enrolment.
    let third = pending(u.id, b"third seed", clock.now());
    assert!(matches!(
        tx.put_pending_totp(&third).await,
        Err(StoreError::Duplicate)
    ));
    assert_eq!(tx.totp_factor(u.id).await.unwrap(), Some(stored.clone()));
    // A "pending" factor that claims to be confirmed already is refused.
    let other = new_user_in(&mut tx, &clock, "bob@example.com").await;
    let forged = TotpFactorRecord {
        confirmed_at: Some(clock.now()),
        ..pending(other, b"forged", clock.now())
    };
    assert!(tx.put_pending_totp(&forged).await.is_err());
    assert_eq!(tx.totp_factor(other).await.unwrap(), None);
    // Nothing to confirm for a user without a factor.
    assert!(
        !tx.confirm_totp(other, b"forged", 1, clock.now())
            .await
            .unwrap()
    );
    tx.commit(Audited::for_tests()).await.unwrap();

    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.totp_factor(u.id).await.unwrap(), Some(stored));
}

async fn new_user_in(
    tx: &mut Box<dyn gatehouse_core::store::PlatformTx>,
    clock: &FakeClock,
    email: &str,
) -> UserId {
    let u = user(clock, email);
    tx.insert_user(&u).await.unwrap();
    u.id
}

pub async fn second_factor_totp_steps_are_never_replayed(f: &dyn Fixture) {
    let store = f.store();
    let clock = clock();
    let u = confirmed_user(store.as_ref(), &clock, "ada@example.com", 100).await;

    let mut tx = store.begin().await.unwrap();
    // The confirming code's step, and any earlier one, are spent.
    assert!(!tx.use_totp_step(u.id, 100).await.unwrap());
    assert!(!tx.use_totp_step(u.id, 99).await.unwrap());
    assert!(tx.use_totp_step(u.id, 101).await.unwrap());
    assert!(!tx.use_totp_step(u.id, 101).await.unwrap());
    assert!(!tx.use_totp_step(u.id, 100).await.unwrap());
    assert!(tx.use_totp_step(u.id, 105).await.unwrap());
    assert!(!tx.use_totp_step(u.id, 103).await.unwrap());
    assert_eq!(tx.totp_factor(u.id).await.unwrap().unwrap().last_step, 105);
    // A step the backend cannot store is refused, never wrapped into an early one.
    assert!(matches!(
        tx.use_totp_step(u.id, u64::MAX).await,
        Err(StoreError::Backend(_))
    ));
    // Another user's factor is not theirs to use.
    assert!(!tx.use_totp_step(UserId::new(&clock), 200).await.unwrap());
    tx.commit(Audited::for_tests()).await.unwrap();

    // The same code presented twice at once: exactly one use succeeds.
    let attempt = || {
        let store = store.clone();
        let id = u.id;
        async move {
            let mut tx = store.begin().await.unwrap();
            let used = tx.use_totp_step(id, 106).await.unwrap();
            tx.commit(Audited::for_tests()).await.unwrap();
            used
        }
    };
    let (a, b) = tokio::join!(tokio::spawn(attempt()), tokio::spawn(attempt()));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(
        a ^ b,
        "exactly one concurrent use of a step succeeds ({a}, {b})"
    );

    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.totp_factor(u.id).await.unwrap().unwrap().last_step, 106);
}

pub async fn second_factor_delete_removes_factor_and_recovery_codes(f: &dyn Fixture) {
    let store = f.store();
    let clock = clock();
    let a = confirmed_user(store.as_ref(), &clock, "ada@example.com", 7).await;
    let b = confirmed_user(store.as_ref(), &clock, "bob@example.com", 7).await;
    let mut tx = store.begin().await.unwrap();
    tx.replace_recovery_codes(a.id, &[vec![1; 32], vec![2; 32]], clock.now())
        .await
        .unwrap();
    tx.replace_recovery_codes(b.id, &[vec![3; 32]], clock.now())
        .await
        .unwrap();
    tx.commit(Audited::for_tests()).await.unwrap();

    let mut tx = store.begin().await.unwrap();
    assert!(tx.delete_totp(a.id).await.unwrap());
    assert_eq!(tx.totp_factor(a.id).await.unwrap(), None);
    assert_eq!(tx.recovery_codes_left(a.id).await.unwrap(), 0);
    assert!(
        !tx.use_recovery_code(a.id, &[1; 32], clock.now())
            .await
            .unwrap()
    );
    assert!(!tx.delete_totp(a.id).await.unwrap());
    tx.commit(Audited::for_tests()).await.unwrap();

    // The other user keeps theirs; a fresh enrolment for the first starts unconfirmed.
    let mut tx = store.begin().await.unwrap();
    assert!(tx.totp_factor(b.id).await.unwrap().is_some());
    assert_eq!(tx.recovery_codes_left(b.id).await.unwrap(), 1);
    tx.put_pending_totp(&pending(a.id, b"new seed", clock.now()))
        .await
        .unwrap();
    assert!(
        tx.confirm_totp(a.id, b"new seed", 3, clock.now())
            .await
            .unwrap()
    );
}

pub async fn second_factor_recovery_codes_are_single_use_and_personal(f: &dyn Fixture) {
    let store = f.store();
    let clock = clock();
    let a = new_user(store.as_ref(), &clock, "ada@example.com").await;
    let b = new_user(store.as_ref(), &clock, "bob@example.com").await;
    let codes: Vec<Vec<u8>> = (1..=3u8).map(|i| vec![i; 32]).collect();

    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.recovery_codes_left(a.id).await.unwrap(), 0);
    tx.replace_recovery_codes(a.id, &codes, clock.now())
        .await
        .unwrap();
    tx.commit(Audited::for_tests()).await.unwrap();

    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.recovery_codes_left(a.id).await.unwrap(), 3);
    // Another user cannot spend them.
    assert!(
        !tx.use_recovery_code(b.id, &codes[0], clock.now())
            .await
            .unwrap()
    );
    assert_eq!(tx.recovery_codes_left(a.id).await.unwrap(), 3);
    assert!(
        tx.use_recovery_code(a.id, &codes[0], clock.now())
            .await
            .unwrap()
    );
    assert!(
        !tx.use_recovery_code(a.id, &codes[0], clock.now())
            .await
            .unwrap()
    );
    assert_eq!(tx.recovery_codes_left(a.id).await.unwrap(), 2);
    assert!(
        tx.use_recovery_code(a.id, &codes[1], clock.now())
            .await
            .unwrap()
    );
    assert_eq!(tx.recovery_codes_left(a.id).await.unwrap(), 1);
    assert!(
        !tx.use_recovery_code(a.id, &[9; 32], clock.now())
            .await
            .unwrap()
    );
    assert_eq!(tx.recovery_codes_left(b.id).await.unwrap(), 0);
    tx.commit(Audited::for_tests()).await.unwrap();

    // A new set replaces the old one, used and unused alike.
    let fresh: Vec<Vec<u8>> = (4..=5u8).map(|i| vec![i; 32]).collect();
    let mut tx = store.begin().await.unwrap();
    tx.replace_recovery_codes(a.id, &fresh, clock.now())
        .await
        .unwrap();
    assert_eq!(tx.recovery_codes_left(a.id).await.unwrap(), 2);
    assert!(
        !tx.use_recovery_code(a.id, &codes[2], clock.now())
            .await
            .unwrap()
    );
    assert!(
        tx.use_recovery_code(a.id, &fresh[0], clock.now())
            .await
            .unwrap()
    );
    assert_eq!(tx.recovery_codes_left(a.id).await.unwrap(), 1);
    tx.commit(Audited::for_tests()).await.unwrap();

    // An empty set leaves none.
    let mut tx = store.begin().await.unwrap();
    tx.replace_recovery_codes(a.id, &[], clock.now())
        .await
        .unwrap();
    assert_eq!(tx.recovery_codes_left(a.id).await.unwrap(), 0);
}

pub async fn second_factor_unused_recovery_codes_are_listed_per_user(f: &dyn Fixture) {
    let store = f.store();
    let clock = clock();
    let a = new_user(store.as_ref(), &clock, "ada@example.com").await;
    let b = new_user(store.as_ref(), &clock, "bob@example.com").await;
    // Stored values of both lengths: salted (48 bytes) and from before salting (32).
    let codes: Vec<Vec<u8>> = vec![vec![1; 48], vec![2; 48], vec![3; 32]];
    let mut tx = store.begin().await.unwrap();
    assert!(tx.unused_recovery_codes(a.id).await.unwrap().is_empty());
    tx.replace_recovery_codes(a.id, &codes, clock.now())
        .await
        .unwrap();
    tx.replace_recovery_codes(b.id, &[vec![4; 48]], clock.now())
        .await
        .unwrap();
    assert!(
        tx.use_recovery_code(a.id, &codes[1], clock.now())
            .await
            .unwrap()
    );
    tx.commit(Audited::for_tests()).await.unwrap();

    let mut tx = store.begin_read().await.unwrap();
    let mut left = tx.unused_recovery_codes(a.id).await.unwrap();
    left.sort();
    assert_eq!(left, vec![codes[0].clone(), codes[2].clone()]);
    assert_eq!(
        tx.unused_recovery_codes(b.id).await.unwrap(),
        vec![vec![4; 48]]
    );
}

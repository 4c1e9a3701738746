//! The contract of `UserStore` (core's `store/users.rs`): a user round-trips exactly, an email is
//! taken once and verified once, and a user's memberships span their organisations and only
//! theirs.

use std::sync::Arc;

use gatehouse_core::audit::Audited;
use gatehouse_core::store::{Role, Store, UserRecord};
use gatehouse_core::{Clock, StoreError, TenantScope, UserId};
use time::Duration;

use crate::Fixture;
use crate::cases::{clock, new_user, seed};
use crate::data::{member, user};

pub async fn user_round_trips_exactly(store: Arc<dyn Store>) {
    let clock = clock();
    let u = user(&clock, "ada@example.com");
    let mut tx = store.begin().await.unwrap();
    tx.insert_user(&u).await.unwrap();
    tx.commit(Audited::for_tests()).await.unwrap();

    let mut tx = store.begin().await.unwrap();
    assert_eq!(
        tx.user_by_email("ada@example.com").await.unwrap(),
        Some(u.clone())
    );
    assert_eq!(tx.user_by_id(u.id).await.unwrap(), Some(u.clone()));
    assert_eq!(tx.user_by_email("nobody@example.com").await.unwrap(), None);
    assert_eq!(tx.user_by_id(UserId::new(&clock)).await.unwrap(), None);
}

pub async fn email_is_unique(store: Arc<dyn Store>) {
    let clock = clock();
    let mut tx = store.begin().await.unwrap();
    tx.insert_user(&user(&clock, "dup@example.com"))
        .await
        .unwrap();
    tx.commit(Audited::for_tests()).await.unwrap();

    let mut tx = store.begin().await.unwrap();
    let second = tx.insert_user(&user(&clock, "dup@example.com")).await;
    assert!(matches!(second, Err(StoreError::EmailTaken)), "{second:?}");
}

pub async fn identity_memberships_of_a_user_span_organisations_and_only_theirs(
    store: Arc<dyn Store>,
) {
    let clock = clock();
    let seeded = seed(store.as_ref(), &clock, 3).await;
    let ((a, owner_a), (b, owner_b), (c, _)) = (seeded[0], seeded[1], seeded[2]);
    // owner_a also joins b as a viewer.
    let mut tx = store
        .begin_scoped(&TenantScope::for_tests(b))
        .await
        .unwrap();
    tx.insert_membership(&member(b, owner_a, Role::Viewer, clock.now()))
        .await
        .unwrap();
    tx.commit(Audited::for_tests()).await.unwrap();

    let mut tx = store.begin().await.unwrap();
    let mine = tx.memberships_of_user(owner_a).await.unwrap();
    let orgs: Vec<_> = mine.iter().map(|m| (m.org_id, m.role.clone())).collect();
    assert_eq!(orgs, vec![(a, Role::Owner), (b, Role::Viewer)]);
    assert!(mine.iter().all(|m| m.user_id == owner_a));
    assert!(
        !mine.iter().any(|m| m.org_id == c),
        "another organisation's row leaked"
    );
    let theirs = tx.memberships_of_user(owner_b).await.unwrap();
    assert_eq!(theirs.len(), 1);
    // Entering a scope after the lookup still confines tenant reads to that scope.
    let mut tx = tx.enter(&TenantScope::for_tests(a)).await.unwrap();
    assert!(tx.membership(owner_b).await.unwrap().is_none());
}

pub async fn second_factor_email_is_verified_once(f: &dyn Fixture) {
    let store = f.store();
    let clock = clock();
    let u = new_user(store.as_ref(), &clock, "ada@example.com").await;
    let pre = UserRecord {
        email_verified_at: Some(clock.now()),
        ..user(&clock, "verified@example.com")
    };

    let at = clock.now() + Duration::minutes(3);
    let mut tx = store.begin().await.unwrap();
    tx.insert_user(&pre).await.unwrap();
    assert_eq!(tx.user_by_id(pre.id).await.unwrap(), Some(pre.clone()));
    assert_eq!(
        tx.user_by_id(u.id)
            .await
            .unwrap()
            .unwrap()
            .email_verified_at,
        None
    );
    assert!(tx.set_email_verified(u.id, at).await.unwrap());
    assert!(
        !tx.set_email_verified(u.id, at + Duration::minutes(1))
            .await
            .unwrap()
    );
    assert!(!tx.set_email_verified(pre.id, at).await.unwrap());
    assert!(
        !tx.set_email_verified(UserId::new(&clock), at)
            .await
            .unwrap()
    );
    tx.commit(Audited::for_tests()).await.unwrap();

    let mut tx = store.begin().await.unwrap();
    assert_eq!(
        tx.user_by_email("ada@example.com").await.unwrap(),
        Some(UserRecord {
            email_verified_at: Some(at),
            ..u
        })
    );
    assert_eq!(tx.user_by_id(pre.id).await.unwrap(), Some(pre));
}

//! The contract of `UserStore` (core's `store/users.rs`): a user round-trips exactly, an email is
//! taken once and verified once, a user's memberships span their organisations and only theirs,
//! and the password census (A1's self-check) counts and lists within its bounds.

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

/// Disabling keeps its first time, re-enabling clears it, and only a change counts; the state is
/// read back by id and by address, and touches no other account (ASVS 7.4.5).
pub async fn identity_an_account_is_disabled_and_enabled_once(store: Arc<dyn Store>) {
    let clock = clock();
    let ada = new_user(store.as_ref(), &clock, "ada@example.com").await;
    let bob = new_user(store.as_ref(), &clock, "bob@example.com").await;
    let at = clock.now() + Duration::minutes(1);
    let mut tx = store.begin().await.unwrap();
    assert!(tx.set_user_disabled(ada.id, Some(at)).await.unwrap());
    assert!(
        !tx.set_user_disabled(ada.id, Some(at + Duration::minutes(1)))
            .await
            .unwrap()
    );
    assert!(!tx.set_user_disabled(bob.id, None).await.unwrap());
    assert!(
        !tx.set_user_disabled(UserId::new(&clock), Some(at))
            .await
            .unwrap()
    );
    tx.commit(Audited::for_tests()).await.unwrap();

    let mut tx = store.begin().await.unwrap();
    let disabled = UserRecord {
        disabled_at: Some(at),
        ..ada.clone()
    };
    assert_eq!(tx.user_by_id(ada.id).await.unwrap(), Some(disabled.clone()));
    assert_eq!(
        tx.user_by_email("ada@example.com").await.unwrap(),
        Some(disabled)
    );
    assert_eq!(tx.user_by_id(bob.id).await.unwrap(), Some(bob.clone()));
    // A rolled-back change leaves the account as it was.
    assert!(tx.set_user_disabled(ada.id, None).await.unwrap());
    drop(tx);
    let mut tx = store.begin().await.unwrap();
    assert_eq!(
        tx.user_by_id(ada.id).await.unwrap().unwrap().disabled_at,
        Some(at)
    );
    assert!(tx.set_user_disabled(ada.id, None).await.unwrap());
    assert!(!tx.set_user_disabled(ada.id, None).await.unwrap());
    tx.commit(Audited::for_tests()).await.unwrap();
    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.user_by_id(ada.id).await.unwrap(), Some(ada));
}

/// Stored hashes for the census cases, in the order they are stored (one per account).
fn census_hashes() -> Vec<String> {
    let tail = "$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo";
    vec![
        format!("$argon2id$v=19$m=19456,t=2,p=1{tail}"),
        format!("$argon2id$v=19$m=19456,t=2,p=1,keyid=AAAAAAAAAAA{tail}"),
        // `p=1` must not take in `p=16`: it is listed (and found to be above).
        format!("$argon2id$v=19$m=19456,t=2,p=16{tail}"),
        format!("$2b$12${}", "b".repeat(53)),
        format!("$argon2id$v=19$m=19456,t=1,p=1{tail}"),
        format!("$argon2id$v=19$m=19456,t=2,p=1{tail}"),
    ]
}

/// One account per hash, in id order (the clock moves between them).
async fn census_accounts(store: &dyn Store, clock: &gatehouse_core::FakeClock) {
    let mut tx = store.begin().await.unwrap();
    for (i, hash) in census_hashes().into_iter().enumerate() {
        tx.insert_user(&UserRecord {
            password_hash: hash,
            ..user(clock, &format!("census{i}@example.com"))
        })
        .await
        .unwrap();
        clock.advance(Duration::milliseconds(1));
    }
    tx.commit(Audited::for_tests()).await.unwrap();
}

pub async fn password_census_counts_and_lists_within_its_bounds(store: Arc<dyn Store>) {
    let clock = clock();
    let current = "$argon2id$v=19$m=19456,t=2,p=1";
    // Empty: nothing counted, nothing capped.
    let mut tx = store.begin_read().await.unwrap();
    let empty = tx.password_hash_census(current, 10, 10).await.unwrap();
    assert_eq!(
        (
            empty.accounts,
            empty.accounts_capped,
            empty.others.len(),
            empty.others_capped
        ),
        (0, false, 0, false)
    );
    drop(tx);
    census_accounts(store.as_ref(), &clock).await;
    let hashes = census_hashes();

    // Every account, read by a transaction that declared nothing else (PostgreSQL: the census
    // job's policy, not a named subject, is what shows them).
    let mut tx = store.begin_read().await.unwrap();
    let all = tx.password_hash_census(current, 100, 100).await.unwrap();
    assert_eq!((all.accounts, all.accounts_capped), (6, false));
    // The peppered hash names a `keyid` the current prefix does not: listed (a pepper that is
    // no longer configured makes it unverifiable, see `posture::checks`).
    assert_eq!(
        all.others,
        vec![
            hashes[1].clone(),
            hashes[2].clone(),
            hashes[3].clone(),
            hashes[4].clone()
        ]
    );
    assert!(!all.others_capped);
    // With that pepper configured, its hash is the current one and the others are listed.
    let peppered = tx
        .password_hash_census(&format!("{current},keyid=AAAAAAAAAAA"), 100, 100)
        .await
        .unwrap();
    assert_eq!(
        peppered.others,
        vec![
            hashes[0].clone(),
            hashes[2].clone(),
            hashes[3].clone(),
            hashes[4].clone(),
            hashes[5].clone()
        ]
    );

    // The oldest four accounts only: the last hash is not looked at.
    let four = tx.password_hash_census(current, 4, 100).await.unwrap();
    assert_eq!((four.accounts, four.accounts_capped), (4, true));
    assert_eq!(
        four.others,
        vec![hashes[1].clone(), hashes[2].clone(), hashes[3].clone()]
    );
    // Exactly as many accounts as the bound: not capped.
    let six = tx.password_hash_census(current, 6, 100).await.unwrap();
    assert_eq!((six.accounts, six.accounts_capped), (6, false));

    // At most two listed, and the census says there were more.
    let two = tx.password_hash_census(current, 100, 2).await.unwrap();
    assert_eq!(two.others.len(), 2);
    assert!(two.others_capped);
    assert!(two.others.iter().all(|h| all.others.contains(h)));

    // Other parameters: every hash but the bcrypt one starts differently, so all are listed.
    let raised = tx
        .password_hash_census("$argon2id$v=19$m=47104,t=2,p=1", 100, 100)
        .await
        .unwrap();
    assert_eq!(raised.others, hashes);
}

pub async fn password_census_counts_hashes_below_the_configured_cost(store: Arc<dyn Store>) {
    use gatehouse_core::posture::checks::{
        PasswordCensus, password_census, password_census_within,
    };
    use gatehouse_crypto::Argon2Params;
    let clock = clock();
    census_accounts(store.as_ref(), &clock).await;
    let configured = Argon2Params::MINIMUM;
    let census = password_census(store.as_ref(), &configured, None)
        .await
        .unwrap();
    assert_eq!(
        census,
        PasswordCensus {
            accounts: 6,
            accounts_capped: false,
            at_or_above: 3,
            below: 3,
            bcrypt: 1,
            // The peppered hash, with no pepper configured.
            unreadable: 1,
            without_password: 0,
            below_capped: false,
        }
    );
    // Raising the configured memory puts every hash made before below it.
    let raised = Argon2Params::new(47_104, 2, 1).unwrap();
    let census = password_census(store.as_ref(), &raised, None)
        .await
        .unwrap();
    assert_eq!((census.below, census.at_or_above, census.bcrypt), (6, 0, 1));
    // Bounded: three accounts looked at, one hash classified.
    let census = password_census_within(store.as_ref(), &raised, None, 3, 1)
        .await
        .unwrap();
    assert_eq!((census.accounts, census.below), (3, 1));
    assert!(census.accounts_capped && census.below_capped);
}

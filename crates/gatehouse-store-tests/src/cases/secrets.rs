//! The contract of `SecretStore` (core's `store/secrets.rs`), the shared-secrets vault's metadata:
//! live names are unique, versions only advance to the next number, deletion is soft and once,
//! listing pages newest first, and every row stays inside its organisation.

use std::sync::Arc;

use gatehouse_core::audit::Audited;
use gatehouse_core::page::PageRequest;
use gatehouse_core::store::{SecretRecord, SecretVersionRecord, Store};
use gatehouse_core::{Clock, FakeClock, OrgId, StoreError, TenantScope};
use time::Duration;
use uuid::Uuid;

use crate::cases::{clock, seed};

pub(crate) fn secret(clock: &FakeClock, org: OrgId, name: &str) -> SecretRecord {
    let now = clock.now();
    SecretRecord {
        org_id: org,
        id: gatehouse_core::ids::new_uuid(clock),
        name: name.to_owned(),
        description: Some(format!("what {name} is for")),
        current_version: 1,
        created_by: "user:someone".into(),
        created_at: now,
        updated_at: now,
        expires_at: Some(now + Duration::days(30)),
        deleted_at: None,
    }
}

pub(crate) fn version(clock: &FakeClock, s: &SecretRecord, number: u32) -> SecretVersionRecord {
    SecretVersionRecord {
        org_id: s.org_id,
        secret_id: s.id,
        version: number,
        created_by: format!("user:writer-of-v{number}"),
        created_at: clock.now(),
    }
}

/// The version row `insert_secret` writes: creator and time as the secret's.
fn first_version(s: &SecretRecord) -> SecretVersionRecord {
    SecretVersionRecord {
        org_id: s.org_id,
        secret_id: s.id,
        version: s.current_version,
        created_by: s.created_by.clone(),
        created_at: s.created_at,
    }
}

fn page(cursor: Option<&str>, limit: u32) -> PageRequest {
    PageRequest::parse(cursor, Some(limit)).unwrap()
}

pub(crate) async fn in_scope(
    store: &dyn Store,
    org: OrgId,
) -> Box<dyn gatehouse_core::store::TenantTx> {
    store
        .begin_scoped(&TenantScope::for_tests(org))
        .await
        .unwrap()
}

/// Every live secret of the scope, page by page, checking each page's size and cursor.
async fn list_all(store: &dyn Store, org: OrgId, limit: u32) -> Vec<SecretRecord> {
    let mut tx = in_scope(store, org).await;
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let p = tx
            .list_secrets(
                time::OffsetDateTime::UNIX_EPOCH,
                page(cursor.as_deref(), limit),
            )
            .await
            .unwrap();
        assert!(p.items.len() <= usize::try_from(limit).unwrap());
        if p.next_cursor.is_some() {
            assert_eq!(p.items.len(), usize::try_from(limit).unwrap());
        }
        out.extend(p.items);
        match p.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
        assert!(out.len() < 1_000, "pagination does not end");
    }
    out
}

pub async fn vault_secrets_round_trip_and_list_newest_first(store: Arc<dyn Store>) {
    let clock = clock();
    let seeded = seed(store.as_ref(), &clock, 1).await;
    let a = seeded[0].0;

    // Five secrets; two share a creation time, so the id breaks the tie.
    let mut made = Vec::new();
    for i in 0..5 {
        if i != 3 {
            clock.advance(Duration::milliseconds(3));
        }
        let mut s = secret(&clock, a, &format!("secret-{i}"));
        if i == 4 {
            s.description = None;
            s.expires_at = None;
        }
        made.push(s);
    }
    let mut tx = in_scope(store.as_ref(), a).await;
    for s in &made {
        tx.insert_secret(s).await.unwrap();
    }
    tx.commit(Audited::for_tests()).await.unwrap();

    let mut tx = in_scope(store.as_ref(), a).await;
    for s in &made {
        assert_eq!(tx.secret(s.id).await.unwrap().as_ref(), Some(s));
        assert_eq!(
            tx.secret_versions(s.id).await.unwrap(),
            vec![first_version(s)]
        );
    }
    assert!(tx.secret(Uuid::from_u128(42)).await.unwrap().is_none());
    assert!(
        tx.secret_versions(Uuid::from_u128(42))
            .await
            .unwrap()
            .is_empty()
    );
    drop(tx);

    // Newest first by (created_at, id), every secret exactly once, in pages of 2.
    let mut expected = made.clone();
    expected.sort_by_key(|s| std::cmp::Reverse((s.created_at, s.id)));
    assert_eq!(list_all(store.as_ref(), a, 2).await, expected);
    assert_eq!(list_all(store.as_ref(), a, 1).await, expected);
    assert_eq!(list_all(store.as_ref(), a, 50).await, expected);
    let mut tx = in_scope(store.as_ref(), a).await;
    let first = tx
        .list_secrets(time::OffsetDateTime::UNIX_EPOCH, page(None, 5))
        .await
        .unwrap();
    assert_eq!(first.items, expected);
    assert!(
        first.next_cursor.is_none(),
        "an exact last page has no next"
    );
    drop(tx);

    // A deleted secret is not listed, but is still found by id.
    let gone = &made[2];
    let at = clock.now() + Duration::seconds(1);
    let mut tx = in_scope(store.as_ref(), a).await;
    assert!(tx.delete_secret(gone.id, at).await.unwrap());
    tx.commit(Audited::for_tests()).await.unwrap();
    let live: Vec<SecretRecord> = expected
        .iter()
        .filter(|s| s.id != gone.id)
        .cloned()
        .collect();
    assert_eq!(live.len(), 4);
    assert_eq!(list_all(store.as_ref(), a, 2).await, live);
    assert_eq!(list_all(store.as_ref(), a, 3).await, live);
    let mut tx = in_scope(store.as_ref(), a).await;
    let stored = tx.secret(gone.id).await.unwrap().unwrap();
    assert_eq!(stored.deleted_at, Some(at));
    assert_eq!(
        SecretRecord {
            deleted_at: None,
            ..stored
        },
        gone.clone()
    );
}

pub async fn vault_live_secret_names_are_unique(store: Arc<dyn Store>) {
    let clock = clock();
    let seeded = seed(store.as_ref(), &clock, 1).await;
    let a = seeded[0].0;
    let first = secret(&clock, a, "db-password");
    let mut tx = in_scope(store.as_ref(), a).await;
    tx.insert_secret(&first).await.unwrap();
    tx.commit(Audited::for_tests()).await.unwrap();

    // (A failed statement ends a PostgreSQL transaction: each refusal gets its own.)
    clock.advance(Duration::milliseconds(1));
    let second = secret(&clock, a, "db-password");
    let mut tx = in_scope(store.as_ref(), a).await;
    assert!(matches!(
        tx.insert_secret(&second).await,
        Err(StoreError::Duplicate)
    ));
    drop(tx);
    let mut tx = in_scope(store.as_ref(), a).await;
    assert!(tx.secret(second.id).await.unwrap().is_none());
    assert!(tx.secret_versions(second.id).await.unwrap().is_empty());
    // Another name is fine.
    clock.advance(Duration::milliseconds(1));
    let other = secret(&clock, a, "api-token");
    tx.insert_secret(&other).await.unwrap();
    tx.commit(Audited::for_tests()).await.unwrap();

    // Once the first is deleted its name is free again; the deleted one stays readable.
    let mut tx = in_scope(store.as_ref(), a).await;
    assert!(tx.delete_secret(first.id, clock.now()).await.unwrap());
    tx.insert_secret(&second).await.unwrap();
    tx.commit(Audited::for_tests()).await.unwrap();
    let mut tx = in_scope(store.as_ref(), a).await;
    assert_eq!(tx.secret(second.id).await.unwrap(), Some(second.clone()));
    assert!(
        tx.secret(first.id)
            .await
            .unwrap()
            .unwrap()
            .deleted_at
            .is_some()
    );
    let listed: Vec<Uuid> = tx
        .list_secrets(time::OffsetDateTime::UNIX_EPOCH, page(None, 50))
        .await
        .unwrap()
        .items
        .iter()
        .map(|s| s.id)
        .collect();
    // Newest first: `other` was created after `second`.
    assert_eq!(listed, vec![other.id, second.id]);
    drop(tx);

    // ...and taken again while the new one is live.
    let third = secret(&clock, a, "db-password");
    let mut tx = in_scope(store.as_ref(), a).await;
    assert!(matches!(
        tx.insert_secret(&third).await,
        Err(StoreError::Duplicate)
    ));
    drop(tx);

    // A deleted secret may be inserted beside a live one of the same name.
    let mut archived = secret(&clock, a, "db-password");
    archived.deleted_at = Some(clock.now());
    let mut tx = in_scope(store.as_ref(), a).await;
    tx.insert_secret(&archived).await.unwrap();
    assert_eq!(
        tx.secret(archived.id).await.unwrap(),
        Some(archived.clone())
    );
}

pub async fn vault_versions_advance_one_at_a_time_until_deleted(store: Arc<dyn Store>) {
    let clock = clock();
    let seeded = seed(store.as_ref(), &clock, 1).await;
    let a = seeded[0].0;
    let s = secret(&clock, a, "signing-secret");
    let mut tx = in_scope(store.as_ref(), a).await;
    tx.insert_secret(&s).await.unwrap();
    tx.commit(Audited::for_tests()).await.unwrap();

    clock.advance(Duration::seconds(5));
    let v2 = version(&clock, &s, 2);
    let mut tx = in_scope(store.as_ref(), a).await;
    // Only the next number: not the current one, not a skip, not zero.
    for wrong in [0, 1, 3, 7] {
        assert!(
            !tx.add_secret_version(&version(&clock, &s, wrong))
                .await
                .unwrap(),
            "version {wrong} after 1"
        );
    }
    assert_eq!(tx.secret(s.id).await.unwrap(), Some(s.clone()));
    assert!(tx.add_secret_version(&v2).await.unwrap());
    assert!(!tx.add_secret_version(&v2).await.unwrap(), "v2 twice");
    // A secret that does not exist has no next version.
    let mut missing = version(&clock, &s, 2);
    missing.secret_id = Uuid::from_u128(42);
    assert!(!tx.add_secret_version(&missing).await.unwrap());
    tx.commit(Audited::for_tests()).await.unwrap();

    clock.advance(Duration::seconds(5));
    let v3 = version(&clock, &s, 3);
    let mut tx = in_scope(store.as_ref(), a).await;
    assert!(tx.add_secret_version(&v3).await.unwrap());
    let stored = tx.secret(s.id).await.unwrap().unwrap();
    assert_eq!(stored.current_version, 3);
    assert_eq!(stored.updated_at, v3.created_at);
    assert_eq!(stored.created_at, s.created_at);
    assert_eq!(
        SecretRecord {
            current_version: 1,
            updated_at: s.updated_at,
            ..stored
        },
        s
    );
    // Oldest first, exactly as written.
    assert_eq!(
        tx.secret_versions(s.id).await.unwrap(),
        vec![first_version(&s), v2.clone(), v3.clone()]
    );
    tx.commit(Audited::for_tests()).await.unwrap();

    // Deleted once; after that no version is added and the history stays.
    let at = clock.now() + Duration::seconds(1);
    let mut tx = in_scope(store.as_ref(), a).await;
    assert!(tx.delete_secret(s.id, at).await.unwrap());
    assert!(
        !tx.delete_secret(s.id, at + Duration::seconds(1))
            .await
            .unwrap()
    );
    assert!(
        !tx.delete_secret(Uuid::from_u128(42), at).await.unwrap(),
        "a missing secret is not deleted"
    );
    assert!(
        !tx.add_secret_version(&version(&clock, &s, 4))
            .await
            .unwrap()
    );
    tx.commit(Audited::for_tests()).await.unwrap();
    let mut tx = in_scope(store.as_ref(), a).await;
    let stored = tx.secret(s.id).await.unwrap().unwrap();
    assert_eq!(
        stored.deleted_at,
        Some(at),
        "the first deletion's time stays"
    );
    assert_eq!(stored.current_version, 3);
    assert_eq!(
        tx.secret_versions(s.id).await.unwrap(),
        vec![first_version(&s), v2, v3]
    );
}

pub async fn vault_secrets_never_cross_organisations(store: Arc<dyn Store>) {
    let clock = clock();
    let seeded = seed(store.as_ref(), &clock, 2).await;
    let (a, b) = (seeded[0].0, seeded[1].0);
    let s = secret(&clock, a, "shared-name");
    let mut tx = in_scope(store.as_ref(), a).await;
    tx.insert_secret(&s).await.unwrap();
    clock.advance(Duration::seconds(1));
    let v2 = version(&clock, &s, 2);
    assert!(tx.add_secret_version(&v2).await.unwrap());
    tx.set_transit_floor(3).await.unwrap();
    tx.commit(Audited::for_tests()).await.unwrap();

    // From b: nothing of a's is visible, and nothing of a's changes.
    let mut tx = in_scope(store.as_ref(), b).await;
    assert!(tx.secret(s.id).await.unwrap().is_none());
    assert!(
        tx.list_secrets(time::OffsetDateTime::UNIX_EPOCH, page(None, 50))
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(tx.secret_versions(s.id).await.unwrap().is_empty());
    let as_b = SecretVersionRecord {
        org_id: b,
        ..version(&clock, &s, 3)
    };
    assert!(!tx.add_secret_version(&as_b).await.unwrap());
    assert!(!tx.delete_secret(s.id, clock.now()).await.unwrap());
    assert_eq!(tx.transit_floor().await.unwrap(), None);
    // Names are unique per organisation: b may use a's.
    let own = secret(&clock, b, "shared-name");
    tx.insert_secret(&own).await.unwrap();
    let listed = tx
        .list_secrets(time::OffsetDateTime::UNIX_EPOCH, page(None, 50))
        .await
        .unwrap()
        .items;
    assert_eq!(listed, vec![own.clone()]);
    tx.commit(Audited::for_tests()).await.unwrap();

    // Records naming a are refused from b's transaction before they reach the store.
    let mut tx = in_scope(store.as_ref(), b).await;
    let foreign = secret(&clock, a, "planted");
    assert!(matches!(
        tx.insert_secret(&foreign).await,
        Err(StoreError::Backend(_))
    ));
    assert!(matches!(
        tx.add_secret_version(&version(&clock, &s, 3)).await,
        Err(StoreError::Backend(_))
    ));
    tx.commit(Audited::for_tests()).await.unwrap();

    let mut tx = in_scope(store.as_ref(), a).await;
    let stored = tx.secret(s.id).await.unwrap().unwrap();
    assert_eq!(stored.current_version, 2);
    assert!(stored.deleted_at.is_none());
    assert!(tx.secret(foreign.id).await.unwrap().is_none());
    assert!(tx.secret(own.id).await.unwrap().is_none());
    assert_eq!(
        tx.secret_versions(s.id).await.unwrap(),
        vec![first_version(&s), v2]
    );
    let listed: Vec<Uuid> = tx
        .list_secrets(time::OffsetDateTime::UNIX_EPOCH, page(None, 50))
        .await
        .unwrap()
        .items
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(listed, vec![s.id]);
    assert_eq!(tx.transit_floor().await.unwrap(), Some(3));
}

//! The contract of `RecordStore` (core's `store/records.rs`): a record round-trips, its type and
//! external id are unique per organisation, a listing returns exactly what the query's visibility
//! admits (own, public, organisation-wide of a readable type, private naming the caller) with its
//! filters, and nothing crosses organisations.

use std::sync::Arc;

use gatehouse_core::audit::Audited;
use gatehouse_core::page::PageRequest;
use gatehouse_core::store::{Level, RecordQuery, RecordRow, Store};
use gatehouse_core::{Clock, FakeClock, OrgId, StoreError, TenantScope};

use crate::cases::{clock, seed};

fn record(
    clock: &FakeClock,
    org: OrgId,
    ext: &str,
    kind: &str,
    level: Level,
    owner: &str,
) -> RecordRow {
    let now = clock.now();
    RecordRow {
        org_id: org,
        id: gatehouse_core::ids::new_uuid(clock),
        kind: kind.into(),
        external_id: ext.into(),
        namespace: None,
        owner: owner.into(),
        level,
        allowed: Vec::new(),
        tags: Vec::new(),
        has_content: false,
        created_at: now,
        updated_at: now,
        expires_at: None,
    }
}

async fn visible(store: &dyn Store, org: OrgId, q: &RecordQuery) -> Vec<String> {
    let mut tx = store
        .begin_read_scoped(&TenantScope::for_tests(org))
        .await
        .unwrap();
    let mut ids: Vec<String> = tx
        .list_records(q, PageRequest::parse(None, Some(200)).unwrap())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|r| r.external_id)
        .collect();
    ids.sort();
    ids
}

pub async fn records_round_trip_and_list_what_the_caller_may_read(store: Arc<dyn Store>) {
    let clock = clock();
    let orgs = seed(store.as_ref(), &clock, 2).await;
    let (a, b) = (orgs[0].0, orgs[1].0);
    let mut private = record(&clock, a, "p", "memo", Level::Private, "user:x");
    private.allowed = vec!["user:y".into(), "key:z".into()];
    private.tags = vec!["t1".into(), "t2".into()];
    private.namespace = Some("ns".into());
    private.expires_at = Some(clock.now() + time::Duration::days(1));
    private.has_content = true;
    let org_memo = record(&clock, a, "o", "memo", Level::Organization, "user:x");
    let org_report = record(&clock, a, "r", "report", Level::Organization, "user:x");
    let public = record(&clock, a, "pub", "report", Level::Public, "user:w");
    let mut tx = store
        .begin_scoped(&TenantScope::for_tests(a))
        .await
        .unwrap();
    for r in [&private, &org_memo, &org_report, &public] {
        tx.insert_record(r).await.unwrap();
    }
    tx.commit(Audited::for_tests()).await.unwrap();
    // (A failed statement ends a PostgreSQL transaction: each refusal gets its own.)
    let mut tx = store
        .begin_scoped(&TenantScope::for_tests(a))
        .await
        .unwrap();
    assert!(matches!(
        tx.insert_record(&record(&clock, a, "p", "memo", Level::Public, "user:q"))
            .await,
        Err(StoreError::Duplicate)
    ));
    drop(tx);
    // Another organisation's record may not be written from this scope.
    let mut tx = store
        .begin_scoped(&TenantScope::for_tests(a))
        .await
        .unwrap();
    assert!(
        tx.insert_record(&record(&clock, b, "b", "memo", Level::Public, "user:q"))
            .await
            .is_err()
    );
    drop(tx);

    let mut tx = store
        .begin_scoped(&TenantScope::for_tests(a))
        .await
        .unwrap();
    assert_eq!(tx.record(private.id).await.unwrap(), Some(private.clone()));
    let mut changed = private.clone();
    changed.level = Level::Organization;
    changed.tags = vec!["t3".into()];
    changed.has_content = false;
    changed.updated_at = clock.now() + time::Duration::seconds(5);
    assert!(tx.update_record(&changed).await.unwrap());
    assert_eq!(tx.record(private.id).await.unwrap(), Some(changed.clone()));
    assert!(tx.update_record(&private).await.unwrap());
    tx.commit(Audited::for_tests()).await.unwrap();

    let q = |me: &str, types: &[&str]| RecordQuery {
        me: me.into(),
        readable_types: types.iter().map(|t| (*t).to_owned()).collect(),
        ..RecordQuery::default()
    };
    let s = store.as_ref();
    assert_eq!(
        visible(s, a, &q("user:x", &[])).await,
        ["o", "p", "pub", "r"]
    );
    assert_eq!(visible(s, a, &q("user:y", &[])).await, ["p", "pub"]);
    assert_eq!(
        visible(s, a, &q("key:z", &["memo"])).await,
        ["o", "p", "pub"]
    );
    assert_eq!(visible(s, a, &q("user:v", &["report"])).await, ["pub", "r"]);
    // A prefix of an allowed entry is not that entry.
    assert_eq!(visible(s, a, &q("user:", &[])).await, ["pub"]);
    let filtered = RecordQuery {
        kind: Some("memo".into()),
        tag: Some("t2".into()),
        namespace: Some("ns".into()),
        ..q("user:x", &[])
    };
    assert_eq!(visible(s, a, &filtered).await, ["p"]);
    let by_owner = RecordQuery {
        owner: Some("user:w".into()),
        ..q("user:x", &[])
    };
    assert_eq!(visible(s, a, &by_owner).await, ["pub"]);
    // A listing given the time leaves out what has expired by then (its expiry instant
    // included); one without a time shows it.
    let mut expiring = record(&clock, a, "e", "memo", Level::Public, "user:w");
    expiring.expires_at = Some(clock.now() + time::Duration::seconds(10));
    let mut tx = store
        .begin_scoped(&TenantScope::for_tests(a))
        .await
        .unwrap();
    tx.insert_record(&expiring).await.unwrap();
    tx.commit(Audited::for_tests()).await.unwrap();
    let at = |t: time::OffsetDateTime| RecordQuery {
        now: Some(t),
        ..by_owner.clone()
    };
    let before = clock.now() + time::Duration::seconds(10) - time::Duration::microseconds(1);
    assert_eq!(visible(s, a, &at(before)).await, ["e", "pub"]);
    let expiry = clock.now() + time::Duration::seconds(10);
    assert_eq!(visible(s, a, &at(expiry)).await, ["pub"]);
    assert_eq!(visible(s, a, &by_owner).await, ["e", "pub"]);
    let mut tx = store
        .begin_scoped(&TenantScope::for_tests(a))
        .await
        .unwrap();
    // Deleting it as expired waits for its expiry instant, and happens once.
    assert!(!tx.delete_expired_record(expiring.id, before).await.unwrap());
    assert!(tx.delete_expired_record(expiring.id, expiry).await.unwrap());
    assert!(!tx.delete_expired_record(expiring.id, expiry).await.unwrap());
    assert!(
        !tx.delete_expired_record(public.id, expiry).await.unwrap(),
        "no expiry: kept"
    );
    tx.commit(Audited::for_tests()).await.unwrap();
    // Nothing of A's from B's scope, public or not.
    assert!(
        visible(s, b, &q("user:x", &["memo", "report"]))
            .await
            .is_empty()
    );
    let mut tx = store
        .begin_scoped(&TenantScope::for_tests(b))
        .await
        .unwrap();
    assert_eq!(tx.record(public.id).await.unwrap(), None);
    assert!(!tx.delete_record(public.id).await.unwrap());
    drop(tx);
    let mut tx = store
        .begin_scoped(&TenantScope::for_tests(a))
        .await
        .unwrap();
    assert!(tx.delete_record(public.id).await.unwrap());
    assert!(!tx.delete_record(public.id).await.unwrap());
    tx.commit(Audited::for_tests()).await.unwrap();
}

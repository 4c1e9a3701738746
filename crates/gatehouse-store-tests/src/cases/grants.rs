//! The contract of `GrantStore` (core's `store/grants.rs`): a grant round-trips and is listed as
//! given by its maker and as received by its grantee only; granted records are exactly the
//! grantor's records that are not private and that a grant live at the given time covers (type,
//! namespace, readable type, filters), best grant first; revocation and expiry end it.

use std::sync::Arc;

use gatehouse_core::audit::Audited;
use gatehouse_core::page::PageRequest;
use gatehouse_core::store::{GrantAccess, GrantRow, Level, RecordQuery, RecordRow, Store};
use gatehouse_core::{Clock, FakeClock, OrgId, TenantScope};
use time::Duration;

use crate::cases::{clock, seed};

fn record(clock: &FakeClock, org: OrgId, ext: &str, level: Level, ns: Option<&str>) -> RecordRow {
    let now = clock.now();
    RecordRow {
        org_id: org,
        id: gatehouse_core::ids::new_uuid(clock),
        kind: if ext.starts_with("memo") {
            "memo"
        } else {
            "report"
        }
        .into(),
        external_id: ext.into(),
        namespace: ns.map(str::to_owned),
        owner: "user:00000000-0000-0000-0000-000000000001".into(),
        level,
        allowed: Vec::new(),
        tags: vec!["t".into()],
        has_content: false,
        created_at: now,
        updated_at: now,
        expires_at: None,
    }
}

fn grant(clock: &FakeClock, from: OrgId, to: OrgId, access: GrantAccess) -> GrantRow {
    GrantRow {
        org_id: from,
        id: gatehouse_core::ids::new_uuid(clock),
        grantee: to,
        types: Vec::new(),
        namespaces: Vec::new(),
        access,
        created_by: "user:x".into(),
        created_at: clock.now(),
        expires_at: None,
        revoked_at: None,
    }
}

fn query(types: &[&str]) -> RecordQuery {
    RecordQuery {
        me: "user:00000000-0000-0000-0000-0000000000ff".into(),
        readable_types: types.iter().map(|t| (*t).to_owned()).collect(),
        ..RecordQuery::default()
    }
}

async fn granted(
    store: &dyn Store,
    org: OrgId,
    q: &RecordQuery,
    now: time::OffsetDateTime,
) -> Vec<String> {
    let mut tx = store
        .begin_read_scoped(&TenantScope::for_tests(org))
        .await
        .unwrap();
    let mut out = Vec::new();
    let mut page = PageRequest::parse(None, Some(2)).unwrap();
    loop {
        let p = tx.list_granted_records(q, now, page).await.unwrap();
        out.extend(p.items.into_iter().map(|g| g.record.external_id));
        match p.next_cursor {
            Some(c) => page = PageRequest::parse(Some(&c), Some(2)).unwrap(),
            None => break,
        }
    }
    out.sort();
    out
}

pub async fn grants_cover_what_they_say_until_revoked_or_expired(store: Arc<dyn Store>) {
    let clock = clock();
    let orgs = seed(store.as_ref(), &clock, 3).await;
    let (a, b, c) = (orgs[0].0, orgs[1].0, orgs[2].0);
    let recs = [
        record(&clock, a, "sales1", Level::Organization, Some("sales")),
        record(&clock, a, "sales2", Level::Public, Some("sales")),
        record(&clock, a, "secret", Level::Private, Some("sales")),
        record(&clock, a, "hr1", Level::Organization, Some("hr")),
        record(&clock, a, "none", Level::Organization, None),
        record(&clock, a, "memo1", Level::Organization, Some("sales")),
        record(&clock, c, "c1", Level::Organization, Some("sales")),
        // A namespace holding a comma (refused since 0013, stored before) is never matched
        // element by element: only a grant of every namespace covers it.
        record(&clock, a, "comma", Level::Organization, Some("sales,hr")),
    ];
    let mut narrow = grant(&clock, a, b, GrantAccess::Read);
    narrow.types = vec!["report".into()];
    narrow.namespaces = vec!["sales".into(), "hr".into()];
    narrow.expires_at = Some(clock.now() + Duration::minutes(10));
    let wide_rw = grant(&clock, a, c, GrantAccess::ReadWrite);
    for org in [a, c] {
        let mut tx = store
            .begin_scoped(&TenantScope::for_tests(org))
            .await
            .unwrap();
        for r in recs.iter().filter(|r| r.org_id == org) {
            tx.insert_record(r).await.unwrap();
        }
        if org == a {
            tx.insert_grant(&narrow).await.unwrap();
            tx.insert_grant(&wide_rw).await.unwrap();
        }
        tx.commit(Audited::for_tests()).await.unwrap();
    }
    let now = clock.now();
    let both = query(&["report", "memo"]);
    assert_eq!(
        granted(store.as_ref(), b, &both, now).await,
        ["hr1", "sales1", "sales2"]
    );
    assert_eq!(
        granted(store.as_ref(), c, &both, now).await,
        ["comma", "hr1", "memo1", "none", "sales1", "sales2"]
    );
    // Only readable types; filters apply.
    assert_eq!(
        granted(store.as_ref(), c, &query(&["memo"]), now).await,
        ["memo1"]
    );
    let mut by_ns = both.clone();
    by_ns.namespace = Some("hr".into());
    assert_eq!(granted(store.as_ref(), c, &by_ns, now).await, ["hr1"]);
    // A grants nothing to itself, and nobody sees C's record: C granted nothing.
    assert!(granted(store.as_ref(), a, &both, now).await.is_empty());

    // Single lookups, by id and by external id, with the grant that allows them.
    let mut tx = store
        .begin_read_scoped(&TenantScope::for_tests(c))
        .await
        .unwrap();
    let found = tx.granted_record(recs[0].id, now).await.unwrap().unwrap();
    assert_eq!(
        (found.grant_id, found.access),
        (wide_rw.id, GrantAccess::ReadWrite)
    );
    assert!(
        tx.granted_record(recs[2].id, now).await.unwrap().is_none(),
        "private"
    );
    assert!(
        tx.granted_record(recs[6].id, now).await.unwrap().is_none(),
        "its own is not granted"
    );
    let by_ext = tx
        .granted_record_by_external(a, "memo", "memo1", now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_ext.record.id, recs[5].id);
    assert!(
        tx.granted_record_by_external(a, "report", "secret", now)
            .await
            .unwrap()
            .is_none()
    );
    // Given and received.
    let page = PageRequest::parse(None, None).unwrap();
    assert!(tx.grants_given(page).await.unwrap().items.is_empty());
    let received = tx.grants_received(page).await.unwrap().items;
    assert_eq!(received, vec![wide_rw.clone()]);
    drop(tx);
    let mut tx = store
        .begin_read_scoped(&TenantScope::for_tests(a))
        .await
        .unwrap();
    assert_eq!(tx.grants_given(page).await.unwrap().items.len(), 2);
    assert_eq!(tx.grant(narrow.id).await.unwrap(), Some(narrow.clone()));
    drop(tx);
    let mut tx = store
        .begin_read_scoped(&TenantScope::for_tests(b))
        .await
        .unwrap();
    assert_eq!(
        tx.grant(narrow.id).await.unwrap(),
        None,
        "the grantee does not own it"
    );
    drop(tx);

    // Expiry: live one microsecond before, gone at the second it names.
    let expiry = narrow.expires_at.unwrap_or(now);
    assert_eq!(
        granted(store.as_ref(), b, &both, expiry - Duration::microseconds(1)).await,
        ["hr1", "sales1", "sales2"]
    );
    assert!(granted(store.as_ref(), b, &both, expiry).await.is_empty());
    // Revocation, by the maker only, once.
    let mut tx = store
        .begin_scoped(&TenantScope::for_tests(c))
        .await
        .unwrap();
    assert!(
        !tx.revoke_grant(wide_rw.id, now).await.unwrap(),
        "the grantee cannot revoke"
    );
    drop(tx);
    let mut tx = store
        .begin_scoped(&TenantScope::for_tests(a))
        .await
        .unwrap();
    assert!(tx.revoke_grant(wide_rw.id, now).await.unwrap());
    assert!(!tx.revoke_grant(wide_rw.id, now).await.unwrap());
    tx.commit(Audited::for_tests()).await.unwrap();
    assert!(granted(store.as_ref(), c, &both, now).await.is_empty());
}

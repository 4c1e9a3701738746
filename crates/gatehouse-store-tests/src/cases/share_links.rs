//! The contract of `ShareLinkStore` and `ShareLinkIndexStore` (core's `store/share_links.rs`):
//! a link is found by its digest alone, counts views up to its bound and only while live, moves
//! its generation with each password change, is revoked once, goes with its record, and never
//! crosses organisations; an opt-out is per organisation, recipient and list.

use std::sync::Arc;

use gatehouse_core::audit::Audited;
use gatehouse_core::page::PageRequest;
use gatehouse_core::store::{Level, RecordRow, ShareLinkRow, Store};
use gatehouse_core::{Clock, FakeClock, OrgId, TenantScope};

use crate::cases::{clock, seed};

fn record(clock: &FakeClock, org: OrgId, ext: &str) -> RecordRow {
    let now = clock.now();
    RecordRow {
        org_id: org,
        id: gatehouse_core::ids::new_uuid(clock),
        kind: "memo".into(),
        external_id: ext.into(),
        namespace: None,
        owner: "user:x".into(),
        level: Level::Private,
        allowed: Vec::new(),
        tags: Vec::new(),
        has_content: false,
        created_at: now,
        updated_at: now,
        expires_at: None,
    }
}

fn link(clock: &FakeClock, r: &RecordRow, digest: u8, max_views: Option<u32>) -> ShareLinkRow {
    ShareLinkRow {
        org_id: r.org_id,
        id: gatehouse_core::ids::new_uuid(clock),
        record_id: r.id,
        digest: vec![digest; 32],
        password_hash: None,
        generation: 0,
        expires_at: clock.now() + time::Duration::hours(1),
        max_views,
        views: 0,
        created_by: "user:x".into(),
        created_at: clock.now(),
        revoked_at: None,
    }
}

pub async fn share_links_count_views_change_generation_and_stay_in_their_organisation(
    store: Arc<dyn Store>,
) {
    let clock = clock();
    let orgs = seed(store.as_ref(), &clock, 2).await;
    let (a, b) = (orgs[0].0, orgs[1].0);
    let ra = record(&clock, a, "a1");
    let rb = record(&clock, b, "b1");
    let la = link(&clock, &ra, 1, Some(2));
    clock.advance(time::Duration::milliseconds(1));
    let la2 = link(&clock, &ra, 2, None);
    let lb = link(&clock, &rb, 3, None);
    for (org, r, ls) in [(a, &ra, vec![&la, &la2]), (b, &rb, vec![&lb])] {
        let mut tx = store
            .begin_scoped(&TenantScope::for_tests(org))
            .await
            .unwrap();
        tx.insert_record(r).await.unwrap();
        for l in ls {
            tx.insert_share_link(l).await.unwrap();
        }
        tx.commit(Audited::for_tests()).await.unwrap();
    }
    // Another organisation's link may not be written from this scope.
    let mut tx = store
        .begin_scoped(&TenantScope::for_tests(a))
        .await
        .unwrap();
    assert!(
        tx.insert_share_link(&link(&clock, &rb, 9, None))
            .await
            .is_err()
    );
    drop(tx);

    // The digest alone finds organisation and link.
    let mut tx = store.begin_read().await.unwrap();
    assert_eq!(
        tx.share_link_owner(&[1; 32]).await.unwrap(),
        Some((a, la.id))
    );
    assert_eq!(
        tx.share_link_owner(&[3; 32]).await.unwrap(),
        Some((b, lb.id))
    );
    assert_eq!(tx.share_link_owner(&[7; 32]).await.unwrap(), None);
    drop(tx);

    let now = clock.now();
    let mut tx = store
        .begin_scoped(&TenantScope::for_tests(a))
        .await
        .unwrap();
    assert_eq!(tx.share_link(la.id).await.unwrap(), Some(la.clone()));
    assert_eq!(
        tx.share_link(lb.id).await.unwrap(),
        None,
        "crossed organisations"
    );
    assert!(!tx.count_share_view(lb.id, now).await.unwrap());
    let page = tx
        .share_links_of(ra.id, PageRequest::parse(None, Some(1)).unwrap())
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].id, la2.id, "newest first");
    let next = PageRequest::parse(page.next_cursor.as_deref(), Some(1)).unwrap();
    let page = tx.share_links_of(ra.id, next).await.unwrap();
    assert_eq!(page.items[0].id, la.id);
    assert!(page.next_cursor.is_none());
    // Two views, then none; none after expiry either.
    assert!(tx.count_share_view(la.id, now).await.unwrap());
    assert!(tx.count_share_view(la.id, now).await.unwrap());
    assert!(!tx.count_share_view(la.id, now).await.unwrap());
    assert_eq!(tx.share_link(la.id).await.unwrap().unwrap().views, 2);
    // Opens counted in memory are added; another organisation's link is untouched; the count
    // stops at i32::MAX rather than overflowing.
    tx.add_share_views(la.id, 40).await.unwrap();
    assert_eq!(tx.share_link(la.id).await.unwrap().unwrap().views, 42);
    tx.add_share_views(lb.id, 7).await.unwrap();
    tx.add_share_views(la.id, u32::MAX).await.unwrap();
    tx.add_share_views(la.id, u32::MAX).await.unwrap();
    assert_eq!(
        tx.share_link(la.id).await.unwrap().unwrap().views,
        2_147_483_647
    );
    assert!(!tx.count_share_view(la2.id, la2.expires_at).await.unwrap());
    // A password change moves the generation; a revoked link takes no change and no view.
    assert!(
        tx.set_share_password(la2.id, Some("$argon2id$x"))
            .await
            .unwrap()
    );
    let changed = tx.share_link(la2.id).await.unwrap().unwrap();
    assert_eq!(
        (changed.generation, changed.password_hash.as_deref()),
        (1, Some("$argon2id$x"))
    );
    assert!(tx.revoke_share_link(la2.id, now).await.unwrap());
    assert!(!tx.revoke_share_link(la2.id, now).await.unwrap());
    assert!(!tx.set_share_password(la2.id, None).await.unwrap());
    assert!(!tx.count_share_view(la2.id, now).await.unwrap());
    assert!(!tx.share_link(la2.id).await.unwrap().unwrap().live_at(now));
    // The record's deletion takes its links.
    assert!(tx.delete_record(ra.id).await.unwrap());
    assert_eq!(tx.share_link(la.id).await.unwrap(), None);

    // Opt-outs: per organisation, recipient and list.
    assert!(tx.add_opt_out(&[5; 32], "news", now).await.unwrap());
    assert!(!tx.add_opt_out(&[5; 32], "news", now).await.unwrap());
    assert!(tx.opted_out(&[5; 32], "news").await.unwrap());
    assert!(!tx.opted_out(&[5; 32], "billing").await.unwrap());
    assert!(!tx.opted_out(&[6; 32], "news").await.unwrap());
    tx.commit(Audited::for_tests()).await.unwrap();
    let mut tx = store
        .begin_read_scoped(&TenantScope::for_tests(b))
        .await
        .unwrap();
    assert!(
        !tx.opted_out(&[5; 32], "news").await.unwrap(),
        "crossed organisations"
    );
    assert_eq!(
        tx.share_link(lb.id).await.unwrap().unwrap().views,
        0,
        "views were added across organisations"
    );
    let mut tx = store.begin_read().await.unwrap();
    assert_eq!(tx.share_link_owner(&[1; 32]).await.unwrap(), None);
    drop(tx);
}

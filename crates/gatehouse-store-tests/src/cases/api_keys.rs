//! The contract of `ApiKeyIndexStore` and `ApiKeyStore` (core's `store/api_keys.rs`): a key is
//! found by its digest from the platform, and read, listed, given an expiry, revoked and touched
//! only within its organisation.

use std::sync::Arc;

use gatehouse_core::audit::Audited;
use gatehouse_core::store::Store;
use gatehouse_core::{Clock, TenantScope};
use time::Duration;

use crate::cases::{clock, seed};

pub async fn identity_api_keys_are_found_by_digest_and_scoped(store: Arc<dyn Store>) {
    let clock = clock();
    let seeded = seed(store.as_ref(), &clock, 2).await;
    let ((a, _), (b, _)) = (seeded[0], seeded[1]);
    let key = gatehouse_core::store::ApiKeyRecord {
        id: gatehouse_core::ids::new_uuid(&clock),
        org_id: a,
        name: "ci".into(),
        prefix: "gk_live_abcd".into(),
        last4: "wxyz".into(),
        digest: vec![7; 32],
        permissions: vec!["audit.read".into()],
        namespace: Some("billing".into()),
        rate_limit: Some(600),
        created_by: "someone".into(),
        created_at: clock.now(),
        expires_at: None,
        revoked_at: None,
        last_used_at: None,
    };
    let mut tx = store
        .begin_scoped(&TenantScope::for_tests(a))
        .await
        .unwrap();
    tx.insert_api_key(&key).await.unwrap();
    tx.commit(Audited::for_tests()).await.unwrap();

    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.api_key_owner(&[7; 32]).await.unwrap(), Some((a, key.id)));
    assert_eq!(tx.api_key_owner(&[8; 32]).await.unwrap(), None);
    let mut tx = tx.enter(&TenantScope::for_tests(a)).await.unwrap();
    assert_eq!(tx.api_key(key.id).await.unwrap(), Some(key.clone()));
    let page = tx
        .list_api_keys(gatehouse_core::PageRequest::parse(None, None).unwrap())
        .await
        .unwrap();
    assert_eq!(page.items, vec![key.clone()]);
    let later = clock.now() + Duration::minutes(1);
    assert!(tx.set_api_key_expiry(key.id, later).await.unwrap());
    assert!(tx.revoke_api_key(key.id, clock.now()).await.unwrap());
    assert!(!tx.revoke_api_key(key.id, clock.now()).await.unwrap());
    tx.commit(Audited::for_tests()).await.unwrap();

    store.touch_api_keys(&[(a, key.id, later)]).await.unwrap();
    // Organisation b sees none of it.
    let mut tx = store
        .begin_scoped(&TenantScope::for_tests(b))
        .await
        .unwrap();
    assert!(tx.api_key(key.id).await.unwrap().is_none());
    assert!(!tx.revoke_api_key(key.id, clock.now()).await.unwrap());
    assert!(
        tx.list_api_keys(gatehouse_core::PageRequest::parse(None, None).unwrap())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    drop(tx);
    let mut tx = store
        .begin_scoped(&TenantScope::for_tests(a))
        .await
        .unwrap();
    let stored = tx.api_key(key.id).await.unwrap().unwrap();
    assert_eq!(stored.expires_at, Some(later));
    assert_eq!(stored.last_used_at, Some(later));
    assert!(stored.revoked_at.is_some());
}

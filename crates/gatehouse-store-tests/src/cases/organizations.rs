//! The contract of `OrganizationStore` (core's `store/organizations.rs`): an organisation is found
//! by id and entered with its founding owner.

use std::sync::Arc;

use gatehouse_core::TenantScope;
use gatehouse_core::store::{Role, Store};

use crate::cases::{clock, seed};

pub async fn organization_with_owner(store: Arc<dyn Store>) {
    let clock = clock();
    let seeded = seed(store.as_ref(), &clock, 1).await;
    let (org_id, owner) = seeded[0];
    let mut tx = store.begin().await.unwrap();
    let o = tx.organization_by_id(org_id).await.unwrap().unwrap();
    assert_eq!(o.name, "org 0");
    let tx = tx.enter(&TenantScope::for_tests(org_id)).await.unwrap();
    drop(tx);
    let mut tx = store
        .begin_scoped(&TenantScope::for_tests(org_id))
        .await
        .unwrap();
    let m = tx.membership(owner).await.unwrap().unwrap();
    assert_eq!((m.org_id, m.user_id, m.role), (org_id, owner, Role::Owner));
}

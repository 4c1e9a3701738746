//! The contract of `ConnectorStore::lock_connector` (core's `store/connectors.rs`): a connector
//! held by one transaction is read by another only as the holder left it, so a disconnect, a
//! removal and a refresh's recording never act on tokens another has just replaced (#24).

use std::sync::Arc;

use gatehouse_core::TenantScope;
use gatehouse_core::audit::Audited;
use gatehouse_core::store::{ConnectorRow, ConnectorStatus, Store};
use uuid::Uuid;

use crate::cases::keyring::clock;
use crate::cases::seed;

pub async fn connectors_a_held_connector_is_read_as_its_holder_left_it(store: Arc<dyn Store>) {
    let clock = clock();
    let orgs = seed(store.as_ref(), &clock, 1).await;
    let (org, user) = orgs[0];
    let scope = TenantScope::for_tests(org);
    let now = gatehouse_core::Clock::now(clock.as_ref());
    let row = ConnectorRow {
        org_id: org,
        id: Uuid::from_u128(77),
        user_id: user.as_uuid(),
        provider: "crm".into(),
        status: ConnectorStatus::Active,
        scopes: "read".into(),
        expires_at: None,
        refresh_due_at: None,
        failures: 0,
        last_error: None,
        created_at: now,
        updated_at: now,
    };
    let mut tx = store.begin_scoped(&scope).await.unwrap();
    tx.insert_connector(&row).await.unwrap();
    tx.commit(Audited::for_tests()).await.unwrap();

    let mut holder = store.begin_scoped(&scope).await.unwrap();
    let mut held = holder.lock_connector(row.id).await.unwrap().unwrap();
    held.status = ConnectorStatus::NeedsReauth;
    assert!(holder.update_connector(&held).await.unwrap());
    let waiter = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let mut tx = store.begin_scoped(&scope).await.unwrap();
            tx.lock_connector(row.id).await.unwrap().map(|c| c.status)
        })
    };
    // The waiter has had time to read, were it not held off.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    holder.commit(Audited::for_tests()).await.unwrap();
    assert_eq!(waiter.await.unwrap(), Some(ConnectorStatus::NeedsReauth));
}

//! The contract of `AppStore` (core's `store/apps.rs`): an app round-trips and is found by its
//! audience, audiences are unique, the list is oldest first, and a removed app is gone.

use std::sync::Arc;

use gatehouse_core::audit::Audited;
use gatehouse_core::store::{AppRecord, Store};
use gatehouse_core::{Clock, StoreError};
use time::Duration;

use crate::cases::clock;

pub async fn apps_are_unique_by_audience_listed_oldest_first_and_removed(store: Arc<dyn Store>) {
    let clock = clock();
    let billing = AppRecord {
        id: gatehouse_core::ids::new_uuid(&clock),
        name: "Billing".into(),
        audience: "https://billing.example.com".into(),
        created_at: clock.now(),
    };
    clock.advance(Duration::seconds(1));
    let reports = AppRecord {
        id: gatehouse_core::ids::new_uuid(&clock),
        name: "Reports".into(),
        audience: "urn:example:reports".into(),
        created_at: clock.now(),
    };
    let mut tx = store.begin().await.unwrap();
    tx.insert_app(&reports).await.unwrap();
    tx.insert_app(&billing).await.unwrap();
    tx.commit(Audited::for_tests()).await.unwrap();

    let mut tx = store.begin().await.unwrap();
    assert_eq!(
        tx.apps().await.unwrap(),
        vec![billing.clone(), reports.clone()]
    );
    assert_eq!(
        tx.app_by_audience("https://billing.example.com")
            .await
            .unwrap(),
        Some(billing.clone())
    );
    // Exact match only: no prefix, no case folding.
    assert_eq!(
        tx.app_by_audience("https://billing.example.com/")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        tx.app_by_audience("HTTPS://BILLING.EXAMPLE.COM")
            .await
            .unwrap(),
        None
    );
    let same_audience = AppRecord {
        id: gatehouse_core::ids::new_uuid(&clock),
        name: "Billing again".into(),
        ..billing.clone()
    };
    assert!(matches!(
        tx.insert_app(&same_audience).await,
        Err(StoreError::Duplicate)
    ));
    drop(tx);

    let mut tx = store.begin().await.unwrap();
    assert_eq!(
        tx.delete_app(billing.id).await.unwrap(),
        Some(billing.clone())
    );
    assert_eq!(tx.delete_app(billing.id).await.unwrap(), None);
    tx.commit(Audited::for_tests()).await.unwrap();
    let mut tx = store.begin_read().await.unwrap();
    assert_eq!(tx.apps().await.unwrap(), vec![reports]);
    assert_eq!(
        tx.app_by_audience("https://billing.example.com")
            .await
            .unwrap(),
        None
    );
}

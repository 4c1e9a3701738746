//! The contract of `OperatorStore` (core's `store/operators.rs`): an operator round-trips and is
//! found by email and id, and operator emails are unique.

use std::sync::Arc;

use gatehouse_core::audit::Audited;
use gatehouse_core::store::{OperatorRecord, Store};
use gatehouse_core::{Clock, StoreError};

use crate::cases::clock;

pub async fn identity_operator_emails_are_unique(store: Arc<dyn Store>) {
    let clock = clock();
    let op = OperatorRecord {
        id: gatehouse_core::ids::new_uuid(&clock),
        email: "ops@example.com".into(),
        name: "Ops".into(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo".into(),
        created_at: clock.now(),
    };
    let mut tx = store.begin().await.unwrap();
    tx.insert_operator(&op).await.unwrap();
    tx.commit(Audited::for_tests()).await.unwrap();
    let mut tx = store.begin().await.unwrap();
    assert_eq!(
        tx.operator_by_email("ops@example.com").await.unwrap(),
        Some(op.clone())
    );
    assert_eq!(tx.operator_by_id(op.id).await.unwrap(), Some(op.clone()));
    let again = OperatorRecord {
        id: gatehouse_core::ids::new_uuid(&clock),
        ..op
    };
    assert!(matches!(
        tx.insert_operator(&again).await,
        Err(StoreError::EmailTaken)
    ));
}

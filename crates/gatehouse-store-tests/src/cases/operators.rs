//! The contract of `OperatorStore` (core's `store/operators.rs`): an operator round-trips and is
//! found by email and id, and operator emails are unique; a TOTP factor is put, spent step by
//! step (never a replay) and removed.

use std::sync::Arc;

use gatehouse_core::audit::Audited;
use gatehouse_core::store::{OperatorFactor, OperatorRecord, Store};
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
        totp: None,
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

pub async fn identity_an_operators_totp_step_is_spent_once(store: Arc<dyn Store>) {
    let clock = clock();
    let op = OperatorRecord {
        id: gatehouse_core::ids::new_uuid(&clock),
        email: "ops-totp@example.com".into(),
        name: "Ops".into(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo".into(),
        created_at: clock.now(),
        totp: None,
    };
    let mut tx = store.begin().await.unwrap();
    tx.insert_operator(&op).await.unwrap();
    // No factor: no step is accepted.
    assert!(!tx.use_operator_totp_step(op.id, 5).await.unwrap());
    let factor = OperatorFactor {
        envelope: vec![1, 2, 3],
        confirmed_at: clock.now(),
        last_step: 10,
    };
    assert!(tx.set_operator_totp(op.id, Some(&factor)).await.unwrap());
    assert!(
        !tx.set_operator_totp(uuid::Uuid::from_u128(7), Some(&factor))
            .await
            .unwrap()
    );
    tx.commit(Audited::for_tests()).await.unwrap();

    let mut tx = store.begin().await.unwrap();
    let stored = tx.operator_by_id(op.id).await.unwrap().unwrap();
    assert_eq!(stored.totp.as_ref(), Some(&factor));
    assert!(
        !tx.use_operator_totp_step(op.id, 10).await.unwrap(),
        "replay"
    );
    assert!(!tx.use_operator_totp_step(op.id, 9).await.unwrap(), "older");
    assert!(tx.use_operator_totp_step(op.id, 11).await.unwrap());
    assert!(
        !tx.use_operator_totp_step(op.id, 11).await.unwrap(),
        "spent"
    );
    assert_eq!(
        tx.operator_by_id(op.id)
            .await
            .unwrap()
            .unwrap()
            .totp
            .map(|f| f.last_step),
        Some(11)
    );
    assert!(tx.set_operator_totp(op.id, None).await.unwrap());
    assert_eq!(tx.operator_by_id(op.id).await.unwrap().unwrap().totp, None);
    assert!(!tx.use_operator_totp_step(op.id, 12).await.unwrap());
    tx.commit(Audited::for_tests()).await.unwrap();
}

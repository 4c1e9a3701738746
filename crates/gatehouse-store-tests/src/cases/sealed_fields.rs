//! The contract of `SealedFieldStore` (core's `store/sealed_fields.rs`), through the keyring: every
//! kind of sealed field round-trips and is unreadable at rest, and a ciphertext moved to another
//! record, field, kind or organisation, or modified, does not open.

use std::sync::Arc;

use gatehouse_core::audit::Audited;
use gatehouse_core::keyring::{FieldRef, SealedKind};
use gatehouse_core::store::Store;
use gatehouse_core::{Error, TenantScope};

use crate::cases::keyring::{K1, at, clock, keyring, new_org, open, seal};

pub async fn keyring_round_trip_for_every_kind(store: Arc<dyn Store>) {
    let clock = clock();
    let k = keyring(&store, &clock, K1).await;
    let org = new_org(&store, &clock, 1).await;
    for (i, kind) in SealedKind::ALL.iter().enumerate() {
        let value = format!("secret value {i}").into_bytes();
        seal(&k, &store, org, at(*kind, "rec-1"), &value).await;
        assert_eq!(
            open(&k, &store, org, at(*kind, "rec-1")).await.unwrap(),
            Some(value)
        );
    }
    assert_eq!(
        open(&k, &store, org, at(SealedKind::TotpSecret, "absent"))
            .await
            .unwrap(),
        None
    );
    // Nothing readable at rest.
    let mut tx = store
        .begin_scoped(&TenantScope::for_tests(org))
        .await
        .unwrap();
    let raw = tx
        .sealed("totp_secret", "rec-1", "value")
        .await
        .unwrap()
        .unwrap();
    assert!(!raw.envelope.windows(12).any(|w| w == b"secret value"));
}

pub async fn keyring_moved_or_modified_ciphertexts_fail(store: Arc<dyn Store>) {
    let clock = clock();
    let k = keyring(&store, &clock, K1).await;
    let a = new_org(&store, &clock, 1).await;
    let b = new_org(&store, &clock, 2).await;
    seal(
        &k,
        &store,
        a,
        at(SealedKind::SharedSecret, "r1"),
        b"the value",
    )
    .await;
    seal(
        &k,
        &store,
        b,
        at(SealedKind::SharedSecret, "r1"),
        b"b's value",
    )
    .await;
    let mut tx = store
        .begin_scoped(&TenantScope::for_tests(a))
        .await
        .unwrap();
    let original = tx
        .sealed("shared_secret", "r1", "value")
        .await
        .unwrap()
        .unwrap();
    // Copies of the same envelope under another record, field and kind.
    let mut moved = Vec::new();
    for (kind, record, field) in [
        ("shared_secret", "r2", "value"),
        ("shared_secret", "r1", "other_field"),
        ("connector_token", "r1", "value"),
    ] {
        let mut copy = original.clone();
        copy.kind = kind.into();
        copy.record_id = record.into();
        copy.field = field.into();
        tx.put_sealed(&copy).await.unwrap();
        moved.push(copy);
    }
    // And a modified copy: one flipped bit in the ciphertext.
    let mut flipped = original.clone();
    flipped.record_id = "flipped".into();
    let last = flipped.envelope.len() - 1;
    flipped.envelope[last] ^= 1;
    tx.put_sealed(&flipped).await.unwrap();
    tx.commit(Audited::for_tests()).await.unwrap();
    for m in &moved {
        let kind = SealedKind::ALL
            .iter()
            .find(|k| k.as_str() == m.kind)
            .unwrap();
        let r = open(
            &k,
            &store,
            a,
            FieldRef {
                kind: *kind,
                record_id: &m.record_id,
                field: &m.field,
            },
        )
        .await;
        assert!(matches!(r, Err(Error::Unreadable(_))), "{m:?}: {r:?}");
    }
    let r = open(&k, &store, a, at(SealedKind::SharedSecret, "flipped")).await;
    assert!(matches!(r, Err(Error::Unreadable(_))));
    // Into another organisation: B's key and context refuse it.
    let mut tx = store
        .begin_scoped(&TenantScope::for_tests(b))
        .await
        .unwrap();
    let mut into_b = original.clone();
    into_b.org_id = b;
    into_b.record_id = "from-a".into();
    tx.put_sealed(&into_b).await.unwrap();
    tx.commit(Audited::for_tests()).await.unwrap();
    assert!(matches!(
        open(&k, &store, b, at(SealedKind::SharedSecret, "from-a")).await,
        Err(Error::Unreadable(_))
    ));
    // The originals still open.
    assert_eq!(
        open(&k, &store, a, at(SealedKind::SharedSecret, "r1"))
            .await
            .unwrap()
            .unwrap(),
        b"the value"
    );
    assert_eq!(
        open(&k, &store, b, at(SealedKind::SharedSecret, "r1"))
            .await
            .unwrap()
            .unwrap(),
        b"b's value"
    );
}

//! The contract of `KeyMaterialStore` (core's `store/key_material.rs`): platform data keys are
//! listed in version order and rewrapped, and the keyring refuses a master key that the stored
//! key-encryption-key versions do not know.

use gatehouse_core::audit::Audited;
use gatehouse_core::store::PlatformKeyRecord;
use gatehouse_core::{Clock, StoreError};

use crate::Fixture;
use crate::cases::clock;

pub use through_the_keyring::keyring_refuses_a_wrong_master_key;

pub async fn second_factor_platform_keys_are_listed_and_rewrapped(f: &dyn Fixture) {
    let store = f.store();
    let clock = clock();
    let key = |version: u32, wrapped: u8| PlatformKeyRecord {
        version,
        wrapped: vec![wrapped; 60],
        kek_version: 1,
        created_at: clock.now(),
    };
    let (k1, k2) = (key(1, 0xa1), key(2, 0xa2));

    let mut tx = store.begin().await.unwrap();
    assert!(tx.platform_keys().await.unwrap().is_empty());
    tx.insert_platform_key(&k2).await.unwrap();
    tx.insert_platform_key(&k1).await.unwrap();
    tx.commit(Audited::for_tests()).await.unwrap();

    let mut tx = store.begin().await.unwrap();
    assert_eq!(
        tx.platform_keys().await.unwrap(),
        vec![k1.clone(), k2.clone()]
    );
    tx.rewrap_platform_key(1, &[0xb1; 60], 2).await.unwrap();
    tx.commit(Audited::for_tests()).await.unwrap();

    let mut tx = store.begin().await.unwrap();
    assert_eq!(
        tx.platform_keys().await.unwrap(),
        vec![
            PlatformKeyRecord {
                wrapped: vec![0xb1; 60],
                kek_version: 2,
                ..k1.clone()
            },
            k2.clone()
        ]
    );
    assert!(matches!(
        tx.insert_platform_key(&k1).await,
        Err(StoreError::Duplicate)
    ));
}

/// Through the keyring, with the keyring cases' clock and master keys.
mod through_the_keyring {
    use std::sync::Arc;

    use gatehouse_core::keyring::{Keyring, KeyringError, KeyringSettings};
    use gatehouse_core::store::Store;
    use gatehouse_crypto::Key32;

    use crate::cases::keyring::{K1, K2, clock, keyring};

    pub async fn keyring_refuses_a_wrong_master_key(store: Arc<dyn Store>) {
        let clock = clock();
        let k = keyring(&store, &clock, K1).await;
        assert_eq!(k.kek_version(), 1);
        let wrong = Keyring::start(
            Arc::clone(&store),
            clock.clone(),
            &Key32::from_bytes(K2),
            KeyringSettings::default(),
        )
        .await;
        let err = wrong.unwrap_err();
        assert_eq!(err, KeyringError::WrongMasterKey { known: vec![1] });
        assert!(err.to_string().contains("GATEHOUSE_MASTER_KEY"));
    }
}

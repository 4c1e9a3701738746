//! The contract of `KeyMaterialStore` (core's `store/key_material.rs`): platform data keys are
//! listed in version order and rewrapped, the keyring refuses a master key that the stored
//! key-encryption-key versions do not know, transactions that create keys take turns under the
//! key-material lock, and keyrings starting at once on a new store end with one set of keys.

use gatehouse_core::audit::Audited;
use gatehouse_core::store::PlatformKeyRecord;
use gatehouse_core::{Clock, StoreError};

use crate::Fixture;
use crate::cases::clock;

pub use through_the_keyring::{
    keyring_refuses_a_wrong_master_key,
    keyrings_started_at_once_on_a_new_store_share_one_set_of_keys,
};

/// A second transaction cannot get past `lock_key_material` while the first holding it is open.
pub async fn key_material_lock_makes_creators_take_turns(f: &dyn Fixture) {
    let store = f.store();
    let mut first = store.begin().await.unwrap();
    first.lock_key_material().await.unwrap();
    let (passed_tx, mut passed) = tokio::sync::oneshot::channel();
    let second = {
        let store = std::sync::Arc::clone(&store);
        tokio::spawn(async move {
            let mut tx = store.begin().await.unwrap();
            tx.lock_key_material().await.unwrap();
            let _ = passed_tx.send(());
            drop(tx);
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        passed.try_recv().is_err(),
        "the second transaction passed the lock while the first held it"
    );
    drop(first);
    tokio::time::timeout(std::time::Duration::from_secs(10), second)
        .await
        .expect("the second transaction never got the lock after the first ended")
        .unwrap();
}

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

    /// Three keyrings starting at the same moment on a new store (three instances' first start)
    /// all start, and every key exists once: none made one of its own beside the first's.
    pub async fn keyrings_started_at_once_on_a_new_store_share_one_set_of_keys(
        store: Arc<dyn Store>,
    ) {
        let clock = clock();
        let (a, b, c) = tokio::join!(
            keyring(&store, &clock, K1),
            keyring(&store, &clock, K1),
            keyring(&store, &clock, K1)
        );
        let (ta, tb, tc) = tokio::join!(a.token_keys(), b.token_keys(), c.token_keys());
        let versions = |keys: Vec<gatehouse_core::keyring::TokenKey>| -> Vec<u32> {
            keys.iter().map(|k| k.version).collect()
        };
        let (ta, tb, tc) = (
            versions(ta.unwrap()),
            versions(tb.unwrap()),
            versions(tc.unwrap()),
        );
        assert_eq!(ta.len(), 1);
        assert_eq!((&ta, &ta), (&tb, &tc));
        let mut tx = store.begin_read().await.unwrap();
        assert_eq!(tx.kek_versions().await.unwrap().len(), 1);
        assert_eq!(tx.platform_keys().await.unwrap().len(), 1);
        assert_eq!(tx.link_keys().await.unwrap().len(), 1);
        // One checkpoint key and one token key.
        let signing = tx.signing_keys().await.unwrap();
        assert_eq!(signing.len(), 2);
        drop(tx);
        // What one signs, the others verify: they hold the stored checkpoint key.
        let (version, signature) = a.sign_checkpoint(b"head").unwrap();
        for k in [&b, &c] {
            k.verify_checkpoint(&signing, version, b"head", &signature)
                .unwrap();
            assert_eq!(
                k.sign_checkpoint(b"head").unwrap(),
                (version, signature.clone())
            );
        }
    }
}

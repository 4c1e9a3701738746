//! The contract of `OrgKeyStore` (core's `store/org_keys.rs`): the transit floor is unset, then
//! set, then only raised, per organisation; an organisation key rotates at its encryption bound;
//! and shredding keys is per organisation.

use std::sync::Arc;

use gatehouse_core::StoreError;
use gatehouse_core::audit::Audited;
use gatehouse_core::store::Store;
use uuid::Uuid;

use crate::cases::secrets::{in_scope, secret, version};
use crate::cases::{clock, seed};

pub use through_the_keyring::{
    keyring_counter_rotates_at_its_bound, keyring_shredding_is_per_organisation,
};

pub async fn identity_second_factor_policy_is_per_organisation_and_reports_changes(
    store: Arc<dyn Store>,
) {
    use gatehouse_core::Clock as _;
    let clock = clock();
    let seeded = seed(store.as_ref(), &clock, 2).await;
    let (a, b) = (seeded[0].0, seeded[1].0);
    let mut tx = in_scope(store.as_ref(), a).await;
    assert!(!tx.requires_second_factor().await.unwrap());
    // Setting what is already so is no change (nothing to audit).
    assert!(
        !tx.set_requires_second_factor(false, clock.now())
            .await
            .unwrap()
    );
    assert!(
        tx.set_requires_second_factor(true, clock.now())
            .await
            .unwrap()
    );
    assert!(
        !tx.set_requires_second_factor(true, clock.now())
            .await
            .unwrap()
    );
    tx.commit(Audited::for_tests()).await.unwrap();

    let mut tx = in_scope(store.as_ref(), a).await;
    assert!(tx.requires_second_factor().await.unwrap());
    drop(tx);
    // Another organisation's setting is its own.
    let mut tx = in_scope(store.as_ref(), b).await;
    assert!(!tx.requires_second_factor().await.unwrap());
    drop(tx);
    let mut tx = in_scope(store.as_ref(), a).await;
    assert!(
        tx.set_requires_second_factor(false, clock.now())
            .await
            .unwrap()
    );
    tx.commit(Audited::for_tests()).await.unwrap();
    let mut tx = in_scope(store.as_ref(), a).await;
    assert!(!tx.requires_second_factor().await.unwrap());
}

pub async fn vault_transit_floor_is_unset_then_set_then_moved(store: Arc<dyn Store>) {
    let clock = clock();
    let seeded = seed(store.as_ref(), &clock, 2).await;
    let (a, b) = (seeded[0].0, seeded[1].0);
    let mut tx = in_scope(store.as_ref(), a).await;
    assert_eq!(tx.transit_floor().await.unwrap(), None);
    tx.set_transit_floor(1).await.unwrap();
    assert_eq!(tx.transit_floor().await.unwrap(), Some(1));
    tx.commit(Audited::for_tests()).await.unwrap();

    let mut tx = in_scope(store.as_ref(), a).await;
    assert_eq!(tx.transit_floor().await.unwrap(), Some(1));
    tx.set_transit_floor(4).await.unwrap();
    tx.commit(Audited::for_tests()).await.unwrap();
    let mut tx = in_scope(store.as_ref(), a).await;
    assert_eq!(tx.transit_floor().await.unwrap(), Some(4));
    // Never lowered, whatever a racing raise asks for.
    tx.set_transit_floor(3).await.unwrap();
    assert_eq!(tx.transit_floor().await.unwrap(), Some(4));
    drop(tx);

    // Another organisation's floor is its own.
    let mut tx = in_scope(store.as_ref(), b).await;
    assert_eq!(tx.transit_floor().await.unwrap(), None);
    tx.set_transit_floor(2).await.unwrap();
    tx.commit(Audited::for_tests()).await.unwrap();
    let mut tx = in_scope(store.as_ref(), a).await;
    assert_eq!(tx.transit_floor().await.unwrap(), Some(4));
    drop(tx);

    // A version the backend cannot hold is refused, never stored as another number.
    let mut tx = in_scope(store.as_ref(), b).await;
    match tx.set_transit_floor(u32::MAX).await {
        Ok(()) => assert_eq!(tx.transit_floor().await.unwrap(), Some(u32::MAX)),
        Err(e) => assert!(matches!(e, StoreError::Backend(_)), "{e:?}"),
    }
    drop(tx);
    let mut tx = in_scope(store.as_ref(), b).await;
    assert_eq!(tx.transit_floor().await.unwrap(), Some(2));
    drop(tx);

    let s = secret(&clock, a, "huge");
    let mut tx = in_scope(store.as_ref(), a).await;
    tx.insert_secret(&s).await.unwrap();
    tx.commit(Audited::for_tests()).await.unwrap();
    let mut tx = in_scope(store.as_ref(), a).await;
    let mut huge = s.clone();
    huge.id = Uuid::from_u128(7);
    huge.name = "huger".into();
    huge.current_version = u32::MAX;
    match tx.insert_secret(&huge).await {
        Ok(()) => assert_eq!(tx.secret(huge.id).await.unwrap(), Some(huge.clone())),
        Err(e) => assert!(matches!(e, StoreError::Backend(_)), "{e:?}"),
    }
    drop(tx);
    let mut tx = in_scope(store.as_ref(), a).await;
    match tx.add_secret_version(&version(&clock, &s, u32::MAX)).await {
        Ok(added) => assert!(!added, "u32::MAX is not the version after 1"),
        Err(e) => assert!(matches!(e, StoreError::Backend(_)), "{e:?}"),
    }
    drop(tx);
    let mut tx = in_scope(store.as_ref(), a).await;
    assert_eq!(tx.secret(s.id).await.unwrap().unwrap().current_version, 1);
}

/// Through the keyring, with the keyring cases' clock and master keys.
mod through_the_keyring {
    use std::sync::Arc;

    use gatehouse_core::keyring::{KeyringSettings, SealedKind};
    use gatehouse_core::store::Store;
    use gatehouse_core::{Error, TenantScope};

    use crate::cases::keyring::{K1, at, clock, keyring, keyring_with, new_org, open, seal};

    pub async fn keyring_shredding_is_per_organisation(store: Arc<dyn Store>) {
        let clock = clock();
        let k = keyring(&store, &clock, K1).await;
        let a = new_org(&store, &clock, 1).await;
        let b = new_org(&store, &clock, 2).await;
        for kind in SealedKind::ALL {
            seal(&k, &store, a, at(kind, "r"), b"a data").await;
            seal(&k, &store, b, at(kind, "r"), b"b data").await;
        }
        // Warm `k`'s key cache, then shred through another keyring (as the CLI beside a running
        // server would): `k` must stop opening A's values at once.
        assert_eq!(
            open(&k, &store, a, at(SealedKind::TotpSecret, "r"))
                .await
                .unwrap()
                .unwrap(),
            b"a data"
        );
        let other = keyring(&store, &clock, K1).await;
        assert!(other.shred(a).await.unwrap() >= 1);
        for kind in SealedKind::ALL {
            assert!(matches!(
                open(&k, &store, a, at(kind, "r")).await,
                Err(Error::KeysShredded)
            ));
            assert_eq!(
                open(&k, &store, b, at(kind, "r")).await.unwrap().unwrap(),
                b"b data"
            );
        }
        // A keyring that starts afresh cannot read them either.
        let fresh = keyring(&store, &clock, K1).await;
        assert!(matches!(
            open(&fresh, &store, a, at(SealedKind::TotpSecret, "r")).await,
            Err(Error::KeysShredded)
        ));
        let mut tx = store
            .begin_scoped(&TenantScope::for_tests(a))
            .await
            .unwrap();
        assert!(matches!(
            fresh
                .seal(tx.as_mut(), at(SealedKind::TotpSecret, "x"), b"x")
                .await,
            Err(Error::KeysShredded)
        ));
        drop(tx);
        let st = fresh.org_status(a).await.unwrap();
        assert!(st.shredded && st.versions.is_empty());
        assert!(!fresh.org_status(b).await.unwrap().shredded);
    }

    pub async fn keyring_counter_rotates_at_its_bound(store: Arc<dyn Store>) {
        let clock = clock();
        let k = keyring_with(
            &store,
            &clock,
            K1,
            KeyringSettings {
                max_encryptions_per_key: 3,
                ..KeyringSettings::default()
            },
        )
        .await;
        let a = new_org(&store, &clock, 1).await;
        for i in 0..3 {
            seal(
                &k,
                &store,
                a,
                at(SealedKind::TransitField, &format!("r{i}")),
                b"x",
            )
            .await;
        }
        let st = k.org_status(a).await.unwrap();
        assert_eq!(
            st.versions.len(),
            2,
            "the third encryption spent the budget of version 1"
        );
        assert_eq!(st.versions[0].encryptions, 3);
        seal(&k, &store, a, at(SealedKind::TransitField, "r3"), b"x").await;
        let st = k.org_status(a).await.unwrap();
        assert_eq!(
            (
                st.versions[1].version,
                st.versions[1].encryptions,
                st.versions[1].sealed_values
            ),
            (2, 1, 1)
        );
    }
}

//! The keyring over a real store, across roles: a master-key rotation rewraps the organisation keys
//! under a new key-encryption key (`KeyMaterialStore`, `OrgKeyStore`), and an organisation-key
//! rotation's resumable re-encryption moves every sealed value (`SealedFieldStore`). Also the
//! helpers the keyring cases of `key_material`, `org_keys` and `sealed_fields` share: their
//! clock, the master keys, an organisation, and sealing and opening a field in its scope.

use std::sync::Arc;

use gatehouse_core::audit::Audited;
use gatehouse_core::keyring::{FieldRef, Keyring, KeyringError, KeyringSettings, SealedKind};
use gatehouse_core::store::{KeyState, Store};
use gatehouse_core::{Clock, Error, FakeClock, OrgId, TenantScope};
use gatehouse_crypto::Key32;
use time::{Duration, OffsetDateTime};

use crate::data::{member, org, user};

pub(crate) fn clock() -> Arc<FakeClock> {
    Arc::new(FakeClock::at(
        OffsetDateTime::UNIX_EPOCH + Duration::days(20_600),
    ))
}

pub(crate) const K1: [u8; 32] = [0x11; 32];

pub(crate) const K2: [u8; 32] = [0x22; 32];

pub(crate) async fn keyring(
    store: &Arc<dyn Store>,
    clock: &Arc<FakeClock>,
    key: [u8; 32],
) -> Keyring {
    keyring_with(store, clock, key, KeyringSettings::default()).await
}

pub(crate) async fn keyring_with(
    store: &Arc<dyn Store>,
    clock: &Arc<FakeClock>,
    key: [u8; 32],
    settings: KeyringSettings,
) -> Keyring {
    Keyring::start(
        Arc::clone(store),
        clock.clone(),
        &Key32::from_bytes(key),
        settings,
    )
    .await
    .unwrap()
}

pub(crate) async fn new_org(store: &Arc<dyn Store>, clock: &FakeClock, n: usize) -> OrgId {
    let o = org(clock, &format!("keyring org {n}"));
    let u = user(clock, &format!("k{n}@example.com"));
    let mut tx = store.begin().await.unwrap();
    tx.insert_organization(&o).await.unwrap();
    tx.insert_user(&u).await.unwrap();
    let mut tx = tx.enter(&TenantScope::for_tests(o.id)).await.unwrap();
    tx.insert_membership(&member(
        o.id,
        u.id,
        gatehouse_core::store::Role::Owner,
        clock.now(),
    ))
    .await
    .unwrap();
    tx.commit(Audited::for_tests()).await.unwrap();
    o.id
}

pub(crate) fn at(kind: SealedKind, record: &str) -> FieldRef<'_> {
    FieldRef {
        kind,
        record_id: record,
        field: "value",
    }
}

pub(crate) async fn seal(
    k: &Keyring,
    store: &Arc<dyn Store>,
    org: OrgId,
    f: FieldRef<'_>,
    value: &[u8],
) {
    let mut tx = store
        .begin_scoped(&TenantScope::for_tests(org))
        .await
        .unwrap();
    k.seal(tx.as_mut(), f, value).await.unwrap();
    tx.commit(Audited::for_tests()).await.unwrap();
}

pub(crate) async fn open(
    k: &Keyring,
    store: &Arc<dyn Store>,
    org: OrgId,
    f: FieldRef<'_>,
) -> Result<Option<Vec<u8>>, Error> {
    let mut tx = store
        .begin_scoped(&TenantScope::for_tests(org))
        .await
        .unwrap();
    k.open(tx.as_mut(), f)
        .await
        .map(|o| o.map(|s| s.expose().to_vec()))
}

pub async fn keyring_rotations_keep_data_readable_and_resume(store: Arc<dyn Store>) {
    let clock = clock();
    let k1 = keyring(&store, &clock, K1).await;
    let a = new_org(&store, &clock, 1).await;
    let b = new_org(&store, &clock, 2).await;
    let records: Vec<String> = (0..7).map(|i| format!("rec-{i}")).collect();
    for r in &records {
        seal(
            &k1,
            &store,
            a,
            at(SealedKind::TransitField, r),
            r.as_bytes(),
        )
        .await;
        seal(
            &k1,
            &store,
            b,
            at(SealedKind::TransitField, r),
            r.as_bytes(),
        )
        .await;
    }

    // Master rotation: every data key rewrapped; the old master key is retired.
    assert_eq!(k1.rotate_master(&Key32::from_bytes(K2)).await.unwrap(), 2);
    let k2 = keyring(&store, &clock, K2).await;
    assert_eq!(k2.kek_version(), 2);
    let old = Keyring::start(
        Arc::clone(&store),
        clock.clone(),
        &Key32::from_bytes(K1),
        KeyringSettings::default(),
    )
    .await;
    assert_eq!(
        old.unwrap_err(),
        KeyringError::RetiredMasterKey { version: 1 }
    );
    for r in &records {
        assert_eq!(
            open(&k2, &store, a, at(SealedKind::TransitField, r))
                .await
                .unwrap()
                .unwrap(),
            r.as_bytes()
        );
    }

    // Organisation rotation: new writes use version 2; old values still open.
    assert_eq!(k2.rotate_org(a).await.unwrap(), 2);
    seal(&k2, &store, a, at(SealedKind::TransitField, "new"), b"new").await;
    let st = k2.org_status(a).await.unwrap();
    assert_eq!(st.pending_reencryption, 7);
    assert_eq!(
        st.versions
            .iter()
            .find(|v| v.version == 2)
            .unwrap()
            .sealed_values,
        1
    );
    for r in &records {
        assert_eq!(
            open(&k2, &store, a, at(SealedKind::TransitField, r))
                .await
                .unwrap()
                .unwrap(),
            r.as_bytes()
        );
    }

    // The job is cut off after one batch (as by a crash) ...
    let partial = k2.reencrypt_org(a, 3, Some(1)).await.unwrap();
    assert_eq!(
        (partial.moved, partial.remaining, partial.finished),
        (3, 4, false)
    );
    drop(k2);
    // ... and a restarted keyring finishes it.
    let k2 = keyring(&store, &clock, K2).await;
    let done = k2.reencrypt_org(a, 3, None).await.unwrap();
    assert_eq!(
        (
            done.moved,
            done.remaining,
            done.retired_versions,
            done.finished
        ),
        (4, 0, 1, true)
    );
    let st = k2.org_status(a).await.unwrap();
    assert_eq!(st.pending_reencryption, 0);
    let v1 = st.versions.iter().find(|v| v.version == 1).unwrap();
    assert_eq!((v1.state, v1.sealed_values), (KeyState::Retired, 0));
    for r in records.iter().chain(std::iter::once(&"new".to_owned())) {
        assert_eq!(
            open(&k2, &store, a, at(SealedKind::TransitField, r))
                .await
                .unwrap()
                .unwrap(),
            r.as_bytes()
        );
    }
    // B was not touched by A's rotation.
    assert_eq!(k2.org_status(b).await.unwrap().versions.len(), 1);
}

/// Link keys: the newest signs; after a rotation an older one verifies until the overlap after
/// its successor was made and not after; another keyring on the same store learns a version it
/// has not seen; a master-key rotation rewraps them so links keep verifying.
pub async fn keyring_link_keys_rotate_with_an_overlap_and_survive_a_master_rotation(
    store: Arc<dyn Store>,
) {
    let clock = clock();
    let settings = KeyringSettings {
        link_key_overlap: Duration::days(2),
        ..KeyringSettings::default()
    };
    let k = keyring_with(&store, &clock, K1, settings).await;
    let other = keyring_with(&store, &clock, K1, settings).await;
    let msg: [&[u8]; 2] = [b"label\0", b"body"];
    let (v1, t1) = k.link_tag(&msg).unwrap();
    assert!(k.link_verifies(v1, &msg, &t1).await);
    assert!(!k.link_verifies(v1, &[b"label\0", b"bodz"], &t1).await);
    assert!(
        !k.link_verifies(v1 + 7, &msg, &t1).await,
        "an unknown version"
    );
    let v2 = k.rotate_link_key().await.unwrap();
    assert_eq!(v2, v1 + 1);
    let (signed_with, t2) = k.link_tag(&msg).unwrap();
    assert_eq!(signed_with, v2);
    assert_ne!(t1, t2);
    // The other instance meets version 2 for the first time and looks it up (it looked a
    // moment ago, at start: at most once a second).
    assert!(!other.link_verifies(v2, &msg, &t2).await);
    clock.advance(Duration::seconds(1));
    assert!(other.link_verifies(v2, &msg, &t2).await);
    // Version 1 verifies during the overlap, not from its end.
    clock.advance(Duration::days(2) - Duration::seconds(2));
    assert!(k.link_verifies(v1, &msg, &t1).await);
    clock.advance(Duration::seconds(1));
    assert!(!k.link_verifies(v1, &msg, &t1).await);
    assert!(k.link_verifies(v2, &msg, &t2).await);
    k.rotate_master(&Key32::from_bytes(K2)).await.unwrap();
    let after = keyring_with(&store, &clock, K2, settings).await;
    assert!(after.link_verifies(v2, &msg, &t2).await);
    assert_eq!(after.link_tag(&msg).unwrap(), (v2, t2));
}

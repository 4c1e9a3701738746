//! The keyring over a real store: envelopes, rotation, re-encryption, shredding, the nonce budget.

use gatehouse_core::audit::Audited;
use std::sync::Arc;

use gatehouse_core::keyring::{FieldRef, Keyring, KeyringError, KeyringSettings, SealedKind};
use gatehouse_core::store::{KeyState, Store};
use gatehouse_core::{Clock, Error, FakeClock, OrgId, TenantScope};
use gatehouse_crypto::Key32;
use time::{Duration, OffsetDateTime};

use crate::data::{member, org, user};

fn clock() -> Arc<FakeClock> {
    Arc::new(FakeClock::at(
        OffsetDateTime::UNIX_EPOCH + Duration::days(20_600),
    ))
}

const K1: [u8; 32] = [0x11; 32];
const K2: [u8; 32] = [0x22; 32];

async fn keyring(store: &Arc<dyn Store>, clock: &Arc<FakeClock>, key: [u8; 32]) -> Keyring {
    keyring_with(store, clock, key, KeyringSettings::default()).await
}

async fn keyring_with(
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

async fn new_org(store: &Arc<dyn Store>, clock: &FakeClock, n: usize) -> OrgId {
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

fn at(kind: SealedKind, record: &str) -> FieldRef<'_> {
    FieldRef {
        kind,
        record_id: record,
        field: "value",
    }
}

async fn seal(k: &Keyring, store: &Arc<dyn Store>, org: OrgId, f: FieldRef<'_>, value: &[u8]) {
    let mut tx = store
        .begin_scoped(&TenantScope::for_tests(org))
        .await
        .unwrap();
    k.seal(tx.as_mut(), f, value).await.unwrap();
    tx.commit(Audited::for_tests()).await.unwrap();
}

async fn open(
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

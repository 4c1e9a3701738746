//! The contract of `SsoStore` and `SsoDirectory` (core's `store/sso.rs`): a configuration and
//! claimed domains belong to their organisation; a domain is verified by one organisation at
//! most, and only a verified domain is found outside a scope; external identities are found by
//! issuer and subject, unique, and listed per person; a session says how it began.

use std::sync::Arc;

use gatehouse_core::audit::Audited;
use gatehouse_core::store::{
    ExternalIdentityRecord, SessionRecord, SignedInWith, SsoConfigRecord, SsoDomainRecord, Store,
    Tier, external_identity_digest,
};
use gatehouse_core::{Clock, OrgId, StoreError, TenantScope};
use time::Duration;
use uuid::Uuid;

use crate::cases::secrets::in_scope;
use crate::cases::{clock, new_user, seed};

fn config(org: OrgId, clock: &dyn Clock, enforced: bool) -> SsoConfigRecord {
    SsoConfigRecord {
        org_id: org,
        issuer: "https://idp.acme.test".into(),
        client_id: "gatehouse".into(),
        scopes: "openid email profile".into(),
        default_role: "member".into(),
        enforced,
        created_at: clock.now(),
        updated_at: clock.now(),
    }
}

fn domain(org: OrgId, clock: &dyn Clock, name: &str) -> SsoDomainRecord {
    SsoDomainRecord {
        org_id: org,
        domain: name.into(),
        challenge: format!("challenge-for-{name}"),
        created_at: clock.now(),
        verified_at: None,
    }
}

pub async fn sso_configuration_is_the_organisations_own(store: Arc<dyn Store>) {
    let clock = clock();
    let seeded = seed(store.as_ref(), &clock, 2).await;
    let (a, b) = (seeded[0].0, seeded[1].0);
    let mut tx = in_scope(store.as_ref(), a).await;
    assert_eq!(tx.sso_config().await.unwrap(), None);
    // A configuration for another organisation is refused before any SQL.
    assert!(tx.put_sso_config(&config(b, &clock, false)).await.is_err());
    let first = config(a, &clock, false);
    tx.put_sso_config(&first).await.unwrap();
    tx.commit(Audited::for_tests()).await.unwrap();

    let mut tx = in_scope(store.as_ref(), a).await;
    assert_eq!(tx.sso_config().await.unwrap(), Some(first.clone()));
    drop(tx);
    let mut tx = in_scope(store.as_ref(), b).await;
    assert_eq!(tx.sso_config().await.unwrap(), None);
    assert!(!tx.delete_sso_config().await.unwrap());
    drop(tx);

    // Replacing keeps the creation time and changes the rest.
    clock.advance(Duration::seconds(5));
    let changed = SsoConfigRecord {
        issuer: "https://login.acme.test/tenant".into(),
        client_id: "gh-2".into(),
        scopes: "openid email".into(),
        default_role: "viewer".into(),
        enforced: true,
        created_at: clock.now(),
        updated_at: clock.now(),
        ..first.clone()
    };
    let mut tx = in_scope(store.as_ref(), a).await;
    tx.put_sso_config(&changed).await.unwrap();
    tx.commit(Audited::for_tests()).await.unwrap();
    let mut tx = in_scope(store.as_ref(), a).await;
    assert_eq!(
        tx.sso_config().await.unwrap(),
        Some(SsoConfigRecord {
            created_at: first.created_at,
            ..changed
        })
    );
    assert!(tx.delete_sso_config().await.unwrap());
    tx.commit(Audited::for_tests()).await.unwrap();
    let mut tx = in_scope(store.as_ref(), a).await;
    assert_eq!(tx.sso_config().await.unwrap(), None);
}

pub async fn sso_a_domain_is_verified_by_one_organisation_and_found_only_once_verified(
    store: Arc<dyn Store>,
) {
    let clock = clock();
    let seeded = seed(store.as_ref(), &clock, 3).await;
    let (a, b, c) = (seeded[0].0, seeded[1].0, seeded[2].0);
    // Both claim acme.test; a claims it twice.
    let mut tx = in_scope(store.as_ref(), a).await;
    tx.insert_sso_domain(&domain(a, &clock, "acme.test"))
        .await
        .unwrap();
    tx.commit(Audited::for_tests()).await.unwrap();
    let mut tx = in_scope(store.as_ref(), a).await;
    assert!(matches!(
        tx.insert_sso_domain(&domain(a, &clock, "acme.test")).await,
        Err(StoreError::Duplicate)
    ));
    drop(tx);
    let mut tx = in_scope(store.as_ref(), a).await;
    tx.insert_sso_domain(&domain(a, &clock, "beta.test"))
        .await
        .unwrap();
    assert!(
        tx.insert_sso_domain(&domain(b, &clock, "gamma.test"))
            .await
            .is_err()
    );
    tx.commit(Audited::for_tests()).await.unwrap();
    let mut tx = in_scope(store.as_ref(), b).await;
    tx.insert_sso_domain(&domain(b, &clock, "acme.test"))
        .await
        .unwrap();
    tx.commit(Audited::for_tests()).await.unwrap();

    // Claimed is not verified: no organisation is found for it.
    let mut tx = store.begin_read().await.unwrap();
    assert_eq!(tx.org_of_verified_domain("acme.test").await.unwrap(), None);
    drop(tx);

    let at = clock.now();
    let mut tx = in_scope(store.as_ref(), a).await;
    assert!(tx.verify_sso_domain("acme.test", at).await.unwrap());
    assert!(!tx.verify_sso_domain("acme.test", at).await.unwrap());
    // A domain never claimed is not verified by asking.
    assert!(!tx.verify_sso_domain("never.test", at).await.unwrap());
    tx.commit(Audited::for_tests()).await.unwrap();

    // The second organisation cannot verify it now.
    let mut tx = in_scope(store.as_ref(), b).await;
    assert!(matches!(
        tx.verify_sso_domain("acme.test", at).await,
        Err(StoreError::Duplicate)
    ));
    drop(tx);

    let mut tx = store.begin_read().await.unwrap();
    assert_eq!(
        tx.org_of_verified_domain("acme.test").await.unwrap(),
        Some(a)
    );
    assert_eq!(tx.org_of_verified_domain("beta.test").await.unwrap(), None);
    drop(tx);

    // Each organisation lists its own claims, by name, with their state.
    let mut tx = in_scope(store.as_ref(), a).await;
    let mine = tx.sso_domains().await.unwrap();
    assert_eq!(
        mine.iter()
            .map(|d| (d.domain.as_str(), d.verified_at))
            .collect::<Vec<_>>(),
        vec![("acme.test", Some(at)), ("beta.test", None)]
    );
    assert_eq!(
        tx.sso_domain("acme.test").await.unwrap().unwrap().challenge,
        "challenge-for-acme.test"
    );
    drop(tx);
    let mut tx = in_scope(store.as_ref(), b).await;
    let theirs = tx.sso_domains().await.unwrap();
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0].org_id, b);
    assert_eq!(theirs[0].verified_at, None);
    drop(tx);
    let mut tx = in_scope(store.as_ref(), c).await;
    assert!(tx.sso_domains().await.unwrap().is_empty());
    assert_eq!(tx.sso_domain("acme.test").await.unwrap(), None);
    assert!(!tx.delete_sso_domain("acme.test").await.unwrap());
    drop(tx);

    // Given up, the domain may be verified by the other organisation.
    let mut tx = in_scope(store.as_ref(), a).await;
    assert!(tx.delete_sso_domain("acme.test").await.unwrap());
    tx.commit(Audited::for_tests()).await.unwrap();
    let mut tx = in_scope(store.as_ref(), b).await;
    assert!(tx.verify_sso_domain("acme.test", at).await.unwrap());
    tx.commit(Audited::for_tests()).await.unwrap();
    let mut tx = store.begin_read().await.unwrap();
    assert_eq!(
        tx.org_of_verified_domain("acme.test").await.unwrap(),
        Some(b)
    );
}

pub async fn sso_external_identities_are_unique_and_listed_per_person(store: Arc<dyn Store>) {
    let clock = clock();
    let seeded = seed(store.as_ref(), &clock, 2).await;
    let org = seeded[0].0;
    let ada = new_user(store.as_ref(), &clock, "ada@acme.test").await;
    let bob = new_user(store.as_ref(), &clock, "bob@acme.test").await;
    let link = |issuer: &str, subject: &str, user, by| ExternalIdentityRecord {
        issuer: issuer.into(),
        subject: subject.into(),
        user_id: user,
        linked_by: by,
        created_at: clock.now(),
    };
    let ada_idp = link("https://idp.acme.test", "248289761001", ada.id, Some(org));
    let mut tx = store.begin().await.unwrap();
    tx.insert_external_identity(&ada_idp).await.unwrap();
    tx.commit(Audited::for_tests()).await.unwrap();
    clock.advance(Duration::seconds(1));
    // The same subject at another issuer is another identity; a platform provider links none.
    let ada_social = link("https://accounts.example", "248289761001", ada.id, None);
    let bob_idp = link("https://idp.acme.test", "bob-1", bob.id, Some(org));
    let mut tx = store.begin().await.unwrap();
    tx.insert_external_identity(&ada_social).await.unwrap();
    tx.insert_external_identity(&bob_idp).await.unwrap();
    // One issuer and subject cannot be linked twice, to anyone.
    assert!(matches!(
        tx.insert_external_identity(&link("https://idp.acme.test", "248289761001", bob.id, None))
            .await,
        Err(StoreError::Duplicate)
    ));
    drop(tx);
    let mut tx = store.begin().await.unwrap();
    tx.insert_external_identity(&ada_social).await.unwrap();
    tx.insert_external_identity(&bob_idp).await.unwrap();
    tx.commit(Audited::for_tests()).await.unwrap();

    let mut tx = store.begin_read().await.unwrap();
    assert_eq!(
        tx.external_identity("https://idp.acme.test", "248289761001")
            .await
            .unwrap(),
        Some(ada_idp.clone())
    );
    // Issuer and subject are compared exactly: no trailing slash, no case folding, no
    // concatenation that could make two pairs one.
    for (issuer, subject) in [
        ("https://idp.acme.test/", "248289761001"),
        ("https://IDP.acme.test", "248289761001"),
        ("https://idp.acme.test2", "48289761001"),
        ("https://idp.acme.test", "248289761001 "),
    ] {
        assert_eq!(
            tx.external_identity(issuer, subject).await.unwrap(),
            None,
            "{issuer} {subject}"
        );
    }
    assert_eq!(
        tx.external_identities_of(ada.id).await.unwrap(),
        vec![ada_idp, ada_social.clone()]
    );
    assert_eq!(
        tx.external_identities_of(bob.id).await.unwrap(),
        vec![bob_idp.clone()]
    );
    drop(tx);

    // The organisation's links of a person end (their membership did): only those it made, of
    // that person; another organisation's scope removes none of them.
    let other = seeded[1].0;
    let mut tx = in_scope(store.as_ref(), other).await;
    assert_eq!(tx.delete_links_made_here(Some(ada.id)).await.unwrap(), 0);
    drop(tx);
    let mut tx = in_scope(store.as_ref(), org).await;
    assert_eq!(tx.delete_links_made_here(Some(ada.id)).await.unwrap(), 1);
    tx.commit(Audited::for_tests()).await.unwrap();
    // A person ends one of their own by its digest; not someone else's.
    let social = external_identity_digest(&ada_social.issuer, &ada_social.subject);
    let mut tx = store.begin().await.unwrap();
    assert!(!tx.delete_external_identity(bob.id, &social).await.unwrap());
    assert!(tx.delete_external_identity(ada.id, &social).await.unwrap());
    tx.commit(Audited::for_tests()).await.unwrap();
    let mut tx = store.begin_read().await.unwrap();
    assert!(tx.external_identities_of(ada.id).await.unwrap().is_empty());
    assert_eq!(
        tx.external_identities_of(bob.id).await.unwrap(),
        vec![bob_idp]
    );
}

/// Every link an organisation's sign-on made ends in one statement, however many people it
/// linked; another organisation's links and a platform provider's stay.
pub async fn sso_an_organisations_links_end_together(store: Arc<dyn Store>) {
    let clock = clock();
    let seeded = seed(store.as_ref(), &clock, 2).await;
    let (a, b) = (seeded[0].0, seeded[1].0);
    let mut people = Vec::new();
    for n in 0..7 {
        people.push(new_user(store.as_ref(), &clock, &format!("p{n}@acme.test")).await);
    }
    let mut tx = store.begin().await.unwrap();
    for (n, p) in people.iter().enumerate() {
        let by = match n {
            5 => Some(b),
            6 => None,
            _ => Some(a),
        };
        tx.insert_external_identity(&ExternalIdentityRecord {
            issuer: "https://idp.acme.test".into(),
            subject: format!("s{n}"),
            user_id: p.id,
            linked_by: by,
            created_at: clock.now(),
        })
        .await
        .unwrap();
    }
    tx.commit(Audited::for_tests()).await.unwrap();
    // One person's: only theirs.
    let mut tx = in_scope(store.as_ref(), a).await;
    assert_eq!(
        tx.delete_links_made_here(Some(people[0].id)).await.unwrap(),
        1
    );
    assert_eq!(
        tx.delete_links_made_here(Some(people[5].id)).await.unwrap(),
        0
    );
    tx.commit(Audited::for_tests()).await.unwrap();
    // All of A's, and nothing else.
    let mut tx = in_scope(store.as_ref(), a).await;
    assert_eq!(tx.delete_links_made_here(None).await.unwrap(), 4);
    tx.commit(Audited::for_tests()).await.unwrap();
    let mut tx = store.begin_read().await.unwrap();
    for (n, p) in people.iter().enumerate() {
        let left = tx.external_identities_of(p.id).await.unwrap().len();
        assert_eq!(left, usize::from(n >= 5), "person {n}");
    }
    drop(tx);
    let mut tx = in_scope(store.as_ref(), b).await;
    assert_eq!(tx.delete_links_made_here(None).await.unwrap(), 1);
    tx.commit(Audited::for_tests()).await.unwrap();
    let mut tx = store.begin_read().await.unwrap();
    assert_eq!(
        tx.external_identities_of(people[5].id).await.unwrap().len(),
        0
    );
    assert_eq!(
        tx.external_identities_of(people[6].id).await.unwrap().len(),
        1
    );
}

pub async fn sso_a_session_says_how_it_began(store: Arc<dyn Store>) {
    let clock = clock();
    let seeded = seed(store.as_ref(), &clock, 1).await;
    let (org, owner) = seeded[0];
    let now = clock.now();
    let session = |via| SessionRecord {
        id: gatehouse_core::ids::new_uuid(&clock),
        subject_id: owner.as_uuid(),
        tier: Tier::Customer,
        org_id: Some(org),
        impersonator_id: None,
        reason: None,
        device_name: "laptop".into(),
        user_agent: None,
        ip: None,
        refresh_hash: Uuid::from_u128(7).as_bytes().to_vec(),
        previous_refresh_hash: None,
        created_at: now,
        last_seen_at: now,
        expires_at: now + Duration::days(1),
        revoked_at: None,
        auth_at: now,
        mfa_at: None,
        signed_in_with: via,
    };
    let all = [
        session(SignedInWith::Password),
        session(SignedInWith::Sso(org)),
        session(SignedInWith::Social),
    ];
    let mut tx = store.begin().await.unwrap();
    for s in &all {
        tx.insert_session(s).await.unwrap();
    }
    tx.commit(Audited::for_tests()).await.unwrap();
    let mut tx = store.begin_read().await.unwrap();
    for s in &all {
        assert_eq!(tx.session(s.id).await.unwrap().as_ref(), Some(s));
    }
    drop(tx);
    // An organisation's erasure leaves nothing of its sign-on behind.
    let mut tx = in_scope(store.as_ref(), org).await;
    tx.put_sso_config(&config(org, &clock, true)).await.unwrap();
    tx.insert_sso_domain(&domain(org, &clock, "acme.test"))
        .await
        .unwrap();
    tx.commit(Audited::for_tests()).await.unwrap();
    let mut tx = store
        .begin_scoped(&TenantScope::for_tests(org))
        .await
        .unwrap();
    tx.erase_organization().await.unwrap();
    tx.commit(Audited::for_tests()).await.unwrap();
    let mut tx = in_scope(store.as_ref(), org).await;
    assert_eq!(tx.sso_config().await.unwrap(), None);
    assert!(tx.sso_domains().await.unwrap().is_empty());
}

/// The sessions an organisation's sign-on began end together, in one statement, whoever's: each
/// answered with its expiry, once; its password and platform-provider sessions, expired ones
/// and another organisation's sign-on's stay as they were.
pub async fn sso_the_sessions_an_organisations_sign_on_began_end_together(store: Arc<dyn Store>) {
    let clock = clock();
    let seeded = seed(store.as_ref(), &clock, 2).await;
    let ((a, ada), (b, bea)) = (seeded[0], seeded[1]);
    let carol = new_user(store.as_ref(), &clock, "carol@acme.test").await;
    let now = clock.now();
    let session = |org: OrgId, who: Uuid, via, expires_at| SessionRecord {
        id: gatehouse_core::ids::new_uuid(&clock),
        subject_id: who,
        tier: Tier::Customer,
        org_id: Some(org),
        impersonator_id: None,
        reason: None,
        device_name: "laptop".into(),
        user_agent: None,
        ip: None,
        refresh_hash: gatehouse_core::ids::new_uuid(&clock).as_bytes().to_vec(),
        previous_refresh_hash: None,
        created_at: now,
        last_seen_at: now,
        expires_at,
        revoked_at: None,
        auth_at: now,
        mfa_at: None,
        signed_in_with: via,
    };
    let live = now + Duration::days(1);
    let ended = [
        session(a, ada.as_uuid(), SignedInWith::Sso(a), live),
        session(a, carol.id.as_uuid(), SignedInWith::Sso(a), live),
    ];
    let kept = [
        session(a, ada.as_uuid(), SignedInWith::Password, live),
        session(a, ada.as_uuid(), SignedInWith::Social, live),
        session(
            a,
            carol.id.as_uuid(),
            SignedInWith::Sso(a),
            now - Duration::seconds(1),
        ),
        session(b, bea.as_uuid(), SignedInWith::Sso(b), live),
    ];
    let mut tx = store.begin().await.unwrap();
    for s in ended.iter().chain(&kept) {
        tx.insert_session(s).await.unwrap();
    }
    tx.commit(Audited::for_tests()).await.unwrap();

    let mut tx = in_scope(store.as_ref(), a).await;
    let mut got = tx.revoke_sessions_begun_here(now).await.unwrap();
    got.sort();
    let mut want: Vec<_> = ended.iter().map(|s| (s.id, s.expires_at)).collect();
    want.sort();
    assert_eq!(got, want);
    assert!(
        tx.revoke_sessions_begun_here(now).await.unwrap().is_empty(),
        "already ended"
    );
    tx.commit(Audited::for_tests()).await.unwrap();
    let mut tx = store.begin_read().await.unwrap();
    for s in &ended {
        assert_eq!(
            tx.session(s.id).await.unwrap().unwrap().revoked_at,
            Some(now)
        );
    }
    for s in &kept {
        assert_eq!(tx.session(s.id).await.unwrap().as_ref(), Some(s));
    }
}

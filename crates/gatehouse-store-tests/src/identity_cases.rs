//! Identity storage and the identity service over a real store: sessions, cross-organisation
//! membership lookups, custom roles, invitations, owners, and sign-in with revocation.

use std::sync::Arc;

use gatehouse_core::audit::Audited;
use gatehouse_core::identity::{Audience, IssuedSession, LoginInput, LoginOutcome};
use gatehouse_core::keyring::{Keyring, KeyringSettings};
use gatehouse_core::password_pool::PasswordPool;
use gatehouse_core::signup::SignupInput;
use gatehouse_core::store::{
    CustomRoleRecord, InvitationRecord, OperatorRecord, Role, SessionRecord, Store, Tier,
};
use gatehouse_core::{
    Clock, Error, FakeClock, Kernel, KeySource, RequestContext, StoreError, TenantScope,
};
use gatehouse_crypto::{Argon2Params, Key32, SecretString};
use time::Duration;
use uuid::Uuid;

use crate::cases::{clock, seed};
use crate::data::member;

fn session(clock: &FakeClock, subject: Uuid, hash: &[u8]) -> SessionRecord {
    let now = clock.now();
    SessionRecord {
        id: gatehouse_core::ids::new_uuid(clock),
        subject_id: subject,
        tier: Tier::Customer,
        org_id: None,
        impersonator_id: None,
        reason: None,
        device_name: "laptop".into(),
        user_agent: Some("test/1".into()),
        ip: Some("192.0.2.1".into()),
        refresh_hash: hash.to_vec(),
        previous_refresh_hash: None,
        created_at: now,
        last_seen_at: now,
        expires_at: now + Duration::days(7),
        revoked_at: None,
        auth_at: now,
        mfa_at: None,
    }
}

pub async fn identity_sessions_rotate_once_and_revoke(store: Arc<dyn Store>) {
    let clock = clock();
    let subject = Uuid::from_u128(7);
    let a = session(&clock, subject, b"r1");
    let b = session(&clock, subject, b"r2");
    let c = session(&clock, subject, b"r3");
    let mut tx = store.begin().await.unwrap();
    for s in [&a, &b, &c] {
        tx.insert_session(s).await.unwrap();
    }
    tx.commit(Audited::for_tests()).await.unwrap();

    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.session(a.id).await.unwrap(), Some(a.clone()));
    let now = clock.now();
    assert!(tx.rotate_refresh(a.id, b"r1", b"r1b", now).await.unwrap());
    // The old digest no longer matches: a second rotation with it fails.
    assert!(!tx.rotate_refresh(a.id, b"r1", b"r1c", now).await.unwrap());
    assert!(tx.revoke_session(b.id, now).await.unwrap());
    assert!(!tx.revoke_session(b.id, now).await.unwrap());
    assert!(!tx.rotate_refresh(b.id, b"r2", b"x", now).await.unwrap());
    let live: Vec<Uuid> = tx
        .live_sessions_of(subject, now)
        .await
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(live.len(), 2);
    assert!(!live.contains(&b.id));
    let revoked = tx
        .revoke_sessions_of(subject, Some(a.id), now)
        .await
        .unwrap();
    assert_eq!(revoked, vec![c.id]);
    tx.commit(Audited::for_tests()).await.unwrap();

    let later = now + Duration::minutes(5);
    store.touch_sessions(&[(a.id, later)]).await.unwrap();
    let mut tx = store.begin().await.unwrap();
    let a2 = tx.session(a.id).await.unwrap().unwrap();
    assert_eq!(a2.last_seen_at, later);
    assert_eq!(a2.refresh_hash, b"r1b".to_vec());
    assert_eq!(a2.previous_refresh_hash, Some(b"r1".to_vec()));
    assert!(
        tx.session(c.id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );
    // Expired sessions are not live.
    assert!(
        tx.live_sessions_of(subject, now + Duration::days(8))
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn identity_memberships_of_a_user_span_organisations_and_only_theirs(
    store: Arc<dyn Store>,
) {
    let clock = clock();
    let seeded = seed(store.as_ref(), &clock, 3).await;
    let ((a, owner_a), (b, owner_b), (c, _)) = (seeded[0], seeded[1], seeded[2]);
    // owner_a also joins b as a viewer.
    let mut tx = store
        .begin_scoped(&TenantScope::for_tests(b))
        .await
        .unwrap();
    tx.insert_membership(&member(b, owner_a, Role::Viewer, clock.now()))
        .await
        .unwrap();
    tx.commit(Audited::for_tests()).await.unwrap();

    let mut tx = store.begin().await.unwrap();
    let mine = tx.memberships_of_user(owner_a).await.unwrap();
    let orgs: Vec<_> = mine.iter().map(|m| (m.org_id, m.role.clone())).collect();
    assert_eq!(orgs, vec![(a, Role::Owner), (b, Role::Viewer)]);
    assert!(mine.iter().all(|m| m.user_id == owner_a));
    assert!(
        !mine.iter().any(|m| m.org_id == c),
        "another organisation's row leaked"
    );
    let theirs = tx.memberships_of_user(owner_b).await.unwrap();
    assert_eq!(theirs.len(), 1);
    // Entering a scope after the lookup still confines tenant reads to that scope.
    let mut tx = tx.enter(&TenantScope::for_tests(a)).await.unwrap();
    assert!(tx.membership(owner_b).await.unwrap().is_none());
}

pub async fn identity_roles_invitations_and_owners_are_scoped(store: Arc<dyn Store>) {
    let clock = clock();
    let seeded = seed(store.as_ref(), &clock, 2).await;
    let ((a, owner_a), (b, _)) = (seeded[0], seeded[1]);
    let role = CustomRoleRecord {
        org_id: a,
        name: "auditor".into(),
        permissions: vec!["org.read".into(), "audit.read".into()],
        created_at: clock.now(),
    };
    let invitation = InvitationRecord {
        id: gatehouse_core::ids::new_uuid(&clock),
        org_id: a,
        email: "new@example.com".into(),
        role: "auditor".into(),
        token_hash: vec![9; 32],
        invited_by: owner_a,
        created_at: clock.now(),
        expires_at: clock.now() + Duration::days(1),
        accepted_at: None,
    };
    let mut tx = store
        .begin_scoped(&TenantScope::for_tests(a))
        .await
        .unwrap();
    tx.insert_custom_role(&role).await.unwrap();
    tx.commit(Audited::for_tests()).await.unwrap();
    // (A failed statement ends a PostgreSQL transaction: the duplicate gets its own.)
    let mut tx = store
        .begin_scoped(&TenantScope::for_tests(a))
        .await
        .unwrap();
    assert!(matches!(
        tx.insert_custom_role(&role).await,
        Err(StoreError::Duplicate)
    ));
    drop(tx);
    let mut tx = store
        .begin_scoped(&TenantScope::for_tests(a))
        .await
        .unwrap();
    tx.insert_invitation(&invitation).await.unwrap();
    assert_eq!(tx.custom_role("auditor").await.unwrap(), Some(role.clone()));
    assert_eq!(tx.lock_owners().await.unwrap(), vec![owner_a]);
    assert!(tx.set_member_role(owner_a, &Role::Admin).await.unwrap());
    assert!(tx.lock_owners().await.unwrap().is_empty());
    tx.commit(Audited::for_tests()).await.unwrap();

    // Organisation b sees none of it, and cannot write a's rows.
    let mut tx = store
        .begin_scoped(&TenantScope::for_tests(b))
        .await
        .unwrap();
    assert!(tx.custom_roles().await.unwrap().is_empty());
    assert!(tx.invitation_by_token(&[9; 32]).await.unwrap().is_none());
    assert!(
        !tx.accept_invitation(invitation.id, clock.now())
            .await
            .unwrap()
    );
    assert!(!tx.set_member_role(owner_a, &Role::Owner).await.unwrap());
    assert!(!tx.delete_membership(owner_a).await.unwrap());
    assert!(tx.insert_custom_role(&role).await.is_err());
    drop(tx);

    let mut tx = store
        .begin_scoped(&TenantScope::for_tests(a))
        .await
        .unwrap();
    let found = tx.invitation_by_token(&[9; 32]).await.unwrap().unwrap();
    assert_eq!(found, invitation);
    assert!(
        tx.accept_invitation(invitation.id, clock.now())
            .await
            .unwrap()
    );
    assert!(
        !tx.accept_invitation(invitation.id, clock.now())
            .await
            .unwrap()
    );
    assert_eq!(
        tx.membership(owner_a).await.unwrap().unwrap().role,
        Role::Admin
    );
    assert!(tx.delete_membership(owner_a).await.unwrap());
    assert!(tx.membership(owner_a).await.unwrap().is_none());
}

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

/// Sign-in, per-request authentication and instant revocation through the kernel, on this store.
pub async fn identity_revoked_sessions_are_refused_on_the_next_request(store: Arc<dyn Store>) {
    let clock = Arc::new(clock());
    let keyring = Keyring::start(
        Arc::clone(&store),
        clock.clone(),
        &Key32::from_bytes([0x33; 32]),
        KeyringSettings::default(),
    )
    .await
    .unwrap();
    let passwords = PasswordPool::start(2, 16, Argon2Params::MINIMUM).unwrap();
    let kernel = Kernel::new(
        Arc::clone(&store),
        clock.clone(),
        passwords,
        Arc::new(keyring),
        KeySource::Environment,
    );
    let request = RequestContext::default();
    let password = "plum-orbit-cask-47";
    kernel
        .signup(
            SignupInput {
                email: "ada@example.com".into(),
                password: SecretString::from(password.to_owned()),
                name: "Ada".into(),
                organization_name: "Engines".into(),
            },
            &request,
        )
        .await
        .unwrap();
    let login = |device: &str| LoginInput {
        email: "ada@example.com".into(),
        password: SecretString::from(password.to_owned()),
        device_name: Some(device.to_owned()),
        organization_id: None,
        browser: false,
    };
    let signed_in = |outcome: LoginOutcome| -> IssuedSession {
        match outcome {
            LoginOutcome::Session(s) => s,
            LoginOutcome::MfaRequired { .. } => panic!("no second factor was enrolled"),
        }
    };
    let a = signed_in(kernel.login(login("a"), &request).await.unwrap());
    let b = signed_in(kernel.login(login("b"), &request).await.unwrap());
    let pa = kernel
        .authenticate(a.access_token.expose(), Audience::Tenant)
        .await
        .unwrap();
    kernel
        .authenticate(b.access_token.expose(), Audience::Tenant)
        .await
        .unwrap();
    kernel
        .revoke_session(&pa, b.session_id, &request)
        .await
        .unwrap();
    assert!(matches!(
        kernel
            .authenticate(b.access_token.expose(), Audience::Tenant)
            .await,
        Err(Error::Unauthenticated(_))
    ));
    kernel
        .authenticate(a.access_token.expose(), Audience::Tenant)
        .await
        .unwrap();
    // Refresh reuse ends session A.
    let spent = a.refresh_token.unwrap();
    kernel.refresh(&spent, false, &request).await.unwrap();
    assert!(kernel.refresh(&spent, false, &request).await.is_err());
    assert!(
        kernel
            .authenticate(a.access_token.expose(), Audience::Tenant)
            .await
            .is_err()
    );
    // A wrong password and an unknown email: the same error.
    let mut wrong = login("c");
    wrong.password = SecretString::from("not-the-password-9".to_owned());
    let mut unknown = login("d");
    unknown.email = "nobody@example.com".into();
    for attempt in [wrong, unknown] {
        assert!(matches!(
            kernel.login(attempt, &request).await,
            Err(Error::InvalidCredentials)
        ));
    }
}

pub async fn identity_api_keys_are_found_by_digest_and_scoped(store: Arc<dyn Store>) {
    let clock = clock();
    let seeded = seed(store.as_ref(), &clock, 2).await;
    let ((a, _), (b, _)) = (seeded[0], seeded[1]);
    let key = gatehouse_core::store::ApiKeyRecord {
        id: gatehouse_core::ids::new_uuid(&clock),
        org_id: a,
        name: "ci".into(),
        prefix: "gk_live_abcd".into(),
        last4: "wxyz".into(),
        digest: vec![7; 32],
        permissions: vec!["audit.read".into()],
        namespace: Some("billing".into()),
        rate_limit: Some(600),
        created_by: "someone".into(),
        created_at: clock.now(),
        expires_at: None,
        revoked_at: None,
        last_used_at: None,
    };
    let mut tx = store
        .begin_scoped(&TenantScope::for_tests(a))
        .await
        .unwrap();
    tx.insert_api_key(&key).await.unwrap();
    tx.commit(Audited::for_tests()).await.unwrap();

    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.api_key_owner(&[7; 32]).await.unwrap(), Some((a, key.id)));
    assert_eq!(tx.api_key_owner(&[8; 32]).await.unwrap(), None);
    let mut tx = tx.enter(&TenantScope::for_tests(a)).await.unwrap();
    assert_eq!(tx.api_key(key.id).await.unwrap(), Some(key.clone()));
    let page = tx
        .list_api_keys(gatehouse_core::PageRequest::parse(None, None).unwrap())
        .await
        .unwrap();
    assert_eq!(page.items, vec![key.clone()]);
    let later = clock.now() + Duration::minutes(1);
    assert!(tx.set_api_key_expiry(key.id, later).await.unwrap());
    assert!(tx.revoke_api_key(key.id, clock.now()).await.unwrap());
    assert!(!tx.revoke_api_key(key.id, clock.now()).await.unwrap());
    tx.commit(Audited::for_tests()).await.unwrap();

    store.touch_api_keys(&[(a, key.id, later)]).await.unwrap();
    // Organisation b sees none of it.
    let mut tx = store
        .begin_scoped(&TenantScope::for_tests(b))
        .await
        .unwrap();
    assert!(tx.api_key(key.id).await.unwrap().is_none());
    assert!(!tx.revoke_api_key(key.id, clock.now()).await.unwrap());
    assert!(
        tx.list_api_keys(gatehouse_core::PageRequest::parse(None, None).unwrap())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    drop(tx);
    let mut tx = store
        .begin_scoped(&TenantScope::for_tests(a))
        .await
        .unwrap();
    let stored = tx.api_key(key.id).await.unwrap().unwrap();
    assert_eq!(stored.expires_at, Some(later));
    assert_eq!(stored.last_used_at, Some(later));
    assert!(stored.revoked_at.is_some());
}

//! The contract of `SessionStore` (core's `store/sessions.rs`): a refresh token rotates once,
//! sessions revoke one by one or all but one, a revoked session is refused on the next request
//! (sign-in, authentication and revocation through the kernel), and fresh-authentication times
//! are recorded on live sessions only.

use std::sync::Arc;

use gatehouse_core::audit::Audited;
use gatehouse_core::identity::{Audience, IssuedSession, LoginInput, LoginOutcome};
use gatehouse_core::keyring::{Keyring, KeyringSettings};
use gatehouse_core::password_pool::PasswordPool;
use gatehouse_core::signup::SignupInput;
use gatehouse_core::store::{SessionRecord, Store, Tier};
use gatehouse_core::{AccountCall, Clock, Error, FakeClock, Kernel, KeySource, RequestContext};
use gatehouse_crypto::{Argon2Params, Key32, SecretString};
use time::Duration;
use uuid::Uuid;

use crate::cases::clock;

pub use auth_times::second_factor_session_auth_is_recorded_on_live_sessions_only;

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
        signed_in_with: gatehouse_core::store::SignedInWith::Password,
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

/// An admin's ending of a member's sessions in one organisation (ASVS 7.4.2): one statement
/// revokes the live ones for that organisation, however many, and answers each id with its
/// expiry; the member's sessions elsewhere, expired ones and other people's stay as they were.
/// The time is noted on that membership alone, and read back by both ways memberships are read.
pub async fn identity_a_members_sessions_in_one_organisation_end_at_once(store: Arc<dyn Store>) {
    use gatehouse_core::TenantScope;
    use gatehouse_core::store::Role;

    let clock = clock();
    let seeded = crate::cases::seed(store.as_ref(), &clock, 2).await;
    let ((a, ada), (b, bob)) = (seeded[0], seeded[1]);
    let mut tx = store
        .begin_scoped(&TenantScope::for_tests(b))
        .await
        .unwrap();
    tx.insert_membership(&crate::data::member(b, ada, Role::Member, clock.now()))
        .await
        .unwrap();
    tx.commit(Audited::for_tests()).await.unwrap();

    let in_org = |org, subject: gatehouse_core::UserId, hash: &[u8]| SessionRecord {
        org_id: Some(org),
        ..session(&clock, subject.as_uuid(), hash)
    };
    // More than the 500 a listing of live sessions reads.
    let ended: Vec<SessionRecord> = (0..520u32)
        .map(|i| in_org(b, ada, &i.to_be_bytes()))
        .collect();
    let elsewhere = in_org(a, ada, b"a");
    let bobs = in_org(b, bob, b"b");
    let expired = SessionRecord {
        expires_at: clock.now() - Duration::seconds(1),
        ..in_org(b, ada, b"x")
    };
    let mut tx = store.begin().await.unwrap();
    for s in ended.iter().chain([&elsewhere, &bobs, &expired]) {
        tx.insert_session(s).await.unwrap();
    }
    tx.commit(Audited::for_tests()).await.unwrap();

    let now = clock.now();
    let mut tx = store.begin().await.unwrap();
    let mut got = tx
        .revoke_org_sessions_of(ada.as_uuid(), b, now)
        .await
        .unwrap();
    got.sort();
    let mut want: Vec<(Uuid, time::OffsetDateTime)> =
        ended.iter().map(|s| (s.id, s.expires_at)).collect();
    want.sort();
    assert_eq!(got, want);
    assert!(
        tx.revoke_org_sessions_of(ada.as_uuid(), b, now)
            .await
            .unwrap()
            .is_empty(),
        "already ended"
    );
    for s in [&elsewhere, &bobs, &expired] {
        assert_eq!(tx.session(s.id).await.unwrap().unwrap().revoked_at, None);
    }
    let mut tx = tx.enter(&TenantScope::for_tests(b)).await.unwrap();
    assert!(tx.set_sessions_ended(ada, now).await.unwrap());
    assert!(
        !tx.set_sessions_ended(gatehouse_core::UserId::new(&clock), now)
            .await
            .unwrap()
    );
    assert_eq!(
        tx.membership(ada).await.unwrap().unwrap().sessions_ended_at,
        Some(now)
    );
    assert_eq!(
        tx.membership(bob).await.unwrap().unwrap().sessions_ended_at,
        None
    );
    tx.commit(Audited::for_tests()).await.unwrap();
    let mut tx = store.begin().await.unwrap();
    let noted: Vec<_> = tx
        .memberships_of_user(ada)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.org_id, m.sessions_ended_at))
        .collect();
    assert_eq!(noted, vec![(a, None), (b, Some(now))]);
}

/// A flush of many last-seen times writes each one (more than one batch of them) and leaves the
/// later of the stored and flushed times; an impersonation an operator started is revoked with
/// the operator's, and nobody else's.
pub async fn identity_many_last_seen_times_and_an_operators_impersonations(store: Arc<dyn Store>) {
    let clock = clock();
    let now = clock.now();
    let sessions: Vec<SessionRecord> = (0..150u32)
        .map(|i| session(&clock, Uuid::from_u128(u128::from(i) + 1000), b"h"))
        .collect();
    let mut tx = store.begin().await.unwrap();
    for s in &sessions {
        tx.insert_session(s).await.unwrap();
    }
    let operator = Uuid::from_u128(99);
    let mut impersonation = session(&clock, Uuid::from_u128(1000), b"i");
    impersonation.tier = Tier::Impersonation;
    impersonation.impersonator_id = Some(operator);
    let mut other = session(&clock, Uuid::from_u128(1001), b"j");
    other.tier = Tier::Impersonation;
    other.impersonator_id = Some(Uuid::from_u128(98));
    tx.insert_session(&impersonation).await.unwrap();
    tx.insert_session(&other).await.unwrap();
    tx.commit(Audited::for_tests()).await.unwrap();

    // Every other one moves forward; the first is flushed with an older time and keeps its own.
    let seen: Vec<(Uuid, time::OffsetDateTime)> = sessions
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let at = if i == 0 {
                now - Duration::minutes(1)
            } else {
                now + Duration::seconds(i64::try_from(i).unwrap())
            };
            (s.id, at)
        })
        .collect();
    store.touch_sessions(&seen).await.unwrap();
    let mut tx = store.begin().await.unwrap();
    for (i, (id, at)) in seen.iter().enumerate() {
        let stored = tx.session(*id).await.unwrap().unwrap().last_seen_at;
        assert_eq!(stored, if i == 0 { now } else { *at }, "session {i}");
    }
    let revoked = tx.revoke_impersonations_by(operator, now).await.unwrap();
    assert_eq!(revoked, vec![impersonation.id]);
    assert!(
        tx.revoke_impersonations_by(operator, now)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        tx.session(other.id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_none()
    );
    assert!(
        tx.session(sessions[0].id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_none()
    );
    tx.commit(Audited::for_tests()).await.unwrap();
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
        .signup()
        .register(
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
    let a = signed_in(kernel.sessions().login(login("a"), &request).await.unwrap());
    let b = signed_in(kernel.sessions().login(login("b"), &request).await.unwrap());
    let pa = kernel
        .auth()
        .authenticate(a.access_token.expose(), Audience::Tenant)
        .await
        .unwrap();
    kernel
        .auth()
        .authenticate(b.access_token.expose(), Audience::Tenant)
        .await
        .unwrap();
    kernel
        .sessions()
        .revoke(
            &AccountCall {
                principal: pa,
                request: request.clone(),
            },
            b.session_id,
        )
        .await
        .unwrap();
    assert!(matches!(
        kernel
            .auth()
            .authenticate(b.access_token.expose(), Audience::Tenant)
            .await,
        Err(Error::Unauthenticated(_))
    ));
    kernel
        .auth()
        .authenticate(a.access_token.expose(), Audience::Tenant)
        .await
        .unwrap();
    // Refresh reuse ends session A.
    let spent = a.refresh_token.unwrap();
    kernel
        .sessions()
        .refresh(&spent, false, &request)
        .await
        .unwrap();
    assert!(
        kernel
            .sessions()
            .refresh(&spent, false, &request)
            .await
            .is_err()
    );
    assert!(
        kernel
            .auth()
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
            kernel.sessions().login(attempt, &request).await,
            Err(Error::InvalidCredentials)
        ));
    }
}

/// Fresh-authentication times (`set_session_auth`), with the session builder their case was
/// written with.
mod auth_times {
    use gatehouse_core::audit::Audited;
    use gatehouse_core::store::{SessionRecord, Tier};
    use gatehouse_core::{Clock, FakeClock};
    use time::Duration;
    use uuid::Uuid;

    use crate::Fixture;
    use crate::cases::clock;

    fn session(clock: &FakeClock, subject: Uuid) -> SessionRecord {
        let now = clock.now();
        SessionRecord {
            id: gatehouse_core::ids::new_uuid(clock),
            subject_id: subject,
            tier: Tier::Customer,
            org_id: None,
            impersonator_id: None,
            reason: None,
            device_name: "laptop".into(),
            user_agent: None,
            ip: None,
            refresh_hash: now.unix_timestamp_nanos().to_le_bytes().to_vec(),
            previous_refresh_hash: None,
            created_at: now,
            last_seen_at: now,
            expires_at: now + Duration::days(1),
            revoked_at: None,
            auth_at: now,
            mfa_at: None,
            signed_in_with: gatehouse_core::store::SignedInWith::Password,
        }
    }

    pub async fn second_factor_session_auth_is_recorded_on_live_sessions_only(f: &dyn Fixture) {
        let store = f.store();
        let clock = clock();
        let subject = Uuid::from_u128(21);
        let live = session(&clock, subject);
        clock.advance(Duration::milliseconds(1));
        let with_mfa = SessionRecord {
            mfa_at: Some(clock.now()),
            ..session(&clock, subject)
        };
        clock.advance(Duration::milliseconds(1));
        let revoked = session(&clock, subject);
        let mut tx = store.begin().await.unwrap();
        for s in [&live, &with_mfa, &revoked] {
            tx.insert_session(s).await.unwrap();
        }
        assert!(tx.revoke_session(revoked.id, clock.now()).await.unwrap());
        tx.commit(Audited::for_tests()).await.unwrap();

        let mut tx = store.begin().await.unwrap();
        assert_eq!(tx.session(live.id).await.unwrap(), Some(live.clone()));
        assert_eq!(
            tx.session(with_mfa.id).await.unwrap(),
            Some(with_mfa.clone())
        );

        // A password check alone.
        let t1 = clock.now() + Duration::minutes(10);
        assert!(tx.set_session_auth(live.id, t1, None).await.unwrap());
        let s = tx.session(live.id).await.unwrap().unwrap();
        assert_eq!((s.auth_at, s.mfa_at), (t1, None));
        // A password and a second factor.
        let t2 = t1 + Duration::minutes(10);
        assert!(tx.set_session_auth(live.id, t2, Some(t2)).await.unwrap());
        let s = tx.session(live.id).await.unwrap().unwrap();
        assert_eq!((s.auth_at, s.mfa_at), (t2, Some(t2)));
        // A later password-only check keeps the second factor's time.
        let t3 = t2 + Duration::minutes(10);
        assert!(tx.set_session_auth(live.id, t3, None).await.unwrap());
        let s = tx.session(live.id).await.unwrap().unwrap();
        assert_eq!((s.auth_at, s.mfa_at), (t3, Some(t2)));
        // Nothing else about the session changed.
        assert_eq!(
            s,
            SessionRecord {
                auth_at: t3,
                mfa_at: Some(t2),
                ..live.clone()
            }
        );

        // A revoked session, an expired one and an unknown one are not live.
        assert!(!tx.set_session_auth(revoked.id, t1, Some(t1)).await.unwrap());
        let r = tx.session(revoked.id).await.unwrap().unwrap();
        assert_eq!((r.auth_at, r.mfa_at), (revoked.auth_at, None));
        let expired_at = with_mfa.expires_at + Duration::seconds(1);
        assert!(
            !tx.set_session_auth(with_mfa.id, expired_at, None)
                .await
                .unwrap()
        );
        assert_eq!(
            tx.session(with_mfa.id).await.unwrap().unwrap().auth_at,
            with_mfa.auth_at
        );
        assert!(
            !tx.set_session_auth(Uuid::from_u128(99), t1, None)
                .await
                .unwrap()
        );
        tx.commit(Audited::for_tests()).await.unwrap();

        let mut tx = store.begin().await.unwrap();
        assert_eq!(tx.session(live.id).await.unwrap().unwrap().auth_at, t3);
    }
}

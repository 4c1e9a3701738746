//! Second factors, recovery codes, one-time tokens, fresh-authentication times, email
//! verification, the platform data key and the mail outbox: every single-use promise holds on
//! the store itself, not only in the domain code that reads before it writes.

use std::collections::BTreeSet;

use gatehouse_core::audit::Audited;
use gatehouse_core::store::{
    MailBacklog, MailRecord, OneTimeTokenRecord, PlatformKeyRecord, SessionRecord, Store, Tier,
    TokenPurpose, TotpFactorRecord, UserRecord,
};
use gatehouse_core::{Clock, FakeClock, StoreError, UserId};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::Fixture;
use crate::cases::clock;
use crate::data::user;

async fn new_user(store: &dyn Store, clock: &FakeClock, email: &str) -> UserRecord {
    let u = user(clock, email);
    let mut tx = store.begin().await.unwrap();
    tx.insert_user(&u).await.unwrap();
    tx.commit(Audited::for_tests()).await.unwrap();
    u
}

fn pending(user: UserId, envelope: &[u8], at: OffsetDateTime) -> TotpFactorRecord {
    TotpFactorRecord {
        user_id: user,
        envelope: envelope.to_vec(),
        created_at: at,
        confirmed_at: None,
        last_step: 0,
    }
}

/// A user with a confirmed factor whose first code was for `step`.
async fn confirmed_user(
    store: &dyn Store,
    clock: &FakeClock,
    email: &str,
    step: u64,
) -> UserRecord {
    let u = new_user(store, clock, email).await;
    let mut tx = store.begin().await.unwrap();
    tx.put_pending_totp(&pending(u.id, b"seed", clock.now()))
        .await
        .unwrap();
    assert!(
        tx.confirm_totp(u.id, b"seed", step, clock.now())
            .await
            .unwrap()
    );
    tx.commit(Audited::for_tests()).await.unwrap();
    u
}

pub async fn second_factor_pending_totp_is_replaced_until_confirmed(f: &dyn Fixture) {
    let store = f.store();
    let clock = clock();
    let u = new_user(store.as_ref(), &clock, "ada@example.com").await;
    let first = pending(u.id, b"first seed", clock.now());
    clock.advance(Duration::seconds(30));
    let second = pending(u.id, b"second seed", clock.now());

    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.totp_factor(u.id).await.unwrap(), None);
    tx.put_pending_totp(&first).await.unwrap();
    assert_eq!(tx.totp_factor(u.id).await.unwrap(), Some(first.clone()));
    // Enrolment started again before it was confirmed: the new seed replaces the old.
    tx.put_pending_totp(&second).await.unwrap();
    assert_eq!(tx.totp_factor(u.id).await.unwrap(), Some(second.clone()));
    // An unconfirmed factor accepts no code.
    assert!(!tx.use_totp_step(u.id, 5).await.unwrap());
    tx.commit(Audited::for_tests()).await.unwrap();

    let confirmed_at = clock.now();
    let mut tx = store.begin().await.unwrap();
    // A code checked against the replaced seed confirms nothing.
    assert!(
        !tx.confirm_totp(u.id, b"first seed", 1_000, confirmed_at)
            .await
            .unwrap()
    );
    assert!(
        tx.confirm_totp(u.id, b"second seed", 1_000, confirmed_at)
            .await
            .unwrap()
    );
    // Only once: a second confirmation changes nothing.
    assert!(
        !tx.confirm_totp(
            u.id,
            b"second seed",
            2_000,
            confirmed_at + Duration::minutes(1)
        )
        .await
        .unwrap()
    );
    let stored = tx.totp_factor(u.id).await.unwrap().unwrap();
    assert_eq!(
        stored,
        TotpFactorRecord {
            confirmed_at: Some(confirmed_at),
            last_step: 1_000,
            ..second.clone()
        }
    );
    // A confirmed factor is never replaced by a new enrolment.
    let third = pending(u.id, b"third seed", clock.now());
    assert!(matches!(
        tx.put_pending_totp(&third).await,
        Err(StoreError::Duplicate)
    ));
    assert_eq!(tx.totp_factor(u.id).await.unwrap(), Some(stored.clone()));
    // A "pending" factor that claims to be confirmed already is refused.
    let other = new_user_in(&mut tx, &clock, "bob@example.com").await;
    let forged = TotpFactorRecord {
        confirmed_at: Some(clock.now()),
        ..pending(other, b"forged", clock.now())
    };
    assert!(tx.put_pending_totp(&forged).await.is_err());
    assert_eq!(tx.totp_factor(other).await.unwrap(), None);
    // Nothing to confirm for a user without a factor.
    assert!(
        !tx.confirm_totp(other, b"forged", 1, clock.now())
            .await
            .unwrap()
    );
    tx.commit(Audited::for_tests()).await.unwrap();

    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.totp_factor(u.id).await.unwrap(), Some(stored));
}

async fn new_user_in(
    tx: &mut Box<dyn gatehouse_core::store::PlatformTx>,
    clock: &FakeClock,
    email: &str,
) -> UserId {
    let u = user(clock, email);
    tx.insert_user(&u).await.unwrap();
    u.id
}

pub async fn second_factor_totp_steps_are_never_replayed(f: &dyn Fixture) {
    let store = f.store();
    let clock = clock();
    let u = confirmed_user(store.as_ref(), &clock, "ada@example.com", 100).await;

    let mut tx = store.begin().await.unwrap();
    // The confirming code's step, and any earlier one, are spent.
    assert!(!tx.use_totp_step(u.id, 100).await.unwrap());
    assert!(!tx.use_totp_step(u.id, 99).await.unwrap());
    assert!(tx.use_totp_step(u.id, 101).await.unwrap());
    assert!(!tx.use_totp_step(u.id, 101).await.unwrap());
    assert!(!tx.use_totp_step(u.id, 100).await.unwrap());
    assert!(tx.use_totp_step(u.id, 105).await.unwrap());
    assert!(!tx.use_totp_step(u.id, 103).await.unwrap());
    assert_eq!(tx.totp_factor(u.id).await.unwrap().unwrap().last_step, 105);
    // A step the backend cannot store is refused, never wrapped into an early one.
    assert!(matches!(
        tx.use_totp_step(u.id, u64::MAX).await,
        Err(StoreError::Backend(_))
    ));
    // Another user's factor is not theirs to use.
    assert!(!tx.use_totp_step(UserId::new(&clock), 200).await.unwrap());
    tx.commit(Audited::for_tests()).await.unwrap();

    // The same code presented twice at once: exactly one use succeeds.
    let attempt = || {
        let store = store.clone();
        let id = u.id;
        async move {
            let mut tx = store.begin().await.unwrap();
            let used = tx.use_totp_step(id, 106).await.unwrap();
            tx.commit(Audited::for_tests()).await.unwrap();
            used
        }
    };
    let (a, b) = tokio::join!(tokio::spawn(attempt()), tokio::spawn(attempt()));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(
        a ^ b,
        "exactly one concurrent use of a step succeeds ({a}, {b})"
    );

    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.totp_factor(u.id).await.unwrap().unwrap().last_step, 106);
}

pub async fn second_factor_delete_removes_factor_and_recovery_codes(f: &dyn Fixture) {
    let store = f.store();
    let clock = clock();
    let a = confirmed_user(store.as_ref(), &clock, "ada@example.com", 7).await;
    let b = confirmed_user(store.as_ref(), &clock, "bob@example.com", 7).await;
    let mut tx = store.begin().await.unwrap();
    tx.replace_recovery_codes(a.id, &[vec![1; 32], vec![2; 32]], clock.now())
        .await
        .unwrap();
    tx.replace_recovery_codes(b.id, &[vec![3; 32]], clock.now())
        .await
        .unwrap();
    tx.commit(Audited::for_tests()).await.unwrap();

    let mut tx = store.begin().await.unwrap();
    assert!(tx.delete_totp(a.id).await.unwrap());
    assert_eq!(tx.totp_factor(a.id).await.unwrap(), None);
    assert_eq!(tx.recovery_codes_left(a.id).await.unwrap(), 0);
    assert!(
        !tx.use_recovery_code(a.id, &[1; 32], clock.now())
            .await
            .unwrap()
    );
    assert!(!tx.delete_totp(a.id).await.unwrap());
    tx.commit(Audited::for_tests()).await.unwrap();

    // The other user keeps theirs; a fresh enrolment for the first starts unconfirmed.
    let mut tx = store.begin().await.unwrap();
    assert!(tx.totp_factor(b.id).await.unwrap().is_some());
    assert_eq!(tx.recovery_codes_left(b.id).await.unwrap(), 1);
    tx.put_pending_totp(&pending(a.id, b"new seed", clock.now()))
        .await
        .unwrap();
    assert!(
        tx.confirm_totp(a.id, b"new seed", 3, clock.now())
            .await
            .unwrap()
    );
}

pub async fn second_factor_recovery_codes_are_single_use_and_personal(f: &dyn Fixture) {
    let store = f.store();
    let clock = clock();
    let a = new_user(store.as_ref(), &clock, "ada@example.com").await;
    let b = new_user(store.as_ref(), &clock, "bob@example.com").await;
    let codes: Vec<Vec<u8>> = (1..=3u8).map(|i| vec![i; 32]).collect();

    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.recovery_codes_left(a.id).await.unwrap(), 0);
    tx.replace_recovery_codes(a.id, &codes, clock.now())
        .await
        .unwrap();
    tx.commit(Audited::for_tests()).await.unwrap();

    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.recovery_codes_left(a.id).await.unwrap(), 3);
    // Another user cannot spend them.
    assert!(
        !tx.use_recovery_code(b.id, &codes[0], clock.now())
            .await
            .unwrap()
    );
    assert_eq!(tx.recovery_codes_left(a.id).await.unwrap(), 3);
    assert!(
        tx.use_recovery_code(a.id, &codes[0], clock.now())
            .await
            .unwrap()
    );
    assert!(
        !tx.use_recovery_code(a.id, &codes[0], clock.now())
            .await
            .unwrap()
    );
    assert_eq!(tx.recovery_codes_left(a.id).await.unwrap(), 2);
    assert!(
        tx.use_recovery_code(a.id, &codes[1], clock.now())
            .await
            .unwrap()
    );
    assert_eq!(tx.recovery_codes_left(a.id).await.unwrap(), 1);
    assert!(
        !tx.use_recovery_code(a.id, &[9; 32], clock.now())
            .await
            .unwrap()
    );
    assert_eq!(tx.recovery_codes_left(b.id).await.unwrap(), 0);
    tx.commit(Audited::for_tests()).await.unwrap();

    // A new set replaces the old one, used and unused alike.
    let fresh: Vec<Vec<u8>> = (4..=5u8).map(|i| vec![i; 32]).collect();
    let mut tx = store.begin().await.unwrap();
    tx.replace_recovery_codes(a.id, &fresh, clock.now())
        .await
        .unwrap();
    assert_eq!(tx.recovery_codes_left(a.id).await.unwrap(), 2);
    assert!(
        !tx.use_recovery_code(a.id, &codes[2], clock.now())
            .await
            .unwrap()
    );
    assert!(
        tx.use_recovery_code(a.id, &fresh[0], clock.now())
            .await
            .unwrap()
    );
    assert_eq!(tx.recovery_codes_left(a.id).await.unwrap(), 1);
    tx.commit(Audited::for_tests()).await.unwrap();

    // An empty set leaves none.
    let mut tx = store.begin().await.unwrap();
    tx.replace_recovery_codes(a.id, &[], clock.now())
        .await
        .unwrap();
    assert_eq!(tx.recovery_codes_left(a.id).await.unwrap(), 0);
}

fn token(
    clock: &FakeClock,
    digest: u8,
    purpose: TokenPurpose,
    subject: Uuid,
) -> OneTimeTokenRecord {
    OneTimeTokenRecord {
        digest: vec![digest; 32],
        purpose,
        subject_id: subject,
        detail: format!("{{\"n\":{digest}}}"),
        created_at: clock.now(),
        expires_at: clock.now() + Duration::minutes(15),
        used_at: None,
    }
}

pub async fn second_factor_one_time_tokens_are_spent_once(f: &dyn Fixture) {
    let store = f.store();
    let clock = clock();
    let subject = Uuid::from_u128(11);
    let other = Uuid::from_u128(12);
    let reset = token(&clock, 1, TokenPurpose::PasswordReset, subject);
    let reset2 = token(&clock, 2, TokenPurpose::PasswordReset, subject);
    let verify = token(&clock, 3, TokenPurpose::EmailVerification, subject);
    let challenge = token(&clock, 4, TokenPurpose::SignInChallenge, subject);
    let theirs = token(&clock, 5, TokenPurpose::PasswordReset, other);
    let all = [&reset, &reset2, &verify, &challenge, &theirs];

    let mut tx = store.begin().await.unwrap();
    for t in all {
        tx.insert_one_time_token(t).await.unwrap();
    }
    tx.commit(Audited::for_tests()).await.unwrap();

    let mut tx = store.begin().await.unwrap();
    for t in all {
        assert_eq!(tx.one_time_token(&t.digest).await.unwrap(), Some(t.clone()));
    }
    assert_eq!(tx.one_time_token(&[9; 32]).await.unwrap(), None);
    let at = clock.now() + Duration::minutes(1);
    assert!(tx.consume_one_time_token(&reset.digest, at).await.unwrap());
    assert!(!tx.consume_one_time_token(&reset.digest, at).await.unwrap());
    assert!(!tx.consume_one_time_token(&[9; 32], at).await.unwrap());
    let spent = tx.one_time_token(&reset.digest).await.unwrap().unwrap();
    assert_eq!(spent.used_at, Some(at));
    assert!(!spent.is_usable(at));
    tx.commit(Audited::for_tests()).await.unwrap();

    // Spending a subject's tokens of one purpose leaves their others, and other subjects', alone.
    let mut tx = store.begin().await.unwrap();
    let later = at + Duration::minutes(1);
    assert_eq!(
        tx.consume_tokens_of(subject, TokenPurpose::PasswordReset, later)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        tx.consume_tokens_of(subject, TokenPurpose::PasswordReset, later)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        tx.one_time_token(&reset2.digest)
            .await
            .unwrap()
            .unwrap()
            .used_at,
        Some(later)
    );
    // The one spent before keeps its own time.
    assert_eq!(
        tx.one_time_token(&reset.digest)
            .await
            .unwrap()
            .unwrap()
            .used_at,
        Some(at)
    );
    for t in [&verify, &challenge, &theirs] {
        assert_eq!(
            tx.one_time_token(&t.digest).await.unwrap().unwrap().used_at,
            None,
            "{:?} of {} was spent",
            t.purpose,
            t.subject_id
        );
    }
    assert!(
        !tx.consume_one_time_token(&reset2.digest, later)
            .await
            .unwrap()
    );
    assert!(
        tx.consume_one_time_token(&theirs.digest, later)
            .await
            .unwrap()
    );
    tx.commit(Audited::for_tests()).await.unwrap();

    // A digest is unique.
    let mut tx = store.begin().await.unwrap();
    let again = token(&clock, 3, TokenPurpose::PasswordReset, other);
    assert!(matches!(
        tx.insert_one_time_token(&again).await,
        Err(StoreError::Duplicate)
    ));
}

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

pub async fn second_factor_email_is_verified_once(f: &dyn Fixture) {
    let store = f.store();
    let clock = clock();
    let u = new_user(store.as_ref(), &clock, "ada@example.com").await;
    let pre = UserRecord {
        email_verified_at: Some(clock.now()),
        ..user(&clock, "verified@example.com")
    };

    let at = clock.now() + Duration::minutes(3);
    let mut tx = store.begin().await.unwrap();
    tx.insert_user(&pre).await.unwrap();
    assert_eq!(tx.user_by_id(pre.id).await.unwrap(), Some(pre.clone()));
    assert_eq!(
        tx.user_by_id(u.id)
            .await
            .unwrap()
            .unwrap()
            .email_verified_at,
        None
    );
    assert!(tx.set_email_verified(u.id, at).await.unwrap());
    assert!(
        !tx.set_email_verified(u.id, at + Duration::minutes(1))
            .await
            .unwrap()
    );
    assert!(!tx.set_email_verified(pre.id, at).await.unwrap());
    assert!(
        !tx.set_email_verified(UserId::new(&clock), at)
            .await
            .unwrap()
    );
    tx.commit(Audited::for_tests()).await.unwrap();

    let mut tx = store.begin().await.unwrap();
    assert_eq!(
        tx.user_by_email("ada@example.com").await.unwrap(),
        Some(UserRecord {
            email_verified_at: Some(at),
            ..u
        })
    );
    assert_eq!(tx.user_by_id(pre.id).await.unwrap(), Some(pre));
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

fn message(clock: &FakeClock, next_attempt_at: OffsetDateTime) -> MailRecord {
    MailRecord {
        id: gatehouse_core::ids::new_uuid(clock),
        envelope: vec![0x5e; 48],
        created_at: clock.now(),
        attempts: 0,
        next_attempt_at,
        sent_at: None,
        last_error: None,
    }
}

pub async fn second_factor_mail_commits_with_its_transaction(f: &dyn Fixture) {
    let store = f.store();
    let clock = clock();
    let now = clock.now();
    let dropped = message(&clock, now);
    clock.advance(Duration::milliseconds(1));
    let kept = message(&clock, now);

    let mut tx = store.begin().await.unwrap();
    tx.enqueue_mail(&dropped).await.unwrap();
    drop(tx);
    assert_eq!(store.mail_backlog().await.unwrap(), MailBacklog::default());
    assert!(
        store
            .claim_due_mail(now, now + Duration::minutes(5), 10)
            .await
            .unwrap()
            .is_empty()
    );

    let mut tx = store.begin().await.unwrap();
    tx.enqueue_mail(&kept).await.unwrap();
    tx.commit(Audited::for_tests()).await.unwrap();
    assert_eq!(
        store.mail_backlog().await.unwrap(),
        MailBacklog {
            pending: 1,
            failing: 0,
            oldest: Some(kept.created_at),
            last_error: None,
        }
    );
    let lease = now + Duration::minutes(5);
    assert_eq!(
        store.claim_due_mail(now, lease, 10).await.unwrap(),
        vec![MailRecord {
            next_attempt_at: lease,
            ..kept
        }]
    );
}

pub async fn second_factor_mail_is_leased_retried_and_delivered(f: &dyn Fixture) {
    let store = f.store();
    let clock = clock();
    let t0 = clock.now();
    let first = message(&clock, t0);
    clock.advance(Duration::milliseconds(1));
    let later = message(&clock, t0 + Duration::minutes(10));
    clock.advance(Duration::milliseconds(1));
    let second = message(&clock, t0);
    let mut tx = store.begin().await.unwrap();
    // Queued in another order than created: claims still come oldest first.
    for m in [&second, &later, &first] {
        tx.enqueue_mail(m).await.unwrap();
    }
    tx.commit(Audited::for_tests()).await.unwrap();

    // Only what is due, oldest first, leased until lease_until.
    let now = t0 + Duration::seconds(1);
    let lease = now + Duration::minutes(5);
    let claimed = store.claim_due_mail(now, lease, 10).await.unwrap();
    assert_eq!(
        claimed.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![first.id, second.id]
    );
    assert!(claimed.iter().all(|m| m.next_attempt_at == lease));
    assert_eq!(claimed[0].envelope, first.envelope);
    // Leased: no other worker takes them before the lease ends.
    assert!(
        store
            .claim_due_mail(now, lease, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let before_lease_ends = lease - Duration::microseconds(1);
    assert!(
        store
            .claim_due_mail(before_lease_ends, before_lease_ends, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // After the lease the unfinished messages come back, at most `limit` at a time.
    let relet = lease + Duration::minutes(1);
    let again = store.claim_due_mail(lease, relet, 1).await.unwrap();
    assert_eq!(
        again.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![first.id]
    );
    let again = store.claim_due_mail(lease, relet, 1).await.unwrap();
    assert_eq!(
        again.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![second.id]
    );
    assert!(
        store
            .claim_due_mail(lease, relet, 0)
            .await
            .unwrap()
            .is_empty()
    );

    // A failure is recorded, with a bounded error, and shows in the backlog.
    let error = "é".repeat(600);
    let retry_at = relet + Duration::minutes(30);
    store
        .mail_failed(first.id, 1, retry_at, &error)
        .await
        .unwrap();
    let backlog = store.mail_backlog().await.unwrap();
    assert_eq!((backlog.pending, backlog.failing), (3, 1));
    assert_eq!(backlog.oldest, Some(first.created_at));
    assert_eq!(backlog.last_error, Some("é".repeat(500)));
    store
        .mail_failed(second.id, 2, retry_at, "connection refused")
        .await
        .unwrap();
    let backlog = store.mail_backlog().await.unwrap();
    assert_eq!((backlog.pending, backlog.failing), (3, 2));
    assert_eq!(backlog.last_error.as_deref(), Some("connection refused"));
    // Not due before the retry time (only the message queued for later is, by now); then they
    // come back with their attempts.
    let early = store
        .claim_due_mail(
            retry_at - Duration::seconds(1),
            retry_at + Duration::hours(1),
            10,
        )
        .await
        .unwrap();
    assert_eq!(
        early.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![later.id]
    );
    let retried = store
        .claim_due_mail(retry_at, retry_at + Duration::minutes(5), 10)
        .await
        .unwrap();
    assert_eq!(
        retried.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![first.id, second.id]
    );
    assert_eq!(retried[0].attempts, 1);
    assert_eq!(retried[0].last_error, Some("é".repeat(500)));
    assert_eq!(retried[1].attempts, 2);

    // Delivered: out of the backlog, its error cleared, its sealed body erased.
    let lit = f.uuid_literal(&first.id.simple().to_string());
    // (The outbox refuses a negative attempt count, so this fails exactly when a row matches.)
    let body_kept =
        format!("UPDATE mail_outbox SET attempts = -1 WHERE id = {lit} AND length(envelope) > 0");
    let delivered_row =
        format!("UPDATE mail_outbox SET attempts = -1 WHERE id = {lit} AND sent_at IS NOT NULL");
    assert!(f.exec_as_app(&body_kept).await.is_err());
    store
        .mail_delivered(first.id, retry_at + Duration::seconds(2))
        .await
        .unwrap();
    assert!(f.exec_as_app(&body_kept).await.is_ok(), "envelope kept");
    assert!(f.exec_as_app(&delivered_row).await.is_err(), "row lost");
    let backlog = store.mail_backlog().await.unwrap();
    assert_eq!(
        backlog,
        MailBacklog {
            pending: 2,
            failing: 1,
            oldest: Some(later.created_at),
            last_error: Some("connection refused".into()),
        }
    );
    store
        .mail_delivered(second.id, retry_at + Duration::seconds(3))
        .await
        .unwrap();
    let backlog = store.mail_backlog().await.unwrap();
    assert_eq!(
        backlog,
        MailBacklog {
            pending: 1,
            failing: 0,
            oldest: Some(later.created_at),
            last_error: None,
        }
    );
    // Delivered messages never come back, whenever the worker looks.
    let far = retry_at + Duration::days(30);
    let rest = store.claim_due_mail(far, far, 10).await.unwrap();
    assert_eq!(
        rest.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![later.id]
    );
    store.mail_delivered(later.id, far).await.unwrap();
    assert_eq!(store.mail_backlog().await.unwrap(), MailBacklog::default());
    assert!(store.claim_due_mail(far, far, 10).await.unwrap().is_empty());
}

pub async fn second_factor_concurrent_claims_never_share_a_message(f: &dyn Fixture) {
    let store = f.store();
    let clock = clock();
    let now = clock.now();
    let mut tx = store.begin().await.unwrap();
    let mut queued = BTreeSet::new();
    for _ in 0..24 {
        let m = message(&clock, now);
        tx.enqueue_mail(&m).await.unwrap();
        queued.insert(m.id);
        clock.advance(Duration::milliseconds(1));
    }
    tx.commit(Audited::for_tests()).await.unwrap();

    let worker = || {
        let store = store.clone();
        async move {
            let mut mine = Vec::new();
            for _ in 0..8 {
                let got = store
                    .claim_due_mail(now, now + Duration::minutes(5), 5)
                    .await
                    .unwrap();
                mine.extend(got.into_iter().map(|m| m.id));
            }
            mine
        }
    };
    let (a, b) = tokio::join!(tokio::spawn(worker()), tokio::spawn(worker()));
    let (a, b) = (a.unwrap(), b.unwrap());
    let all: Vec<Uuid> = a.iter().chain(&b).copied().collect();
    let distinct: BTreeSet<Uuid> = all.iter().copied().collect();
    assert_eq!(all.len(), distinct.len(), "a message was claimed twice");
    assert_eq!(distinct, queued, "every due message is claimed");
}

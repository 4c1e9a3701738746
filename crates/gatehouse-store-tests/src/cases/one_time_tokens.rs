//! The contract of `OneTimeTokenStore` (core's `store/one_time_tokens.rs`): a token is spent once,
//! spending a subject's tokens of one purpose leaves their others and other subjects' alone, and
//! a digest is unique.

use gatehouse_core::audit::Audited;
use gatehouse_core::store::{OneTimeTokenRecord, TokenPurpose};
use gatehouse_core::{Clock, FakeClock, StoreError};
use time::Duration;
use uuid::Uuid;

use crate::Fixture;
use crate::cases::clock;

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

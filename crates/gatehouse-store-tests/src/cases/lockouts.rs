//! The lockout behaviour suite (not a store role: core's `limits::LockoutStore`): every
//! `LockoutStore` (in-process, Redis) must pass it. Times are explicit, so no case sleeps.

use std::sync::Arc;

use gatehouse_core::limits::{Count, CountKind, LockoutPolicy, LockoutStore};
use time::{Duration, OffsetDateTime};

fn subject(name: &str) -> String {
    format!("test:{}:{name}", uuid::Uuid::new_v4())
}

fn t0() -> OffsetDateTime {
    OffsetDateTime::UNIX_EPOCH + Duration::days(20_000)
}

fn policy(threshold: u32) -> LockoutPolicy {
    LockoutPolicy {
        threshold,
        first_lock: Duration::seconds(2),
        max_lock: Duration::seconds(60),
        forget_after: Duration::hours(1),
    }
}

fn count(kind: CountKind, subject: &str, threshold: u32) -> Count<'_> {
    Count {
        kind,
        subject,
        group: None,
        policy: policy(threshold),
    }
}

pub async fn lockouts_lock_at_the_threshold_and_the_lock_doubles_to_its_cap(
    store: Arc<dyn LockoutStore>,
) {
    let s = subject("grow");
    let c = [count(CountKind::Account, &s, 3)];
    let t = t0();
    // Counted before checking: the third attempt passes but locks; the fourth is refused.
    for _ in 0..3 {
        assert_eq!(store.attempt(&c, t).await.unwrap(), None);
    }
    assert_eq!(
        store.attempt(&c, t).await.unwrap(),
        Some(Duration::seconds(2))
    );
    assert_eq!(
        store.attempt(&c, t + Duration::seconds(1)).await.unwrap(),
        Some(Duration::seconds(1))
    );
    // Past the lock the next failure counts and locks for twice as long, then four times.
    let t = t + Duration::seconds(3);
    assert_eq!(store.attempt(&c, t).await.unwrap(), None);
    assert_eq!(
        store.attempt(&c, t).await.unwrap(),
        Some(Duration::seconds(4))
    );
    let t = t + Duration::seconds(5);
    assert_eq!(store.attempt(&c, t).await.unwrap(), None);
    assert_eq!(
        store.attempt(&c, t).await.unwrap(),
        Some(Duration::seconds(8))
    );
    let mut t = t + Duration::seconds(9);
    for _ in 0..10 {
        assert_eq!(store.attempt(&c, t).await.unwrap(), None);
        let wait = store.attempt(&c, t).await.unwrap().unwrap();
        t += wait + Duration::seconds(1);
    }
    assert_eq!(store.attempt(&c, t).await.unwrap(), None);
    assert_eq!(
        store.attempt(&c, t).await.unwrap(),
        Some(Duration::seconds(60))
    );
}

pub async fn lockouts_count_all_or_none(store: Arc<dyn LockoutStore>) {
    let (a, b) = (subject("a"), subject("b"));
    let both = [
        count(CountKind::Pair, &a, 2),
        count(CountKind::Account, &b, 4),
    ];
    let only_b = [count(CountKind::Account, &b, 4)];
    let t = t0();
    assert_eq!(store.attempt(&both, t).await.unwrap(), None);
    assert_eq!(store.attempt(&both, t).await.unwrap(), None);
    // `a` is locked now: the attempt is refused with a's wait and b is not counted...
    assert_eq!(
        store.attempt(&both, t).await.unwrap(),
        Some(Duration::seconds(2))
    );
    // ...so b takes two more failures before its lock, not one.
    assert_eq!(store.attempt(&only_b, t).await.unwrap(), None);
    assert_eq!(store.attempt(&only_b, t).await.unwrap(), None);
    assert!(store.attempt(&only_b, t).await.unwrap().is_some());
}

pub async fn lockouts_kinds_and_subjects_are_independent(store: Arc<dyn LockoutStore>) {
    let s = subject("same-text");
    let t = t0();
    let pair = [count(CountKind::Pair, &s, 1)];
    assert_eq!(store.attempt(&pair, t).await.unwrap(), None);
    assert!(store.attempt(&pair, t).await.unwrap().is_some());
    for kind in [CountKind::Account, CountKind::Address] {
        assert_eq!(
            store.attempt(&[count(kind, &s, 1)], t).await.unwrap(),
            None,
            "{kind:?} shares the pair's count"
        );
    }
    let other = subject("other");
    assert_eq!(
        store
            .attempt(&[count(CountKind::Pair, &other, 1)], t)
            .await
            .unwrap(),
        None
    );
}

pub async fn lockouts_a_refund_takes_back_one_attempt_and_its_lock(store: Arc<dyn LockoutStore>) {
    let s = subject("refund");
    let c = [count(CountKind::Pair, &s, 3)];
    let t = t0();
    for _ in 0..3 {
        assert_eq!(store.attempt(&c, t).await.unwrap(), None);
    }
    // The third attempt locked; it was right, so its count and its lock go back.
    store.refund(&c).await.unwrap();
    assert_eq!(store.attempt(&c, t).await.unwrap(), None);
    assert!(store.attempt(&c, t).await.unwrap().is_some());
    store.refund(&c).await.unwrap();
    store.refund(&c).await.unwrap();
    // Two failures left: one more passes without a lock, the next locks.
    assert_eq!(store.attempt(&c, t).await.unwrap(), None);
    assert_eq!(store.attempt(&c, t).await.unwrap(), None);
    assert!(store.attempt(&c, t).await.unwrap().is_some());
    // Refunding a subject never counted does nothing.
    let fresh = subject("never");
    store
        .refund(&[count(CountKind::Pair, &fresh, 3)])
        .await
        .unwrap();
    assert_eq!(
        store
            .attempt(&[count(CountKind::Pair, &fresh, 1)], t)
            .await
            .unwrap(),
        None
    );
}

pub async fn lockouts_clear_and_clear_group_forget_exactly_their_counts(
    store: Arc<dyn LockoutStore>,
) {
    let g1 = format!("{}|", subject("g1"));
    let g2 = format!("{}|", subject("g2"));
    let (a1, b1, a2) = (format!("{g1}a"), format!("{g1}b"), format!("{g2}a"));
    let all = [(&g1, &a1), (&g1, &b1), (&g2, &a2)];
    let t = t0();
    for (g, s) in all {
        let c = [Count {
            kind: CountKind::Pair,
            subject: s,
            group: Some(g),
            policy: policy(1),
        }];
        assert_eq!(store.attempt(&c, t).await.unwrap(), None);
        assert!(store.attempt(&c, t).await.unwrap().is_some());
    }
    let account = subject("account");
    let acc = [count(CountKind::Account, &account, 1)];
    assert_eq!(store.attempt(&acc, t).await.unwrap(), None);
    store.clear_group(CountKind::Pair, &g1).await.unwrap();
    for (g, s) in all {
        let c = [Count {
            kind: CountKind::Pair,
            subject: s,
            group: Some(g),
            policy: policy(1),
        }];
        let locked = store.attempt(&c, t).await.unwrap().is_some();
        assert_eq!(locked, *g == g2, "{s}");
    }
    assert!(store.attempt(&acc, t).await.unwrap().is_some());
    store.clear(&acc).await.unwrap();
    assert_eq!(store.attempt(&acc, t).await.unwrap(), None);
}

pub async fn lockouts_old_failures_are_forgotten(store: Arc<dyn LockoutStore>) {
    let s = subject("forget");
    let c = [count(CountKind::Address, &s, 3)];
    let t = t0();
    assert_eq!(store.attempt(&c, t).await.unwrap(), None);
    assert_eq!(store.attempt(&c, t).await.unwrap(), None);
    // An hour later the two failures no longer count: two more pass before the lock.
    let later = t + Duration::hours(1);
    assert_eq!(store.attempt(&c, later).await.unwrap(), None);
    assert_eq!(store.attempt(&c, later).await.unwrap(), None);
    assert_eq!(store.attempt(&c, later).await.unwrap(), None);
    assert!(store.attempt(&c, later).await.unwrap().is_some());
}

pub async fn lockouts_parallel_attempts_never_pass_the_threshold(store: Arc<dyn LockoutStore>) {
    let s = subject("race");
    let t = t0();
    let mut tasks = Vec::new();
    for _ in 0..60 {
        let store = Arc::clone(&store);
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            store
                .attempt(&[count(CountKind::Pair, &s, 5)], t)
                .await
                .unwrap()
                .is_none()
        }));
    }
    let mut passed = 0;
    for task in tasks {
        if task.await.unwrap() {
            passed += 1;
        }
    }
    assert_eq!(passed, 5);
}

pub async fn lockouts_throttle_lets_one_through_per_period(store: Arc<dyn LockoutStore>) {
    let k = subject("mail");
    let other = subject("other-mail");
    let t = t0();
    let minute = Duration::minutes(1);
    assert!(store.first_within(&k, minute, t).await.unwrap());
    assert!(!store.first_within(&k, minute, t).await.unwrap());
    assert!(
        !store
            .first_within(&k, minute, t + Duration::seconds(59))
            .await
            .unwrap()
    );
    assert!(store.first_within(&other, minute, t).await.unwrap());
    assert!(store.first_within(&k, minute, t + minute).await.unwrap());
}

/// Emits one test per lockout case. `$make` is an async fn returning `Arc<dyn LockoutStore>`.
#[macro_export]
macro_rules! lockout_suite {
    ($make:path) => {
        $crate::lockout_suite!(@cases $make;
            lockouts_lock_at_the_threshold_and_the_lock_doubles_to_its_cap,
            lockouts_count_all_or_none,
            lockouts_kinds_and_subjects_are_independent,
            lockouts_a_refund_takes_back_one_attempt_and_its_lock,
            lockouts_clear_and_clear_group_forget_exactly_their_counts,
            lockouts_old_failures_are_forgotten,
            lockouts_parallel_attempts_never_pass_the_threshold,
            lockouts_throttle_lets_one_through_per_period
        );
    };
    (@cases $make:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                $crate::cases::lockouts::$case($make().await).await;
            }
        )*
    };
}

//! The in-process store's own bookkeeping; the behaviour every store shares is the lockout suite
//! in `gatehouse-store-tests`.

use super::*;

fn policy(threshold: u32) -> LockoutPolicy {
    LockoutPolicy {
        threshold,
        first_lock: Duration::minutes(1),
        max_lock: Duration::hours(1),
        forget_after: Duration::minutes(15),
    }
}

fn one(subject: &str, threshold: u32) -> [Count<'_>; 1] {
    [Count {
        kind: CountKind::Account,
        subject,
        group: None,
        policy: policy(threshold),
    }]
}

#[test]
fn pruning_forgets_only_counts_neither_locked_nor_recently_failed() {
    let l = MemoryLockouts::default();
    let t0 = OffsetDateTime::UNIX_EPOCH + Duration::days(1);
    assert_eq!(l.attempt_now(&one("old", 2), t0), None);
    assert_eq!(l.attempt_now(&one("locked", 3), t0), None);
    // Twenty minutes later "locked" fails twice more (its first failure forgotten, so the
    // lock starts at its third: give it a threshold of two here).
    let t20 = t0 + Duration::minutes(20);
    assert_eq!(l.attempt_now(&one("locked", 2), t20), None);
    assert_eq!(l.attempt_now(&one("locked", 2), t20), None);
    assert_eq!(l.attempt_now(&one("recent", 2), t20), None);
    // Half a minute later "old" failed over 15 minutes ago and is not locked; the others stay.
    let t = t20 + Duration::seconds(30);
    assert_eq!(l.prune(t), 1);
    assert!(l.attempt_now(&one("locked", 2), t).is_some());
    assert_eq!(l.prune(t), 0);
    // Once the lock has ended and the failures are old, both remaining entries go.
    assert_eq!(l.prune(t0 + Duration::hours(3)), 2);
}

#[test]
fn a_lock_longer_than_the_forgetting_time_is_kept_until_it_ends() {
    let l = MemoryLockouts::default();
    let p = LockoutPolicy {
        threshold: 1,
        first_lock: Duration::hours(2),
        max_lock: Duration::hours(2),
        forget_after: Duration::minutes(15),
    };
    let c = [Count {
        kind: CountKind::Address,
        subject: "a",
        group: None,
        policy: p,
    }];
    let t0 = OffsetDateTime::UNIX_EPOCH + Duration::days(1);
    assert_eq!(l.attempt_now(&c, t0), None);
    assert_eq!(l.prune(t0 + Duration::hours(1)), 0);
    assert!(l.attempt_now(&c, t0 + Duration::hours(1)).is_some());
    assert_eq!(l.prune(t0 + Duration::hours(2)), 1);
}

#[test]
fn lock_lengths_double_from_the_threshold_to_the_cap() {
    let p = policy(3);
    assert_eq!(p.lock_after(2), None);
    assert_eq!(p.lock_after(3), Some(Duration::minutes(1)));
    assert_eq!(p.lock_after(4), Some(Duration::minutes(2)));
    assert_eq!(p.lock_after(8), Some(Duration::minutes(32)));
    assert_eq!(p.lock_after(9), Some(Duration::hours(1)));
    assert_eq!(p.lock_after(u32::MAX), Some(Duration::hours(1)));
}

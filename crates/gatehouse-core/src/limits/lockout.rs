//! Brute-force lockouts for sign-in (and, later, second-factor codes and share-link passwords):
//! failures are counted per subject (an account's email, a client IP); past a threshold the
//! subject is locked for a delay that doubles with every further failure, up to a cap. A success
//! clears the account's count. Unknown emails are counted exactly like known ones, so a lockout
//! says nothing about whether an account exists.

use std::collections::HashMap;
use std::sync::Mutex;

use time::{Duration, OffsetDateTime};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Failures allowed before the first lock.
    pub threshold: u32,
    pub first_lock: Duration,
    pub max_lock: Duration,
    /// Failures older than this are forgotten.
    pub forget_after: Duration,
}

#[derive(Debug, Clone, Copy)]
struct State {
    failures: u32,
    last_failure: OffsetDateTime,
    locked_until: Option<OffsetDateTime>,
}

#[derive(Debug)]
pub struct Lockouts {
    policy: LockoutPolicy,
    state: Mutex<HashMap<String, State>>,
}

const MAX_SUBJECTS: usize = 200_000;

impl Lockouts {
    #[must_use]
    pub fn new(policy: LockoutPolicy) -> Self {
        Self {
            policy,
            state: Mutex::new(HashMap::new()),
        }
    }

    /// When the subject is locked at `now`, how long until it is not.
    #[must_use]
    pub fn locked_for(&self, subject: &str, now: OffsetDateTime) -> Option<Duration> {
        let map = self.state.lock().ok()?;
        let until = map.get(subject)?.locked_until?;
        (until > now).then(|| until - now)
    }

    /// Counts a failure; returns the lock it starts, if any.
    pub fn failed(&self, subject: &str, now: OffsetDateTime) -> Option<Duration> {
        let mut map = self.state.lock().ok()?;
        if map.len() >= MAX_SUBJECTS {
            let forget = self.policy.forget_after;
            map.retain(|_, s| now - s.last_failure < forget);
            if map.len() >= MAX_SUBJECTS {
                // Still full of recent failures: keep only the locked subjects rather than grow.
                map.retain(|_, s| s.locked_until.is_some_and(|u| u > now));
            }
            if map.len() >= MAX_SUBJECTS {
                map.clear();
            }
        }
        let s = map.entry(subject.to_owned()).or_insert(State {
            failures: 0,
            last_failure: now,
            locked_until: None,
        });
        if now - s.last_failure >= self.policy.forget_after {
            s.failures = 0;
        }
        s.failures = s.failures.saturating_add(1);
        s.last_failure = now;
        if s.failures < self.policy.threshold {
            return None;
        }
        let doublings = (s.failures - self.policy.threshold).min(20);
        let lock = self
            .policy
            .first_lock
            .saturating_mul(2_i32.pow(doublings))
            .min(self.policy.max_lock);
        s.locked_until = Some(now + lock);
        Some(lock)
    }

    /// Counts an attempt before it is checked, atomically with the lock check: `Err(wait)` while
    /// locked (nothing counted), else the attempt counts as a failure until
    /// [`Self::refund`] or [`Self::succeeded`] takes it back. Parallel guesses therefore cannot
    /// all pass one check before any of them is counted.
    pub fn attempt(&self, subject: &str, now: OffsetDateTime) -> Result<(), Duration> {
        if let Some(wait) = self.locked_for(subject, now) {
            return Err(wait);
        }
        // Between the two calls another attempt may count too; each is still counted, so at
        // most the in-flight attempts of one instant pass the threshold together.
        let _ = self.failed(subject, now);
        Ok(())
    }

    /// Takes back one attempt counted by [`Self::attempt`] that turned out right, lifting a lock
    /// that attempt set.
    pub fn refund(&self, subject: &str) {
        if let Ok(mut map) = self.state.lock()
            && let Some(s) = map.get_mut(subject)
        {
            s.failures = s.failures.saturating_sub(1);
            if s.failures < self.policy.threshold {
                s.locked_until = None;
            }
        }
    }

    pub fn succeeded(&self, subject: &str) {
        if let Ok(mut map) = self.state.lock() {
            map.remove(subject);
        }
    }

    /// Forgets every subject neither locked at `now` nor with a failure recent enough to count
    /// (`forget_after`); returns how many went. Their counts would restart from zero anyway.
    pub fn prune(&self, now: OffsetDateTime) -> usize {
        let Ok(mut map) = self.state.lock() else {
            return 0;
        };
        let before = map.len();
        let forget = self.policy.forget_after;
        map.retain(|_, s| s.locked_until.is_some_and(|u| u > now) || now - s.last_failure < forget);
        before - map.len()
    }

    /// Forgets every subject that starts with `prefix` (all addresses' counts against one
    /// account, when its password changes).
    pub fn forget_prefix(&self, prefix: &str) {
        if let Ok(mut map) = self.state.lock() {
            map.retain(|k, _| !k.starts_with(prefix));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pruning_forgets_only_subjects_neither_locked_nor_recently_failed() {
        let l = Lockouts::new(LockoutPolicy {
            threshold: 2,
            first_lock: Duration::minutes(1),
            max_lock: Duration::hours(1),
            forget_after: Duration::minutes(15),
        });
        let t0 = OffsetDateTime::UNIX_EPOCH + Duration::days(1);
        l.failed("old", t0);
        l.failed("locked", t0);
        l.failed("locked", t0 + Duration::minutes(20));
        l.failed("locked", t0 + Duration::minutes(20));
        l.failed("recent", t0 + Duration::minutes(20));
        // Half a minute later "old" failed over 15 minutes ago and is not locked; the others
        // stay ("locked" until t0+21m, "recent" failed within the window).
        let t = t0 + Duration::seconds(20 * 60 + 30);
        assert_eq!(l.prune(t), 1);
        assert!(l.locked_for("locked", t).is_some());
        assert_eq!(l.prune(t), 0);
        // Once the lock has ended and the failures are old, both remaining entries go.
        assert_eq!(l.prune(t0 + Duration::hours(3)), 2);
    }

    #[test]
    fn locks_grow_and_a_success_clears() {
        let l = Lockouts::new(LockoutPolicy {
            threshold: 3,
            first_lock: Duration::seconds(2),
            max_lock: Duration::seconds(60),
            forget_after: Duration::hours(1),
        });
        let t = OffsetDateTime::UNIX_EPOCH;
        assert_eq!(l.failed("a", t), None);
        assert_eq!(l.failed("a", t), None);
        assert_eq!(l.failed("a", t), Some(Duration::seconds(2)));
        assert_eq!(l.locked_for("a", t), Some(Duration::seconds(2)));
        assert_eq!(
            l.failed("a", t + Duration::seconds(3)),
            Some(Duration::seconds(4))
        );
        assert_eq!(
            l.failed("a", t + Duration::seconds(8)),
            Some(Duration::seconds(8))
        );
        for i in 0..10 {
            let _ = l.failed("a", t + Duration::seconds(100 + i));
        }
        assert_eq!(
            l.locked_for("a", t + Duration::seconds(109)),
            Some(Duration::seconds(60))
        );
        assert_eq!(l.locked_for("b", t), None);
        // Counted before checking: the third attempt passes but locks; the fourth is refused.
        assert_eq!(l.attempt("c", t), Ok(()));
        assert_eq!(l.attempt("c", t), Ok(()));
        assert_eq!(l.attempt("c", t), Ok(()));
        assert_eq!(l.attempt("c", t), Err(Duration::seconds(2)));
        // A right third attempt takes its count back, and its lock with it.
        l.refund("c");
        assert_eq!(l.attempt("c", t), Ok(()));
        l.refund("c");
        l.refund("c");
        assert_eq!(l.locked_for("c", t), None);
        l.succeeded("a");
        assert_eq!(l.locked_for("a", t + Duration::seconds(109)), None);
    }
}

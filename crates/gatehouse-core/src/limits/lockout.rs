//! Brute-force lockouts (sign-in, second factor, step-up, share-link passwords) and mail
//! throttles: failures are counted per subject (an account's email, a client address, an account
//! from one address); past a threshold the subject is locked for a delay that doubles with every
//! further failure, up to a cap. A success clears the account's counts. Unknown emails are
//! counted exactly like known ones, so a lockout says nothing about whether an account exists.
//!
//! The counts live behind [`LockoutStore`], the same seam as rate limits: [`MemoryLockouts`] in
//! this process, or a Redis store in `gatehouse-infra` shared by every instance (one atomic
//! script per call), so three instances allow the guesses one would, and restarting one
//! forgets nothing (the in-process store forgets its counts with the process, and counts made
//! in-process while Redis is away are not carried into Redis when it returns).

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};

use crate::error::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Failures allowed before the first lock.
    pub threshold: u32,
    pub first_lock: Duration,
    pub max_lock: Duration,
    /// Failures older than this are forgotten.
    pub forget_after: Duration,
}

impl LockoutPolicy {
    /// The lock that the `failures`-th failure starts, if it starts one.
    #[must_use]
    pub fn lock_after(&self, failures: u32) -> Option<Duration> {
        if failures < self.threshold {
            return None;
        }
        let doublings = (failures - self.threshold).min(20);
        Some(
            self.first_lock
                .saturating_mul(2_i32.pow(doublings))
                .min(self.max_lock),
        )
    }
}

/// Which family of counts a subject belongs to; two families never share a count, whatever
/// their subjects' text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CountKind {
    /// One account from one address (or, for second factors, from every address).
    Pair,
    /// One account from every address.
    Account,
    /// One client address, whatever the account.
    Address,
}

impl CountKind {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pair => "pair",
            Self::Account => "account",
            Self::Address => "address",
        }
    }
}

/// One count an attempt goes against.
#[derive(Debug, Clone, Copy)]
pub struct Count<'a> {
    pub kind: CountKind,
    pub subject: &'a str,
    /// The group [`LockoutStore::clear_group`] forgets this count with (every address's count
    /// against one account). It must be a prefix of `subject`.
    pub group: Option<&'a str>,
    pub policy: LockoutPolicy,
}

/// Where the counts live. Every method is one atomic step, whichever store.
#[async_trait]
pub trait LockoutStore: Send + Sync + std::fmt::Debug {
    /// Counts one attempt against every count, all or none: while any of them is locked at
    /// `now` nothing is counted and the longest wait comes back. The attempt counts as a
    /// failure before it is checked (so parallel guesses cannot all pass one check) until
    /// [`Self::refund`] or [`Self::clear`] takes it back.
    async fn attempt(
        &self,
        counts: &[Count<'_>],
        now: OffsetDateTime,
    ) -> Result<Option<Duration>, Error>;
    /// Takes back one attempt from each count (it turned out right), lifting a lock it set.
    async fn refund(&self, counts: &[Count<'_>]) -> Result<(), Error>;
    /// Forgets each count.
    async fn clear(&self, counts: &[Count<'_>]) -> Result<(), Error>;
    /// Forgets every count of `kind` in `group`.
    async fn clear_group(&self, kind: CountKind, group: &str) -> Result<(), Error>;
    /// A throttle: `true` (and `now` recorded) when nothing was let through for `key` within
    /// `period` before `now`, else `false`.
    async fn first_within(
        &self,
        key: &str,
        period: Duration,
        now: OffsetDateTime,
    ) -> Result<bool, Error>;
    /// Forgets what has run out (the in-process store; Redis expires its keys by itself).
    fn prune(&self, _now: OffsetDateTime) -> usize {
        0
    }
    /// `memory`, `redis` or `memory-fallback`, for logs and the readiness report.
    fn kind(&self) -> &'static str;
}

#[derive(Debug, Clone, Copy)]
struct State {
    failures: u32,
    last_failure: OffsetDateTime,
    locked_until: Option<OffsetDateTime>,
    /// How long this entry matters after its last failure (the longer of its lock and the
    /// policy's forgetting time).
    keep: Duration,
}

impl State {
    fn matters_at(&self, now: OffsetDateTime) -> bool {
        now - self.last_failure < self.keep
    }
}

#[derive(Debug, Default)]
struct Maps {
    counts: HashMap<String, State>,
    /// Throttle key to when it last let something through, and for how long that holds.
    throttles: HashMap<String, (OffsetDateTime, Duration)>,
}

/// The counts in this process: what a single instance uses, and what the Redis store falls back
/// to while Redis is away.
#[derive(Debug, Default)]
pub struct MemoryLockouts {
    maps: Mutex<Maps>,
}

const MAX_SUBJECTS: usize = 200_000;

fn key(kind: CountKind, subject: &str) -> String {
    format!("{}:{subject}", kind.as_str())
}

impl MemoryLockouts {
    fn maps(&self) -> std::sync::MutexGuard<'_, Maps> {
        self.maps
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The synchronous [`LockoutStore::attempt`].
    pub fn attempt_now(&self, counts: &[Count<'_>], now: OffsetDateTime) -> Option<Duration> {
        let mut maps = self.maps();
        let wait = counts
            .iter()
            .filter_map(|c| maps.counts.get(&key(c.kind, c.subject))?.locked_until)
            .filter(|until| *until > now)
            .map(|until| until - now)
            .max();
        if wait.is_some() {
            return wait;
        }
        if maps.counts.len() >= MAX_SUBJECTS {
            make_room(&mut maps.counts, now);
        }
        for c in counts {
            let s = maps.counts.entry(key(c.kind, c.subject)).or_insert(State {
                failures: 0,
                last_failure: now,
                locked_until: None,
                keep: c.policy.forget_after,
            });
            if now - s.last_failure >= c.policy.forget_after {
                s.failures = 0;
            }
            s.failures = s.failures.saturating_add(1);
            s.last_failure = now;
            s.keep = c.policy.forget_after;
            if let Some(lock) = c.policy.lock_after(s.failures) {
                s.locked_until = Some(now + lock);
                s.keep = s.keep.max(lock);
            }
        }
        None
    }

    fn refund_now(&self, counts: &[Count<'_>]) {
        let mut maps = self.maps();
        for c in counts {
            if let Some(s) = maps.counts.get_mut(&key(c.kind, c.subject)) {
                s.failures = s.failures.saturating_sub(1);
                if s.failures < c.policy.threshold {
                    s.locked_until = None;
                }
            }
        }
    }

    fn first_within_now(&self, key: &str, period: Duration, now: OffsetDateTime) -> bool {
        let mut maps = self.maps();
        if maps.throttles.len() >= MAX_SUBJECTS {
            maps.throttles.retain(|_, (at, p)| now - *at < *p);
        }
        match maps.throttles.get(key) {
            Some((at, p)) if now - *at < *p => false,
            _ => {
                maps.throttles.insert(key.to_owned(), (now, period));
                true
            }
        }
    }
}

/// A full table: forget what has run out; if recent failures still fill it, keep only what is
/// locked; if even that fills it, start again rather than grow.
fn make_room(counts: &mut HashMap<String, State>, now: OffsetDateTime) {
    counts.retain(|_, s| s.matters_at(now));
    if counts.len() >= MAX_SUBJECTS {
        counts.retain(|_, s| s.locked_until.is_some_and(|u| u > now));
    }
    if counts.len() >= MAX_SUBJECTS {
        counts.clear();
    }
}

#[async_trait]
impl LockoutStore for MemoryLockouts {
    async fn attempt(
        &self,
        counts: &[Count<'_>],
        now: OffsetDateTime,
    ) -> Result<Option<Duration>, Error> {
        Ok(self.attempt_now(counts, now))
    }

    async fn refund(&self, counts: &[Count<'_>]) -> Result<(), Error> {
        self.refund_now(counts);
        Ok(())
    }

    async fn clear(&self, counts: &[Count<'_>]) -> Result<(), Error> {
        let mut maps = self.maps();
        for c in counts {
            maps.counts.remove(&key(c.kind, c.subject));
        }
        Ok(())
    }

    async fn clear_group(&self, kind: CountKind, group: &str) -> Result<(), Error> {
        let prefix = key(kind, group);
        self.maps().counts.retain(|k, _| !k.starts_with(&prefix));
        Ok(())
    }

    async fn first_within(
        &self,
        key: &str,
        period: Duration,
        now: OffsetDateTime,
    ) -> Result<bool, Error> {
        Ok(self.first_within_now(key, period, now))
    }

    /// Forgets every count neither locked at `now` nor with a failure recent enough to count,
    /// and every throttle that has run out; returns how many counts went.
    fn prune(&self, now: OffsetDateTime) -> usize {
        let mut maps = self.maps();
        let before = maps.counts.len();
        maps.counts.retain(|_, s| s.matters_at(now));
        maps.throttles.retain(|_, (at, p)| now - *at < *p);
        before - maps.counts.len()
    }

    fn kind(&self) -> &'static str {
        "memory"
    }
}

#[cfg(test)]
#[path = "lockout_tests.rs"]
mod tests;

//! The in-process store: TATs in sharded maps (one lock per shard, held for a few arithmetic
//! operations), swept of keys whose quota has fully recovered.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;

use async_trait::async_trait;

use super::RateLimitStore;
use super::gcra::{self, Decision, Quota};
use crate::error::Error;

const SHARDS: usize = 16;
/// Keys kept per shard before a sweep of fully recovered ones.
const SWEEP_AT: usize = 50_000;

#[derive(Debug)]
pub struct MemoryLimiter {
    shards: Vec<Mutex<HashMap<String, i64>>>,
    hasher: RandomState,
}

impl Default for MemoryLimiter {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
        }
    }
}

impl MemoryLimiter {
    /// The synchronous decision (also what the async trait method runs).
    pub fn decide_now(&self, key: &str, quota: Quota, now_us: i64) -> Decision {
        let shard = usize::try_from(self.hasher.hash_one(key) % SHARDS as u64).unwrap_or(0);
        let Some(lock) = self.shards.get(shard) else {
            return gcra::decide(None, quota, now_us).0;
        };
        let mut map = lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= SWEEP_AT {
            // A TAT in the past means the key has its whole quota back: same as absent.
            map.retain(|_, tat| *tat > now_us);
        }
        let stored = map.get(key).copied();
        let (decision, tat) = gcra::decide(stored, quota, now_us);
        if decision.allowed {
            if let Some(slot) = map.get_mut(key) {
                *slot = tat;
            } else {
                map.insert(key.to_owned(), tat);
            }
        }
        decision
    }
}

#[async_trait]
impl RateLimitStore for MemoryLimiter {
    async fn decide(&self, key: &str, quota: Quota, now_us: i64) -> Result<Decision, Error> {
        Ok(self.decide_now(key, quota, now_us))
    }

    fn kind(&self) -> &'static str {
        "memory"
    }
}

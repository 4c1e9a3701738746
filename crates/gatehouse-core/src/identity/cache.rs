//! Session state per request without a store round trip: a bounded in-memory map of session id to
//! (revoked, expiry), filled on first sight and updated by every revocation. Revocations are also
//! published through a [`RevocationFanout`], so other instances (Redis, later) drop the session
//! from their caches on the very next request.

use std::collections::HashMap;
use std::sync::{Mutex, RwLock};

use time::OffsetDateTime;
use uuid::Uuid;

/// Carries revocations to other instances. The in-process default has none to tell.
pub trait RevocationFanout: Send + Sync + std::fmt::Debug {
    fn publish(&self, session: Uuid);
}

#[derive(Debug, Default)]
pub struct LocalOnly;

impl RevocationFanout for LocalOnly {
    fn publish(&self, _: Uuid) {}
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachedSession {
    pub revoked: bool,
    pub expires_at: OffsetDateTime,
}

#[derive(Debug)]
pub struct SessionCache {
    entries: RwLock<HashMap<Uuid, CachedSession>>,
    seen: Mutex<HashMap<Uuid, OffsetDateTime>>,
    capacity: usize,
}

impl SessionCache {
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: RwLock::new(HashMap::new()),
            seen: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    #[must_use]
    pub fn get(&self, id: Uuid) -> Option<CachedSession> {
        self.entries.read().ok()?.get(&id).copied()
    }

    pub fn put(&self, id: Uuid, state: CachedSession) {
        if let Ok(mut map) = self.entries.write() {
            if map.len() >= self.capacity && !map.contains_key(&id) {
                // Bounded: start over rather than grow. Entries refill from the store on demand.
                map.clear();
            }
            map.insert(id, state);
        }
    }

    /// Marks the session revoked here; callers also publish it through the fanout.
    pub fn revoke(&self, id: Uuid, expires_at: OffsetDateTime) {
        self.put(
            id,
            CachedSession {
                revoked: true,
                expires_at,
            },
        );
    }

    /// Notes a request on the session; flushed in batches by `take_seen`.
    pub fn saw(&self, id: Uuid, at: OffsetDateTime) {
        if let Ok(mut seen) = self.seen.lock()
            && seen.len() < self.capacity
        {
            seen.insert(id, at);
        }
    }

    pub fn take_seen(&self) -> Vec<(Uuid, OffsetDateTime)> {
        self.seen
            .lock()
            .map(|mut s| s.drain().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revocation_overrides_and_capacity_bounds() {
        let c = SessionCache::new(2);
        let t = OffsetDateTime::UNIX_EPOCH;
        let (a, b, d) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        let live = CachedSession {
            revoked: false,
            expires_at: t,
        };
        c.put(a, live);
        c.put(b, live);
        c.revoke(a, t);
        assert!(c.get(a).unwrap().revoked);
        c.put(d, live);
        assert!(c.get(a).is_none() && c.get(d).is_some());
        c.saw(d, t);
        assert_eq!(c.take_seen(), vec![(d, t)]);
        assert!(c.take_seen().is_empty());
    }
}

//! Session state per request without a store round trip: a bounded in-memory map of session id to
//! (revoked, expiry), filled on first sight and updated by every revocation. Revocations are also
//! published through a [`RevocationFanout`], so other instances (Redis, later) drop the session
//! from their caches on the very next request.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

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

/// One session's state. Requests only read the map and store into atomics, so the hot path takes
/// no exclusive lock.
#[derive(Debug)]
struct Entry {
    revoked: AtomicBool,
    expires_at: OffsetDateTime,
    /// Unix microseconds of the last request, and of the last one written to the store.
    last_seen: AtomicI64,
    flushed: AtomicI64,
}

#[derive(Debug)]
pub struct SessionCache {
    entries: RwLock<HashMap<Uuid, Arc<Entry>>>,
    capacity: usize,
}

impl SessionCache {
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: RwLock::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    #[must_use]
    pub fn get(&self, id: Uuid) -> Option<CachedSession> {
        let map = self.entries.read().ok()?;
        let e = map.get(&id)?;
        Some(CachedSession {
            revoked: e.revoked.load(Ordering::Acquire),
            expires_at: e.expires_at,
        })
    }

    pub fn put(&self, id: Uuid, state: CachedSession) {
        if let Ok(mut map) = self.entries.write() {
            if map.len() >= self.capacity && !map.contains_key(&id) {
                // Bounded: start over rather than grow. Entries refill from the store on demand;
                // last-seen times not yet written are lost (bookkeeping only).
                map.clear();
            }
            match map.get(&id) {
                Some(e) if e.expires_at == state.expires_at => {
                    if state.revoked {
                        e.revoked.store(true, Ordering::Release);
                    }
                }
                _ => {
                    map.insert(
                        id,
                        Arc::new(Entry {
                            revoked: AtomicBool::new(state.revoked),
                            expires_at: state.expires_at,
                            last_seen: AtomicI64::new(0),
                            flushed: AtomicI64::new(0),
                        }),
                    );
                }
            }
        }
    }

    /// Marks the session revoked here; callers also publish it through the fanout.
    pub fn revoke(&self, id: Uuid, expires_at: OffsetDateTime) {
        let found = self.entries.read().ok().and_then(|m| m.get(&id).cloned());
        match found {
            Some(e) => e.revoked.store(true, Ordering::Release),
            None => self.put(
                id,
                CachedSession {
                    revoked: true,
                    expires_at,
                },
            ),
        }
    }

    /// Notes a request on the session; written to the store in batches by `take_seen`.
    pub fn saw(&self, id: Uuid, at: OffsetDateTime) {
        if let Ok(map) = self.entries.read()
            && let Some(e) = map.get(&id)
        {
            e.last_seen
                .fetch_max(crate::clock::unix_micros(at), Ordering::Relaxed);
        }
    }

    /// Sessions seen since the last call, with their newest time.
    pub fn take_seen(&self) -> Vec<(Uuid, OffsetDateTime)> {
        let Ok(map) = self.entries.read() else {
            return Vec::new();
        };
        map.iter()
            .filter_map(|(id, e)| {
                let seen = e.last_seen.load(Ordering::Relaxed);
                let before = e.flushed.swap(seen, Ordering::Relaxed);
                (seen > before)
                    .then(|| crate::clock::from_unix_micros(seen).map(|t| (*id, t)))
                    .flatten()
            })
            .collect()
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
        let later = t + time::Duration::seconds(5);
        c.saw(d, later);
        c.saw(d, t);
        assert_eq!(c.take_seen(), vec![(d, later)]);
        assert!(c.take_seen().is_empty());
    }
}

//! Session state per request without a store round trip: a bounded in-memory map of session id to
//! (revoked, expiry), filled on first sight and updated by every revocation. Revocations are also
//! published through a [`RevocationFanout`], so other instances (Redis, later) drop the session
//! from their caches on the very next request.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use time::OffsetDateTime;
use uuid::Uuid;

use crate::ids::{OrgId, UserId};

/// What another instance must forget at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revocation {
    Session(Uuid),
    ApiKey(Uuid),
    /// A membership changed (role, removal, new): its cached role is stale.
    Membership {
        org: OrgId,
        user: UserId,
    },
    /// An organisation's custom roles changed: what its keys may do is stale.
    Roles(OrgId),
    /// One of the product's records was created, changed or deleted: decisions about it are
    /// stale (`x:{org}:{type}:{external_id}`; a type has no colon, the id may).
    Record {
        org: OrgId,
        kind: String,
        external_id: String,
    },
    /// A grant from `owner` to `grantee` was made or revoked (`g:{owner}:{grantee}`).
    Grant {
        owner: OrgId,
        grantee: OrgId,
    },
    /// Share links of an organisation were revoked, changed or lost their record: rows kept in
    /// memory to serve opens are stale (`l:{org}`).
    ShareLinks(OrgId),
    /// A person confirmed or removed their second factor: whether they have one, and what the
    /// API keys acting for them may do, are stale (`f:{user}`).
    SecondFactor(UserId),
    /// An app was registered or removed: which audiences are registered is stale (`a:`).
    Apps,
    /// A connector was refreshed, disconnected or changed status: its cached sealed token is
    /// stale (`c:{org}:{id}`).
    Connector {
        org: OrgId,
        id: Uuid,
    },
}

impl Revocation {
    /// The wire form: `s:{uuid}`, `k:{uuid}`, `m:{org}:{user}`, `r:{org}`, `x:...`, `g:...`,
    /// `l:{org}`, `f:{user}`, `a:` or `c:{org}:{id}`. An instance that does not know a kind ignores it.
    #[must_use]
    pub fn encode(&self) -> String {
        match self {
            Self::Session(id) => format!("s:{id}"),
            Self::ApiKey(id) => format!("k:{id}"),
            Self::Membership { org, user } => format!("m:{org}:{user}"),
            Self::Roles(org) => format!("r:{org}"),
            Self::Record {
                org,
                kind,
                external_id,
            } => format!("x:{org}:{kind}:{external_id}"),
            Self::Grant { owner, grantee } => format!("g:{owner}:{grantee}"),
            Self::ShareLinks(org) => format!("l:{org}"),
            Self::SecondFactor(user) => format!("f:{user}"),
            Self::Apps => "a:".to_owned(),
            Self::Connector { org, id } => format!("c:{org}:{id}"),
        }
    }

    #[must_use]
    pub fn decode(text: &str) -> Option<Self> {
        let (kind, rest) = text.split_once(':')?;
        match kind {
            "s" => Some(Self::Session(Uuid::try_parse(rest).ok()?)),
            "a" if rest.is_empty() => Some(Self::Apps),
            "k" => Some(Self::ApiKey(Uuid::try_parse(rest).ok()?)),
            "r" => Some(Self::Roles(OrgId::from_uuid(Uuid::try_parse(rest).ok()?))),
            "l" => Some(Self::ShareLinks(OrgId::from_uuid(
                Uuid::try_parse(rest).ok()?,
            ))),
            "f" => Some(Self::SecondFactor(UserId::from_uuid(
                Uuid::try_parse(rest).ok()?,
            ))),
            "x" => {
                let mut parts = rest.splitn(3, ':');
                let org = OrgId::from_uuid(Uuid::try_parse(parts.next()?).ok()?);
                let kind = parts.next().filter(|k| !k.is_empty())?.to_owned();
                let external_id = parts.next().filter(|e| !e.is_empty())?.to_owned();
                Some(Self::Record {
                    org,
                    kind,
                    external_id,
                })
            }
            "g" => {
                let (owner, grantee) = rest.split_once(':')?;
                Some(Self::Grant {
                    owner: OrgId::from_uuid(Uuid::try_parse(owner).ok()?),
                    grantee: OrgId::from_uuid(Uuid::try_parse(grantee).ok()?),
                })
            }
            "c" => {
                let (org, id) = rest.split_once(':')?;
                Some(Self::Connector {
                    org: OrgId::from_uuid(Uuid::try_parse(org).ok()?),
                    id: Uuid::try_parse(id).ok()?,
                })
            }
            "m" => {
                let (org, user) = rest.split_once(':')?;
                Some(Self::Membership {
                    org: OrgId::from_uuid(Uuid::try_parse(org).ok()?),
                    user: UserId::from_uuid(Uuid::try_parse(user).ok()?),
                })
            }
            _ => None,
        }
    }
}

tokio::task_local! {
    /// Set when the request running in this task published a revocation.
    static PUBLISHED: std::cell::Cell<bool>;
}

/// Runs `work` and says whether it published a revocation on its way (through any fan-out
/// that calls [`note_published`]): the HTTP layer waits for the publish only then.
pub async fn noting_publishes<F: std::future::Future>(work: F) -> (F::Output, bool) {
    PUBLISHED
        .scope(std::cell::Cell::new(false), async {
            let out = work.await;
            (out, PUBLISHED.with(std::cell::Cell::get))
        })
        .await
}

/// Marks the running request as one that published a revocation (nothing outside
/// [`noting_publishes`]).
pub fn note_published() {
    let _ = PUBLISHED.try_with(|p| p.set(true));
}

/// Carries revocations to other instances (Redis pub/sub in `gatehouse-infra`). The in-process
/// default has none to tell. `publish` never blocks; the HTTP layer waits (at most 2 s) for a
/// request's publishes before answering it (`noting_publishes`).
#[async_trait::async_trait]
pub trait RevocationFanout: Send + Sync + std::fmt::Debug {
    fn publish(&self, revocation: Revocation);

    /// Waits until what was published so far has been sent (or failed): a short-lived process,
    /// such as a CLI command that revoked sessions, calls it before it exits.
    async fn flush(&self) {}
}

#[derive(Debug, Default)]
pub struct LocalOnly;

#[async_trait::async_trait]
impl RevocationFanout for LocalOnly {
    fn publish(&self, _: Revocation) {}
}

/// How long a cached session state is trusted before the store is asked again: the bound on a
/// revocation that reached this instance by no other path (a lost fan-out message).
pub const SESSION_CACHE_MAX_AGE: time::Duration = time::Duration::seconds(30);

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
    loaded_at: OffsetDateTime,
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

    /// The cached state, unless it is older than [`SESSION_CACHE_MAX_AGE`] at `now`.
    #[must_use]
    pub fn get(&self, id: Uuid, now: OffsetDateTime) -> Option<CachedSession> {
        let found = self.lookup(id, now);
        crate::telemetry::metrics::cache("session", found.is_some());
        found
    }

    fn lookup(&self, id: Uuid, now: OffsetDateTime) -> Option<CachedSession> {
        let map = self.entries.read().ok()?;
        let e = map.get(&id)?;
        if now - e.loaded_at > SESSION_CACHE_MAX_AGE {
            return None;
        }
        Some(CachedSession {
            revoked: e.revoked.load(Ordering::Acquire),
            expires_at: e.expires_at,
        })
    }

    pub fn put(&self, id: Uuid, state: CachedSession, now: OffsetDateTime) {
        if let Ok(mut map) = self.entries.write() {
            if map.len() >= self.capacity && !map.contains_key(&id) {
                // Bounded: start over rather than grow. Entries refill from the store on demand;
                // last-seen times not yet written are lost (bookkeeping only).
                map.clear();
            }
            // A revoked entry stays revoked: a racing issue cannot resurrect it. Its noted
            // requests carry over too (a switch of organisation or a step-up reissues the
            // entry), so neither the idle check nor the flush loses one.
            let old = map.get(&id);
            let revoked = state.revoked || old.is_some_and(|e| e.revoked.load(Ordering::Acquire));
            let (last_seen, flushed) = old.map_or((0, 0), |e| {
                (
                    e.last_seen.load(Ordering::Relaxed),
                    e.flushed.load(Ordering::Relaxed),
                )
            });
            map.insert(
                id,
                Arc::new(Entry {
                    revoked: AtomicBool::new(revoked),
                    expires_at: state.expires_at,
                    loaded_at: now,
                    last_seen: AtomicI64::new(last_seen),
                    flushed: AtomicI64::new(flushed),
                }),
            );
        }
    }

    /// Marks the session revoked here; callers also publish it through the fanout.
    pub fn revoke(&self, id: Uuid, expires_at: OffsetDateTime, now: OffsetDateTime) {
        let found = self.entries.read().ok().and_then(|m| m.get(&id).cloned());
        match found {
            Some(e) => e.revoked.store(true, Ordering::Release),
            None => self.put(
                id,
                CachedSession {
                    revoked: true,
                    expires_at,
                },
                now,
            ),
        }
    }

    /// A revocation from another instance: marks the session if it is cached (an uncached one
    /// is read from the store, which already says it is revoked).
    pub fn revoked_elsewhere(&self, id: Uuid) {
        if let Ok(map) = self.entries.read()
            && let Some(e) = map.get(&id)
        {
            e.revoked.store(true, Ordering::Release);
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

    /// The newest request this instance has noted on the session, flushed or not (`None` when
    /// it has noted none since the entry was loaded): what the idle check adds to the store's
    /// `last_seen_at`, which trails it by up to one flush.
    #[must_use]
    pub fn last_seen(&self, id: Uuid) -> Option<OffsetDateTime> {
        let map = self.entries.read().ok()?;
        let seen = map.get(&id)?.last_seen.load(Ordering::Relaxed);
        (seen > 0)
            .then(|| crate::clock::from_unix_micros(seen))
            .flatten()
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
        c.put(a, live, t);
        c.put(b, live, t);
        c.revoke(a, t, t);
        assert!(c.get(a, t).unwrap().revoked);
        // A later put cannot resurrect it; a remote revocation marks a cached entry.
        c.put(a, live, t);
        assert!(c.get(a, t).unwrap().revoked);
        c.revoked_elsewhere(b);
        assert!(c.get(b, t).unwrap().revoked);
        // Entries older than the bound are asked of the store again.
        assert!(
            c.get(b, t + SESSION_CACHE_MAX_AGE + time::Duration::seconds(1))
                .is_none()
        );
        c.put(d, live, t);
        assert!(c.get(a, t).is_none() && c.get(d, t).is_some());
        let later = t + time::Duration::seconds(5);
        assert_eq!(c.last_seen(d), None);
        c.saw(d, later);
        c.saw(d, t);
        assert_eq!(c.last_seen(d), Some(later));
        assert_eq!(c.take_seen(), vec![(d, later)]);
        assert!(c.take_seen().is_empty());
        // Flushed or not, the newest noted request stays known here.
        assert_eq!(c.last_seen(d), Some(later));
        // Reissuing the entry (a switch of organisation, a step-up) keeps what was noted and
        // what was written: nothing is lost, nothing is written twice.
        let newest = later + time::Duration::seconds(5);
        c.saw(d, newest);
        c.put(d, live, newest);
        assert_eq!(c.last_seen(d), Some(newest));
        assert_eq!(c.take_seen(), vec![(d, newest)]);
        c.put(d, live, newest);
        assert!(c.take_seen().is_empty());
    }

    #[test]
    fn every_revocation_round_trips_its_wire_form_and_junk_is_refused() {
        let (a, b) = (Uuid::from_u128(7), Uuid::from_u128(9));
        for r in [
            Revocation::Session(a),
            Revocation::ApiKey(a),
            Revocation::Membership {
                org: OrgId::from_uuid(a),
                user: UserId::from_uuid(b),
            },
            Revocation::Roles(OrgId::from_uuid(b)),
            Revocation::Record {
                org: OrgId::from_uuid(a),
                kind: "report".into(),
                external_id: "q3:emea".into(),
            },
            Revocation::Grant {
                owner: OrgId::from_uuid(a),
                grantee: OrgId::from_uuid(b),
            },
            Revocation::ShareLinks(OrgId::from_uuid(a)),
            Revocation::SecondFactor(UserId::from_uuid(b)),
            Revocation::Apps,
        ] {
            assert_eq!(Revocation::decode(&r.encode()), Some(r));
        }
        for junk in [
            "",
            "s:",
            "x:{a}",
            "m:{a}",
            "m:{a}:nope",
            "k:{a}:{a}",
            "r:",
            "r:{a}:{a}",
            "x:{a}:report",
            "x:{a}::r1",
            "x:nope:report:r1",
            "g:{a}",
            "g:{a}:nope",
            "f:",
            "f:{a}:{a}",
            "a:{a}",
        ] {
            let text = junk.replace("{a}", &a.to_string());
            assert_eq!(Revocation::decode(&text), None, "{text}");
        }
    }
}

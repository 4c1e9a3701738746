//! What a check decides from, without a store round trip per check: the product's records as
//! the check API looks them up (by organisation, type and the product's id, with the grant that
//! reaches another organisation's record), and roles' permission sets. Every change
//! forgets its entries here and publishes a revocation (`Revocation::Record`, `Revocation::Grant`,
//! `Revocation::Roles`) that other instances apply the same way; an entry is trusted for
//! [`DECISION_CACHE_MAX_AGE`] at most, the bound on a change whose fan-out message was lost, and
//! a grant's expiry (here) and a record's (`lookup.rs`) are judged at each decision, so either is
//! refused at its expiry instant without any message. Listings and reads of records never use this cache.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use time::OffsetDateTime;
use uuid::Uuid;

use crate::ids::OrgId;
use crate::store::{GrantAccess, RecordRow};

/// As long as a session's or a membership's cached state (30 s).
pub const DECISION_CACHE_MAX_AGE: time::Duration = crate::identity::MEMBERSHIP_CACHE_MAX_AGE;

/// The grant through which another organisation's record was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Through {
    pub grant_id: Uuid,
    pub access: GrantAccess,
    pub expires_at: Option<OffsetDateTime>,
}

/// A record as a check sees it from one organisation: its own, another's through a grant, or
/// none (unknown, or not reachable from there). Shared, so a hit copies nothing.
pub type Seen = Option<Arc<(RecordRow, Option<Through>)>>;

#[derive(Debug, Clone)]
struct Stamped<T> {
    value: T,
    loaded_at: OffsetDateTime,
}

/// (owner organisation, type, the product's id) -> (asking organisation -> what it sees).
type RecordMap = HashMap<(OrgId, String, String), HashMap<OrgId, Stamped<Seen>>>;

#[derive(Debug, Default)]
struct Inner {
    records: RecordMap,
    record_entries: usize,
    roles: HashMap<(OrgId, String), Stamped<Arc<[String]>>>,
}

#[derive(Debug)]
pub struct DecisionCache {
    inner: RwLock<Inner>,
    capacity: usize,
    /// Moves on every forget: a lookup that began before a change must not store what it read
    /// after the change cleared the entry.
    generation: AtomicU64,
}

impl Default for DecisionCache {
    fn default() -> Self {
        Self::new(100_000)
    }
}

impl DecisionCache {
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: RwLock::new(Inner::default()),
            capacity: capacity.max(1),
            generation: AtomicU64::new(0),
        }
    }

    /// Where the cache stands now; pass it to the `put_*` call after reading the store.
    #[must_use]
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// What `asking` sees of `owner`'s record, when cached and still good at `now`.
    #[must_use]
    pub fn record(
        &self,
        asking: OrgId,
        owner: OrgId,
        kind: &str,
        external_id: &str,
        now: OffsetDateTime,
    ) -> Option<Seen> {
        let found = self.inner.read().ok().and_then(|inner| {
            inner
                .records
                .get(&(owner, kind.to_owned(), external_id.to_owned()))
                .and_then(|m| m.get(&asking))
                .filter(|e| now - e.loaded_at <= DECISION_CACHE_MAX_AGE)
                .filter(|e| match e.value.as_deref() {
                    // Past the grant's expiry the store is asked again: another grant may
                    // still cover the record, or none.
                    Some((_, Some(t))) => t.expires_at.is_none_or(|x| x > now),
                    _ => true,
                })
                .map(|e| e.value.clone())
        });
        crate::telemetry::metrics::cache("decision_record", found.is_some());
        found
    }

    pub fn put_record(
        &self,
        asking: OrgId,
        key: (OrgId, &str, &str),
        seen: Seen,
        now: OffsetDateTime,
        read_at: u64,
    ) {
        let Ok(mut inner) = self.inner.write() else {
            return;
        };
        if self.generation.load(Ordering::Acquire) != read_at {
            return;
        }
        if inner.record_entries >= self.capacity {
            inner.records.clear();
            inner.record_entries = 0;
        }
        let slot = inner
            .records
            .entry((key.0, key.1.to_owned(), key.2.to_owned()))
            .or_default();
        let added = slot
            .insert(
                asking,
                Stamped {
                    value: seen,
                    loaded_at: now,
                },
            )
            .is_none();
        if added {
            inner.record_entries += 1;
        }
    }

    /// A role's permissions in `org`, when cached and fresh.
    #[must_use]
    pub fn role(&self, org: OrgId, role: &str, now: OffsetDateTime) -> Option<Arc<[String]>> {
        self.inner.read().ok().and_then(|inner| {
            inner
                .roles
                .get(&(org, role.to_owned()))
                .filter(|e| now - e.loaded_at <= DECISION_CACHE_MAX_AGE)
                .map(|e| e.value.clone())
        })
    }

    pub fn put_role(
        &self,
        org: OrgId,
        role: &str,
        permissions: Arc<[String]>,
        now: OffsetDateTime,
        read_at: u64,
    ) {
        let Ok(mut inner) = self.inner.write() else {
            return;
        };
        if self.generation.load(Ordering::Acquire) != read_at {
            return;
        }
        if inner.roles.len() >= self.capacity {
            inner.roles.clear();
        }
        inner.roles.insert(
            (org, role.to_owned()),
            Stamped {
                value: permissions,
                loaded_at: now,
            },
        );
    }

    /// A record changed: forget what every organisation saw of it.
    pub fn forget_record(&self, owner: OrgId, kind: &str, external_id: &str) {
        if let Ok(mut inner) = self.inner.write() {
            self.generation.fetch_add(1, Ordering::AcqRel);
            if let Some(m) = inner
                .records
                .remove(&(owner, kind.to_owned(), external_id.to_owned()))
            {
                inner.record_entries = inner.record_entries.saturating_sub(m.len());
            }
        }
    }

    /// A grant from `owner` to `grantee` changed: forget what `grantee` saw of `owner`'s
    /// records (rare, so a scan).
    pub fn forget_grant(&self, owner: OrgId, grantee: OrgId) {
        if let Ok(mut inner) = self.inner.write() {
            self.generation.fetch_add(1, Ordering::AcqRel);
            let mut removed = 0;
            inner.records.retain(|(o, _, _), m| {
                if *o == owner && m.remove(&grantee).is_some() {
                    removed += 1;
                }
                !m.is_empty()
            });
            inner.record_entries = inner.record_entries.saturating_sub(removed);
        }
    }

    /// An organisation's custom roles changed.
    pub fn forget_roles(&self, org: OrgId) {
        if let Ok(mut inner) = self.inner.write() {
            self.generation.fetch_add(1, Ordering::AcqRel);
            inner.roles.retain(|(o, _), _| *o != org);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::store::Level;

    fn row(org: OrgId) -> RecordRow {
        RecordRow {
            org_id: org,
            id: Uuid::from_u128(5),
            kind: "report".into(),
            external_id: "r1".into(),
            namespace: None,
            owner: "user:x".into(),
            level: Level::Organization,
            allowed: Vec::new(),
            tags: Vec::new(),
            has_content: false,
            created_at: OffsetDateTime::UNIX_EPOCH,
            updated_at: OffsetDateTime::UNIX_EPOCH,
            expires_at: None,
        }
    }

    #[test]
    fn entries_age_out_expire_with_their_grant_and_are_forgotten_on_change() {
        let c = DecisionCache::new(3);
        let t = OffsetDateTime::UNIX_EPOCH + time::Duration::days(1);
        let (a, b) = (
            OrgId::from_uuid(Uuid::from_u128(1)),
            OrgId::from_uuid(Uuid::from_u128(2)),
        );
        assert_eq!(c.record(a, a, "report", "r1", t), None);
        c.put_record(
            a,
            (a, "report", "r1"),
            Some(Arc::new((row(a), None))),
            t,
            c.generation(),
        );
        assert!(c.record(a, a, "report", "r1", t).is_some());
        let late = t + DECISION_CACHE_MAX_AGE + time::Duration::seconds(1);
        assert_eq!(c.record(a, a, "report", "r1", late), None, "aged out");
        // Through a grant expiring in ten seconds: good until then, not at that second.
        let through = Through {
            grant_id: Uuid::from_u128(9),
            access: GrantAccess::Read,
            expires_at: Some(t + time::Duration::seconds(10)),
        };
        c.put_record(
            b,
            (a, "report", "r1"),
            Some(Arc::new((row(a), Some(through)))),
            t,
            c.generation(),
        );
        let nine = t + time::Duration::seconds(9);
        assert!(c.record(b, a, "report", "r1", nine).is_some());
        assert_eq!(
            c.record(b, a, "report", "r1", t + time::Duration::seconds(10)),
            None
        );
        // A grant change forgets what the grantee saw of the owner's records, not the owner's.
        c.forget_grant(a, b);
        assert_eq!(c.record(b, a, "report", "r1", t), None);
        assert!(c.record(a, a, "report", "r1", t).is_some());
        // A record change forgets it for everyone; a read begun before it stores nothing.
        let before = c.generation();
        c.forget_record(a, "report", "r1");
        assert_eq!(c.record(a, a, "report", "r1", t), None);
        c.put_record(a, (a, "report", "r1"), None, t, before);
        assert_eq!(c.record(a, a, "report", "r1", t), None);
        // Negative answers are cached too, and bounded.
        for i in 0..10 {
            let id = format!("n{i}");
            c.put_record(a, (a, "report", &id), None, t, c.generation());
        }
        assert!(c.inner.read().unwrap().record_entries <= 3);
        let held: Arc<[String]> = vec!["report.read".to_owned()].into();
        c.put_role(a, "ops", Arc::clone(&held), t, c.generation());
        assert_eq!(c.role(a, "ops", t), Some(held));
        c.forget_roles(a);
        assert_eq!(c.role(a, "ops", t), None);
    }
}

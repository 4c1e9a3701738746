//! Who is a member of which organisation, and with what role, without a store round trip per
//! forward-authentication request. A token names the role its holder had when it was issued; a
//! role change or a removal must reach `GET /v1/auth/verify` at once, not when the token expires.
//! Every change forgets the entry here and publishes `Revocation::Membership`, so other
//! instances forget it too; an entry is trusted for [`MEMBERSHIP_CACHE_MAX_AGE`] at most, the
//! bound on a change whose fan-out message was lost.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use time::OffsetDateTime;

use crate::ids::{OrgId, UserId};
use crate::store::Role;

/// As long as a session's cached state: the same bound on a lost fan-out message.
pub const MEMBERSHIP_CACHE_MAX_AGE: time::Duration = super::cache::SESSION_CACHE_MAX_AGE;

#[derive(Debug, Clone)]
struct Entry {
    /// `None`: not a member.
    role: Option<Role>,
    loaded_at: OffsetDateTime,
    /// Whether the account is disabled, once a check that names the user by id has read it
    /// (`None`: not read). Disabling and re-enabling forget the account's memberships, so the
    /// flag is read again after either.
    account_disabled: Option<bool>,
}

#[derive(Debug)]
pub struct MembershipCache {
    entries: RwLock<HashMap<(OrgId, UserId), Entry>>,
    capacity: usize,
    /// Moves on every forget: a lookup that began before a change must not store what it read
    /// after the change cleared the entry.
    generation: AtomicU64,
}

impl MembershipCache {
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: RwLock::new(HashMap::new()),
            capacity: capacity.max(1),
            generation: AtomicU64::new(0),
        }
    }

    /// `Some(role)` when cached and fresh at `now` (the inner `None`: not a member).
    #[must_use]
    pub fn get(&self, org: OrgId, user: UserId, now: OffsetDateTime) -> Option<Option<Role>> {
        let found = self.entries.read().ok().and_then(|m| {
            m.get(&(org, user))
                .filter(|e| now - e.loaded_at <= MEMBERSHIP_CACHE_MAX_AGE)
                .map(|e| e.role.clone())
        });
        crate::telemetry::metrics::cache("membership", found.is_some());
        found
    }

    /// Where the cache stands now; pass it to [`Self::put`] after reading the store.
    #[must_use]
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Stores what the store said, unless something was forgotten since `read_at` (then the
    /// next lookup asks the store again).
    pub fn put(
        &self,
        org: OrgId,
        user: UserId,
        role: Option<Role>,
        now: OffsetDateTime,
        read_at: u64,
    ) {
        if let Ok(mut map) = self.entries.write() {
            if self.generation.load(Ordering::Acquire) != read_at {
                return;
            }
            if map.len() >= self.capacity && !map.contains_key(&(org, user)) {
                map.clear();
            }
            map.insert(
                (org, user),
                Entry {
                    role,
                    loaded_at: now,
                    account_disabled: None,
                },
            );
        }
    }

    /// Whether the account is disabled, when cached with its membership and fresh at `now`.
    #[must_use]
    pub fn account_disabled(&self, org: OrgId, user: UserId, now: OffsetDateTime) -> Option<bool> {
        let map = self.entries.read().ok()?;
        map.get(&(org, user))
            .filter(|e| now - e.loaded_at <= MEMBERSHIP_CACHE_MAX_AGE)
            .and_then(|e| e.account_disabled)
    }

    /// Adds the account's disabled flag to the entry [`Self::put`] stored, unless something was
    /// forgotten since `read_at`.
    pub fn note_account(&self, org: OrgId, user: UserId, disabled: bool, read_at: u64) {
        if let Ok(mut map) = self.entries.write() {
            if self.generation.load(Ordering::Acquire) != read_at {
                return;
            }
            if let Some(e) = map.get_mut(&(org, user)) {
                e.account_disabled = Some(disabled);
            }
        }
    }

    /// The membership changed (here or on another instance): ask the store next time.
    pub fn forget(&self, org: OrgId, user: UserId) {
        if let Ok(mut map) = self.entries.write() {
            self.generation.fetch_add(1, Ordering::AcqRel);
            map.remove(&(org, user));
        }
    }
}

impl crate::kernel::Kernel {
    /// Whether [`Self::authorize`] would grant `permission` to `principal` (a person), decided
    /// from the cached membership as forward authentication decides the roles it answers: only
    /// for a built-in role (a custom role's grants are read in the store), and only when nothing
    /// would be refused (unverified address, step-up). `false` when it cannot tell; the caller
    /// then authorizes through a transaction, which records any refusal and, with
    /// [`Self::note_member_role`], fills the cache. Every membership change forgets the entry
    /// here and on every instance (`Revocation::Membership`); disabling an account forgets its
    /// memberships and ends its sessions.
    pub(crate) fn granted_from_cache(
        &self,
        principal: &super::Principal,
        permission: super::Permission,
    ) -> bool {
        if principal.api_key_permissions.is_some() {
            return false;
        }
        let Some(org) = principal.org else {
            return false;
        };
        let user = UserId::from_uuid(principal.subject);
        let now = self.clock().now();
        let Some(Some(role)) = self.identity().memberships.get(org, user, now) else {
            return false;
        };
        let granted = self
            .builtin_role_grants(&role)
            .is_some_and(|g| g.iter().any(|p| p == permission.as_str()));
        let unverified_refused = !principal.email_verified
            && self.identity().settings().unverified_access == super::UnverifiedAccess::ReadOnly
            && permission != super::Permission::ORG_READ
            && permission != super::Permission::AUDIT_READ;
        granted
            && !unverified_refused
            && self
                .step_up_needed(principal, permission.as_str())
                .is_none()
    }

    /// Caches the role [`Self::authorize`] read for `principal` in a transaction begun after
    /// `read_at` (the membership cache's generation then).
    pub(crate) fn note_member_role(&self, principal: &super::Principal, role: Role, read_at: u64) {
        if principal.api_key_permissions.is_some() {
            return;
        }
        if let Some(org) = principal.org {
            let user = UserId::from_uuid(principal.subject);
            let now = self.clock().now();
            self.identity()
                .memberships
                .put(org, user, Some(role), now, read_at);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn entries_age_out_are_forgotten_and_stay_bounded() {
        let c = MembershipCache::new(2);
        let t = OffsetDateTime::UNIX_EPOCH;
        let (o, u) = (
            OrgId::from_uuid(uuid::Uuid::from_u128(1)),
            UserId::from_uuid(uuid::Uuid::from_u128(2)),
        );
        assert_eq!(c.get(o, u, t), None);
        c.put(o, u, Some(Role::Admin), t, c.generation());
        assert_eq!(c.get(o, u, t), Some(Some(Role::Admin)));
        assert_eq!(c.account_disabled(o, u, t), None);
        c.note_account(o, u, true, c.generation());
        assert_eq!(c.account_disabled(o, u, t), Some(true));
        assert_eq!(
            c.get(
                o,
                u,
                t + MEMBERSHIP_CACHE_MAX_AGE + time::Duration::seconds(1)
            ),
            None
        );
        c.forget(o, u);
        assert_eq!(c.get(o, u, t), None);
        assert_eq!(c.account_disabled(o, u, t), None);
        c.put(o, u, None, t, c.generation());
        assert_eq!(c.get(o, u, t), Some(None));
        // A read that began before a change does not store its stale answer.
        let before = c.generation();
        c.forget(o, u);
        c.put(o, u, Some(Role::Owner), t, before);
        assert_eq!(c.get(o, u, t), None);
        for i in 3..10 {
            let g = c.generation();
            c.put(o, UserId::from_uuid(uuid::Uuid::from_u128(i)), None, t, g);
        }
        assert!(c.entries.read().unwrap().len() <= 2);
    }
}

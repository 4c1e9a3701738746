//! A second factor as policy (A4; ASVS 6.3.3, 6.3.4) and re-authentication before changes to
//! authentication (ASVS 7.5.1, 7.5.2).
//!
//! Who must have a second factor: everyone when `[identity] require_second_factor` is set, and
//! the members of an organisation whose owner turned its requirement on. A person who must and
//! has none may, until they enrol one, only do what enrolling needs (the HTTP layer's
//! `EnrolmentCaller` routes); every other request is refused with
//! `second_factor_enrolment_required`.
//!
//! The decision is made at each request, not read from the token: whether the person has a
//! confirmed factor is read from the store (one read by primary key, only for people under a
//! requirement), so a member is admitted on the request after they confirm one, with the token
//! they already hold; the organisation's setting is cached per organisation for at most
//! [`POLICY_CACHE_MAX_AGE`], forgotten at once on this instance when it changes and on the
//! others through the revocation fan-out. The token's `mfa_required` claim and verify's answer
//! only report the requirement.
//!
//! API keys are not people and do not sign in: no requirement applies to them (what a key may do
//! is bounded by its creator's permissions, and making one is itself a request its creator must
//! be admitted to). Impersonation is an operator's, who signs in with their own second factor.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use time::OffsetDateTime;

use super::sessions::to_secs;
use super::{Auth, Members, Permission, Principal};
use crate::audit::{self, AuditEvent};
use crate::context::TenantCall;
use crate::error::Error;
use crate::ids::{OrgId, UserId};
use crate::kernel::Kernel;
use crate::scope::TenantScope;
use crate::store::{Role, Tier};

/// How long an organisation's setting is trusted without asking the store: the same bound as a
/// session's cached state, for a change whose fan-out message was lost.
pub const POLICY_CACHE_MAX_AGE: time::Duration = super::cache::SESSION_CACHE_MAX_AGE;

/// Each organisation's requirement, as last read.
#[derive(Debug)]
pub struct FactorPolicyCache {
    entries: RwLock<HashMap<OrgId, (bool, OffsetDateTime)>>,
    capacity: usize,
    /// Moves on every forget: a read that began before a change does not store its answer.
    generation: AtomicU64,
}

impl FactorPolicyCache {
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: RwLock::new(HashMap::new()),
            capacity: capacity.max(1),
            generation: AtomicU64::new(0),
        }
    }

    fn get(&self, org: OrgId, now: OffsetDateTime) -> Option<bool> {
        self.entries.read().ok().and_then(|m| {
            m.get(&org)
                .filter(|(_, at)| now - *at <= POLICY_CACHE_MAX_AGE)
                .map(|(v, _)| *v)
        })
    }

    fn put(&self, org: OrgId, required: bool, now: OffsetDateTime, read_at: u64) {
        if let Ok(mut map) = self.entries.write() {
            if self.generation.load(Ordering::Acquire) != read_at {
                return;
            }
            if map.len() >= self.capacity && !map.contains_key(&org) {
                map.clear();
            }
            map.insert(org, (required, now));
        }
    }

    /// The organisation's setting changed (here or elsewhere): ask the store next time.
    pub fn forget(&self, org: OrgId) {
        if let Ok(mut map) = self.entries.write() {
            self.generation.fetch_add(1, Ordering::AcqRel);
            map.remove(&org);
        }
    }
}

/// Who requires the second factor, as the problem's detail and the audit trail name it.
const PLATFORM: &str = "platform";
const ORGANIZATION: &str = "organization";

impl Kernel {
    /// Who requires a second factor of a person signed in to `org`: the platform, the
    /// organisation, or nobody.
    pub(crate) async fn second_factor_required_by(
        &self,
        org: Option<OrgId>,
    ) -> Result<Option<&'static str>, Error> {
        if self.identity().settings().require_second_factor {
            return Ok(Some(PLATFORM));
        }
        let Some(org) = org else {
            return Ok(None);
        };
        let cache = &self.identity().factor_policies;
        let now = self.clock().now();
        let required = match cache.get(org, now) {
            Some(v) => v,
            None => {
                let read_at = cache.generation.load(Ordering::Acquire);
                let mut tx = self
                    .store()
                    .begin_read_scoped(&TenantScope::granted(org))
                    .await?;
                let v = tx.requires_second_factor().await?;
                drop(tx);
                cache.put(org, v, now, read_at);
                v
            }
        };
        Ok(required.then_some(ORGANIZATION))
    }

    /// `Some(method)` unless `principal` checked a second factor within the step-up window, or,
    /// for an account without one (`enrolled` false), its password: what a change to how the
    /// account authenticates needs, whatever `step_up_permissions` says (ASVS 7.5.1).
    pub(crate) fn reauthentication_missing(
        &self,
        principal: &Principal,
        enrolled: bool,
    ) -> Option<&'static str> {
        if principal.api_key_permissions.is_some() || principal.tier != Tier::Customer {
            return Some("second factor (only a person's own session has one)");
        }
        let now = to_secs(self.clock().now());
        let window =
            u64::try_from(self.identity().settings().step_up_window.whole_seconds()).unwrap_or(0);
        let recent = |t: Option<u64>| t.is_some_and(|t| t <= now && now - t <= window);
        if recent(principal.mfa_time) {
            None
        } else if enrolled || principal.mfa_enrolled {
            Some("second factor")
        } else {
            (!recent(principal.auth_time)).then_some("password")
        }
    }

    /// [`Kernel::reauthentication_missing`] as a refusal naming `what`.
    pub(crate) fn require_reauthentication(
        &self,
        principal: &Principal,
        enrolled: bool,
        what: &'static str,
    ) -> Result<(), Error> {
        match self.reauthentication_missing(principal, enrolled) {
            None => Ok(()),
            Some(method) => Err(Error::StepUpRequired {
                permission: what,
                method,
            }),
        }
    }

    /// Whether `user` has a confirmed second factor now.
    pub(crate) async fn has_second_factor(&self, user: UserId) -> Result<bool, Error> {
        let mut tx = self.store().begin_read().await?;
        Ok(tx
            .totp_factor(user)
            .await?
            .is_some_and(|f| f.confirmed_at.is_some()))
    }
}

impl Auth<'_> {
    /// Refuses a person who must have a second factor and has none confirmed
    /// (`second_factor_enrolment_required`); otherwise answers whether one is required of them.
    /// API keys, operators and impersonations pass (see the module's note).
    pub async fn second_factor_gate(&self, principal: &Principal) -> Result<bool, Error> {
        if principal.api_key_permissions.is_some() || principal.tier != Tier::Customer {
            return Ok(false);
        }
        let Some(by) = self.second_factor_required_by(principal.org).await? else {
            return Ok(false);
        };
        if self
            .has_second_factor(UserId::from_uuid(principal.subject))
            .await?
        {
            Ok(true)
        } else {
            Err(Error::SecondFactorEnrolmentRequired(by))
        }
    }
}

/// What a refused change of the organisation's policy names.
const POLICY: &str = "organization.security_policy";

impl Members<'_> {
    /// Whether the organisation requires its members to have a second factor. Needs `org.read`.
    pub async fn second_factor_policy(&self, call: &TenantCall) -> Result<bool, Error> {
        let TenantCall {
            principal,
            scope,
            request,
        } = call;
        let tx = self.store().begin_scoped(scope).await?;
        let (mut tx, _) = self
            .authorize(tx, principal, Permission::ORG_READ, request)
            .await?;
        Ok(tx.requires_second_factor().await?)
    }

    /// Turns the organisation's requirement on or off. Only an owner, with a second factor
    /// checked within the step-up window (turning it off: or, for an owner without one, the
    /// password), whatever `step_up_permissions` says. Returns the setting now.
    pub async fn set_second_factor_policy(
        &self,
        call: &TenantCall,
        required: bool,
    ) -> Result<bool, Error> {
        let TenantCall {
            principal,
            scope,
            request,
        } = call;
        let tx = self.store().begin_scoped(scope).await?;
        let (mut tx, role) = self
            .authorize(tx, principal, Permission::MEMBERS_MANAGE, request)
            .await?;
        let refusal = if role != Role::Owner {
            Some(("permission.denied", Error::Forbidden { permission: POLICY }))
        } else {
            // Requiring a factor of others needs the owner's own, checked now: a password alone
            // (a stolen session's) must not be able to set the rules for everyone.
            self.require_reauthentication(principal, required, POLICY)
                .err()
                .map(|e| ("permission.step_up_required", e))
        };
        if let Some((action, error)) = refusal {
            drop(tx);
            self.record_refusal(
                scope,
                principal,
                action,
                format!("{{\"permission\":\"{POLICY}\"}}"),
                request,
            )
            .await;
            return Err(error);
        }
        if !tx
            .set_requires_second_factor(required, self.clock().now())
            .await?
        {
            return Ok(required);
        }
        let event = AuditEvent::success(
            principal.actor(),
            "organization.security_policy_changed",
            "organization",
            scope.org_id(),
        )
        .with_details(format!("{{\"require_second_factor\":{required}}}"))
        .with_request(request.request_id.clone());
        let proof = audit::append_tenant(tx.as_mut(), self.clock(), event).await?;
        tx.commit(proof).await?;
        self.identity().factor_policies.forget(scope.org_id());
        // Other instances forget their cached setting with the organisation's roles.
        self.roles_changed(scope.org_id());
        Ok(required)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_cache_ages_out_forgets_and_stays_bounded() {
        let c = FactorPolicyCache::new(2);
        let t = OffsetDateTime::UNIX_EPOCH;
        let o = OrgId::from_uuid(uuid::Uuid::from_u128(1));
        assert_eq!(c.get(o, t), None);
        c.put(o, true, t, c.generation.load(Ordering::Acquire));
        assert_eq!(c.get(o, t), Some(true));
        assert_eq!(
            c.get(o, t + POLICY_CACHE_MAX_AGE + time::Duration::seconds(1)),
            None
        );
        let before = c.generation.load(Ordering::Acquire);
        c.forget(o);
        c.put(o, false, t, before);
        assert_eq!(
            c.get(o, t),
            None,
            "a read from before the change is not kept"
        );
        for i in 2..10 {
            let g = c.generation.load(Ordering::Acquire);
            c.put(OrgId::from_uuid(uuid::Uuid::from_u128(i)), true, t, g);
        }
        assert!(c.entries.read().unwrap().len() <= 2);
    }
}

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
//! confirmed factor and the organisation's setting are each cached (per person, per
//! organisation) for at most [`POLICY_CACHE_MAX_AGE`], forgotten at once on this instance when
//! they change and on the others through the revocation fan-out, so a member is admitted on the
//! request after they confirm one, with the token they already hold. The token's `mfa_required`
//! claim and verify's answer only report the requirement; an access token for a registered app
//! (`resource` on refresh), which the app may verify on its own, is not issued to a person who
//! must enrol and has not.
//!
//! The gate applies wherever a person's credential is taken: the tenant API, forward
//! authentication, a service acting on their behalf, and `POST /internal/v1/check` (also for a
//! member named by id: the service asks what the person may do, and they may do nothing but
//! enrol). An API key is not a person, but it acts for the member at the end of its creator
//! chain: while that member must enrol and has not, the key is refused too (`api_keys::creator`).
//! Impersonation is an operator's, who signs in with their own second factor.

use std::collections::HashMap;
use std::hash::Hash;
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

/// How long an organisation's setting, and whether a person has a confirmed factor, are trusted
/// without asking the store: the same bound as a session's cached state, for a change whose
/// fan-out message was lost.
pub const POLICY_CACHE_MAX_AGE: time::Duration = super::cache::SESSION_CACHE_MAX_AGE;

/// One yes-or-no answer per key, as last read, trusted for [`POLICY_CACHE_MAX_AGE`].
#[derive(Debug)]
pub(crate) struct Answers<K> {
    entries: RwLock<HashMap<K, (bool, OffsetDateTime)>>,
    capacity: usize,
    /// Moves on every forget: a read that began before a change does not store its answer.
    generation: AtomicU64,
}

impl<K: Eq + Hash + Copy> Answers<K> {
    fn new(capacity: usize) -> Self {
        Self {
            entries: RwLock::new(HashMap::new()),
            capacity: capacity.max(1),
            generation: AtomicU64::new(0),
        }
    }

    pub(crate) fn get(&self, key: K, now: OffsetDateTime) -> Option<bool> {
        self.entries.read().ok().and_then(|m| {
            m.get(&key)
                .filter(|(_, at)| now - *at <= POLICY_CACHE_MAX_AGE)
                .map(|(v, _)| *v)
        })
    }

    pub(crate) fn read_at(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub(crate) fn put(&self, key: K, value: bool, now: OffsetDateTime, read_at: u64) {
        if let Ok(mut map) = self.entries.write() {
            if self.generation.load(Ordering::Acquire) != read_at {
                return;
            }
            if map.len() >= self.capacity && !map.contains_key(&key) {
                map.clear();
            }
            map.insert(key, (value, now));
        }
    }

    pub(crate) fn forget(&self, key: K) {
        if let Ok(mut map) = self.entries.write() {
            self.generation.fetch_add(1, Ordering::AcqRel);
            map.remove(&key);
        }
    }
}

/// Each organisation's requirement and each person's "has a confirmed second factor", as last
/// read: what the gate asks on every request of someone under a requirement. Also whether each
/// organisation enforces single sign-on (`crate::sso`), forgotten with its requirement.
#[derive(Debug)]
pub struct FactorPolicyCache {
    orgs: Answers<OrgId>,
    users: Answers<UserId>,
    pub(crate) sso_enforced: Answers<OrgId>,
}

impl FactorPolicyCache {
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        Self {
            orgs: Answers::new(capacity),
            users: Answers::new(capacity),
            sso_enforced: Answers::new(capacity),
        }
    }

    /// The organisation's setting changed (here or elsewhere): ask the store next time.
    pub fn forget(&self, org: OrgId) {
        self.orgs.forget(org);
        self.sso_enforced.forget(org);
    }

    /// The person confirmed or removed their factor (here or elsewhere).
    pub fn forget_user(&self, user: UserId) {
        self.users.forget(user);
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
        let cache = &self.identity().factor_policies.orgs;
        let now = self.clock().now();
        let required = match cache.get(org, now) {
            Some(v) => v,
            None => {
                let read_at = cache.read_at();
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

    /// Whether `user` has a confirmed second factor: cached per person for at most
    /// [`POLICY_CACHE_MAX_AGE`], forgotten when they confirm or remove one
    /// ([`Kernel::second_factor_changed`]), here and through the fan-out.
    pub(crate) async fn has_second_factor(&self, user: UserId) -> Result<bool, Error> {
        let cache = &self.identity().factor_policies.users;
        let now = self.clock().now();
        if let Some(v) = cache.get(user, now) {
            return Ok(v);
        }
        let read_at = cache.read_at();
        let mut tx = self.store().begin_read().await?;
        let v = tx
            .totp_factor(user)
            .await?
            .is_some_and(|f| f.confirmed_at.is_some());
        drop(tx);
        cache.put(user, v, now, read_at);
        Ok(v)
    }

    /// `user` confirmed or removed their second factor: the gate, and the API keys acting for
    /// them, decide again, here and (through the fan-out) on every instance.
    pub(crate) fn second_factor_changed(&self, user: UserId) {
        self.second_factor_changed_elsewhere(user);
        self.identity()
            .fanout
            .publish(super::Revocation::SecondFactor(user));
    }

    /// [`Kernel::second_factor_changed`] as another instance published it.
    pub(crate) fn second_factor_changed_elsewhere(&self, user: UserId) {
        self.identity().factor_policies.forget_user(user);
        self.api_key_cache().forget_member(user);
    }

    /// Who requires a second factor of `user`, a member of `org`, who has none confirmed:
    /// `None` when nobody does or they have one.
    pub(crate) async fn enrolment_pending(
        &self,
        user: UserId,
        org: Option<OrgId>,
    ) -> Result<Option<&'static str>, Error> {
        let Some(by) = self.second_factor_required_by(org).await? else {
            return Ok(None);
        };
        Ok((!self.has_second_factor(user).await?).then_some(by))
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
    /// checked within the step-up window, whatever `step_up_permissions` says. (Turning it off
    /// takes the password instead only of an owner without a factor, as the store says now; while
    /// the requirement is on, such an owner is limited to enrolling and cannot reach this.)
    /// Returns the setting now.
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
        // Whether the owner has a factor now, not when their token was issued: one enrolled
        // since must not be able to turn the requirement off with only a recent password.
        let enrolled = required
            || self
                .has_second_factor(UserId::from_uuid(principal.subject))
                .await?;
        let tx = self.store().begin_scoped(scope).await?;
        let (mut tx, role) = self
            .authorize(tx, principal, Permission::MEMBERS_MANAGE, request)
            .await?;
        let refusal = if role != Role::Owner {
            Some(("permission.denied", Error::Forbidden { permission: POLICY }))
        } else {
            // Requiring a factor of others needs the owner's own, checked now: a password alone
            // (a stolen session's) must not be able to set the rules for everyone.
            self.require_reauthentication(principal, enrolled, POLICY)
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
        let cache = FactorPolicyCache::new(2);
        let c = &cache.orgs;
        let t = OffsetDateTime::UNIX_EPOCH;
        let o = OrgId::from_uuid(uuid::Uuid::from_u128(1));
        assert_eq!(c.get(o, t), None);
        c.put(o, true, t, c.read_at());
        assert_eq!(c.get(o, t), Some(true));
        assert_eq!(
            c.get(o, t + POLICY_CACHE_MAX_AGE + time::Duration::seconds(1)),
            None
        );
        let before = c.read_at();
        cache.forget(o);
        c.put(o, false, t, before);
        assert_eq!(
            c.get(o, t),
            None,
            "a read from before the change is not kept"
        );
        for i in 2..10 {
            c.put(
                OrgId::from_uuid(uuid::Uuid::from_u128(i)),
                true,
                t,
                c.read_at(),
            );
        }
        assert!(c.entries.read().unwrap().len() <= 2);
    }

    #[test]
    fn whether_a_person_has_a_factor_is_kept_thirty_seconds_at_most_and_forgotten_on_change() {
        assert!(POLICY_CACHE_MAX_AGE <= time::Duration::seconds(30));
        let cache = FactorPolicyCache::new(2);
        let u = &cache.users;
        let t = OffsetDateTime::UNIX_EPOCH;
        let ada = UserId::from_uuid(uuid::Uuid::from_u128(1));
        u.put(ada, false, t, u.read_at());
        assert_eq!(u.get(ada, t + POLICY_CACHE_MAX_AGE), Some(false));
        assert_eq!(
            u.get(ada, t + POLICY_CACHE_MAX_AGE + time::Duration::seconds(1)),
            None
        );
        // A read that began before she enrolled does not bring back "no factor".
        let before = u.read_at();
        cache.forget_user(ada);
        u.put(ada, false, t, before);
        assert_eq!(u.get(ada, t), None);
        // Organisations and people are forgotten apart.
        let o = OrgId::from_uuid(uuid::Uuid::from_u128(1));
        cache.orgs.put(o, true, t, cache.orgs.read_at());
        cache.forget_user(ada);
        assert_eq!(cache.orgs.get(o, t), Some(true));
        for i in 2..10 {
            let who = UserId::from_uuid(uuid::Uuid::from_u128(i));
            u.put(who, true, t, u.read_at());
        }
        assert!(u.entries.read().unwrap().len() <= 2);
    }
}

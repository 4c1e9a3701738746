//! `[rate_limits]` (C5): per-address, per-user and per-key quotas, where they are counted, and the
//! sign-in lockouts. Defaults are core's (`RatePolicy::default()`, `identity::lockout_policy`).

use std::collections::{BTreeMap, HashMap};

use gatehouse_core::OrgId;
use gatehouse_core::identity::{
    ACCOUNT_LOCKOUT_THRESHOLD, ACCOUNT_WIDE_LOCKOUT_THRESHOLD, IP_LOCKOUT_THRESHOLD,
    SignInLockouts, lockout_policy,
};
use gatehouse_core::limits::{EndpointClass, LockoutPolicy, RatePolicy};
use serde::{Deserialize, Serialize};

use super::{ConfigError, refuse};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LimitStore {
    /// In this process: each instance limits on its own.
    Memory,
    /// Shared by every instance through Redis (the top-level `redis_url`), with the sign-in,
    /// second-factor, step-up and share-link lockouts and the account-mail throttle; in-process
    /// while Redis is away.
    Redis,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PerIpQuotas {
    pub auth: u32,
    pub read: u32,
    pub write: u32,
    pub admin: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LockoutConfig {
    /// Failed sign-ins against one account (known or not) from one address (IPv6: one /64)
    /// before that address is locked out of that account.
    pub account_threshold: u32,
    /// Failed sign-ins against one account from every address together before the account is
    /// locked for everyone.
    pub account_wide_threshold: u32,
    /// Failed sign-ins per client address before it is locked.
    pub ip_threshold: u32,
    /// The first lock; each further failure doubles it, up to `max_lock_secs`.
    pub first_lock_secs: u64,
    pub max_lock_secs: u64,
}

impl Default for LockoutConfig {
    fn default() -> Self {
        let account = lockout_policy(ACCOUNT_LOCKOUT_THRESHOLD);
        let secs = |t: time::Duration| u64::try_from(t.whole_seconds()).unwrap_or(0);
        Self {
            account_threshold: ACCOUNT_LOCKOUT_THRESHOLD,
            account_wide_threshold: ACCOUNT_WIDE_LOCKOUT_THRESHOLD,
            ip_threshold: IP_LOCKOUT_THRESHOLD,
            first_lock_secs: secs(account.first_lock),
            max_lock_secs: secs(account.max_lock),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Off: no rate limits and no sign-in lockouts (for load tests; refused in production).
    pub enabled: bool,
    pub store: LimitStore,
    /// Prefix of every key Gatehouse writes in Redis (several deployments can share one).
    pub redis_key_prefix: String,
    /// Requests per minute per client address, by endpoint class.
    pub per_ip: PerIpQuotas,
    /// Requests per minute per signed-in user.
    pub per_user: u32,
    /// Requests per minute per API key, by plan.
    pub plans: BTreeMap<String, u32>,
    pub default_plan: String,
    /// Organisation id -> plan name.
    pub organization_plans: BTreeMap<String, String>,
    pub lockout: LockoutConfig,
}

impl Default for PerIpQuotas {
    fn default() -> Self {
        let d = RatePolicy::default();
        let q = |class| d.per_ip.get(&class).copied().unwrap_or(1);
        Self {
            auth: q(EndpointClass::Auth),
            read: q(EndpointClass::Read),
            write: q(EndpointClass::Write),
            admin: q(EndpointClass::Admin),
        }
    }
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        let d = RatePolicy::default();
        Self {
            enabled: true,
            store: LimitStore::Memory,
            redis_key_prefix: "gatehouse:rl:".to_owned(),
            per_ip: PerIpQuotas::default(),
            per_user: d.per_user,
            plans: d.plans.into_iter().collect(),
            default_plan: d.default_plan,
            organization_plans: BTreeMap::new(),
            lockout: LockoutConfig::default(),
        }
    }
}

/// The limits in force (`None` when `enabled = false`).
#[derive(Debug, Clone)]
pub struct RateLimitSettings {
    pub policy: RatePolicy,
    /// Sign-in lockouts per account and address, per account, and per address.
    pub lockouts: SignInLockouts,
    pub store: LimitStore,
}

pub(super) fn validate(
    c: &RateLimitConfig,
    production: bool,
) -> Result<Option<RateLimitSettings>, ConfigError> {
    if !c.enabled {
        if production {
            return refuse(
                "rate_limits.enabled: production refuses to run without rate limits and sign-in lockouts",
            );
        }
        return Ok(None);
    }
    let quotas = [
        c.per_ip.auth,
        c.per_ip.read,
        c.per_ip.write,
        c.per_ip.admin,
        c.per_user,
    ];
    if quotas.contains(&0) || c.plans.values().any(|&q| q == 0) {
        return refuse("rate_limits: every quota must be at least 1 request per minute");
    }
    if !c.plans.contains_key(&c.default_plan) {
        return refuse(format!(
            "rate_limits.default_plan: {:?} is not one of rate_limits.plans",
            c.default_plan
        ));
    }
    let mut organization_plans = HashMap::new();
    for (org, plan) in &c.organization_plans {
        let id = OrgId::parse(org).ok_or_else(|| {
            ConfigError(format!(
                "rate_limits.organization_plans: {org:?} is not an organisation id"
            ))
        })?;
        if !c.plans.contains_key(plan) {
            return refuse(format!(
                "rate_limits.organization_plans: {plan:?} is not one of rate_limits.plans"
            ));
        }
        organization_plans.insert(id, plan.clone());
    }
    let l = &c.lockout;
    if l.account_threshold == 0
        || l.ip_threshold == 0
        || l.account_wide_threshold < l.account_threshold
        || l.first_lock_secs == 0
        || l.max_lock_secs < l.first_lock_secs
    {
        return refuse(
            "rate_limits.lockout: thresholds and first_lock_secs must be at least 1, account_wide_threshold at least account_threshold, and max_lock_secs at least first_lock_secs",
        );
    }
    let lockout = |threshold| LockoutPolicy {
        first_lock: time::Duration::seconds(i64::try_from(l.first_lock_secs).unwrap_or(i64::MAX)),
        max_lock: time::Duration::seconds(i64::try_from(l.max_lock_secs).unwrap_or(i64::MAX)),
        ..lockout_policy(threshold)
    };
    Ok(Some(RateLimitSettings {
        policy: RatePolicy {
            per_ip: [
                (EndpointClass::Auth, c.per_ip.auth),
                (EndpointClass::Read, c.per_ip.read),
                (EndpointClass::Write, c.per_ip.write),
                (EndpointClass::Admin, c.per_ip.admin),
            ]
            .into(),
            per_user: c.per_user,
            plans: c.plans.clone().into_iter().collect(),
            default_plan: c.default_plan.clone(),
            organization_plans,
        },
        lockouts: SignInLockouts {
            account_per_address: lockout(l.account_threshold),
            account: lockout(l.account_wide_threshold),
            address: lockout(l.ip_threshold),
        },
        store: c.store,
    }))
}

//! Which quotas apply to a request: per endpoint class and client address, per user, per API key
//! (its own limit, else its organisation's plan).

use std::collections::HashMap;

use super::Quota;
use crate::ids::OrgId;

/// What kind of endpoint a request hits, for the per-address quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndpointClass {
    /// Sign-up, sign-in, refresh, invitation acceptance: the brute-forceable ones.
    Auth,
    Read,
    Write,
    Admin,
}

impl EndpointClass {
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::Read => "read",
            Self::Write => "write",
            Self::Admin => "admin",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RatePolicy {
    /// Requests per minute per client address, by class.
    pub per_ip: HashMap<EndpointClass, u32>,
    /// Requests per minute per signed-in user.
    pub per_user: u32,
    /// Requests per minute per API key, by the organisation's plan.
    pub plans: HashMap<String, u32>,
    pub default_plan: String,
    pub organization_plans: HashMap<OrgId, String>,
}

impl Default for RatePolicy {
    fn default() -> Self {
        Self {
            per_ip: HashMap::from([
                (EndpointClass::Auth, 30),
                (EndpointClass::Read, 1200),
                (EndpointClass::Write, 300),
                (EndpointClass::Admin, 120),
            ]),
            per_user: 600,
            plans: HashMap::from([("free".to_owned(), 60), ("pro".to_owned(), 600)]),
            default_plan: "free".to_owned(),
            organization_plans: HashMap::new(),
        }
    }
}

/// A named quota, as the `RateLimit-Policy` header names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedQuota {
    pub name: String,
    pub quota: Quota,
}

impl RatePolicy {
    #[must_use]
    pub fn for_ip(&self, class: EndpointClass) -> Option<NamedQuota> {
        self.per_ip.get(&class).map(|&limit| NamedQuota {
            name: format!("ip-{}", class.as_str()),
            quota: Quota::per_minute(limit),
        })
    }

    #[must_use]
    pub fn for_user(&self) -> NamedQuota {
        NamedQuota {
            name: "user".to_owned(),
            quota: Quota::per_minute(self.per_user),
        }
    }

    /// The key's own limit when it is below its organisation's plan, else the plan (the
    /// default plan unless `organization_plans` names another): a key lowers its rate, never
    /// raises it past what the organisation pays for. Operators raise an organisation's plan.
    #[must_use]
    pub fn for_api_key(&self, org: OrgId, key_limit: Option<u32>) -> NamedQuota {
        let plan = self
            .organization_plans
            .get(&org)
            .unwrap_or(&self.default_plan);
        let plan_limit = self.plans.get(plan).copied().unwrap_or(60);
        match key_limit {
            Some(limit) if limit < plan_limit => NamedQuota {
                name: "key".to_owned(),
                quota: Quota::per_minute(limit),
            },
            _ => NamedQuota {
                name: plan.clone(),
                quota: Quota::per_minute(plan_limit),
            },
        }
    }
}

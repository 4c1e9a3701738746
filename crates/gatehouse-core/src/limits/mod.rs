//! Rate limiting (C5): GCRA decisions behind [`RateLimitStore`], with an in-process store here and
//! a Redis store in `gatehouse-infra` (one atomic script, one round trip per decision), and the
//! policies that pick quotas per endpoint class, plan, API key, user and client IP.

pub mod gcra;
pub mod lockout;
mod memory;
pub mod policy;

pub use gcra::{Decision, Quota};
pub use lockout::{LockoutPolicy, Lockouts};
pub use memory::MemoryLimiter;
pub use policy::{EndpointClass, NamedQuota, RatePolicy};

use async_trait::async_trait;

use crate::error::Error;

/// Where the TATs live. `key` names one limited subject (for example `ip:203.0.113.9:auth`).
#[async_trait]
pub trait RateLimitStore: Send + Sync + std::fmt::Debug {
    async fn decide(&self, key: &str, quota: Quota, now_us: i64) -> Result<Decision, Error>;
    /// `memory` or `redis`, for logs and the readiness report.
    fn kind(&self) -> &'static str;
}

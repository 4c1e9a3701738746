//! Rate limiting (C5): GCRA decisions behind [`RateLimitStore`], with an in-process store here and
//! a Redis store in `gatehouse-infra` (one atomic script, one round trip per decision), and the
//! policies that pick quotas per endpoint class, plan, API key, user and client IP.

pub mod gcra;
pub mod lockout;
mod memory;
pub mod policy;

pub use gcra::{Decision, Quota};
pub use lockout::{Count, CountKind, LockoutPolicy, LockoutStore, MemoryLockouts};
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

/// The address a per-address quota or lockout counts: an IPv4 address, or an IPv6 address's /64
/// (one subscriber usually holds a whole /64, and would otherwise get a fresh count per address).
/// The rate limiter and the sign-in lockouts both key on it, so neither can be dodged by walking
/// the /64.
#[must_use]
pub fn address_subject(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// [`address_subject`] of an address as the request context carries it (text); text that is
/// not an address is counted as itself.
#[must_use]
pub fn address_subject_of(ip: &str) -> String {
    ip.parse().map_or_else(|_| ip.to_owned(), address_subject)
}

#[cfg(test)]
mod address_tests {
    use super::{address_subject, address_subject_of};

    #[test]
    fn ipv6_addresses_count_per_64_and_mapped_ipv4_as_ipv4() {
        let a = address_subject("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = address_subject("2001:db8:1:2:bbbb::9".parse().unwrap());
        let c = address_subject("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(
            address_subject("::ffff:192.0.2.7".parse().unwrap()),
            "192.0.2.7"
        );
        assert_eq!(address_subject("192.0.2.7".parse().unwrap()), "192.0.2.7");
        assert_eq!(address_subject_of("2001:db8:1:2::5"), a);
        assert_eq!(address_subject_of(""), "");
    }
}

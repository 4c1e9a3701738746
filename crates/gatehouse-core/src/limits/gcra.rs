//! GCRA (the generic cell rate algorithm): one stored value per key, the theoretical arrival time
//! (TAT) of the next request. A quota of `limit` requests per `window` spaces requests by
//! `T = window / limit` and allows a burst of the whole quota. Pure arithmetic on microseconds,
//! shared by every store so in-process and Redis decisions agree exactly (the Redis script
//! computes the same formulas).

/// `limit` requests per `window_us` microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quota {
    pub limit: u32,
    pub window_us: i64,
}

impl Quota {
    #[must_use]
    pub fn per_minute(limit: u32) -> Self {
        Self {
            limit: limit.max(1),
            window_us: 60_000_000,
        }
    }

    /// The spacing between requests at the sustained rate.
    #[must_use]
    pub fn interval_us(&self) -> i64 {
        (self.window_us / i64::from(self.limit.max(1))).max(1)
    }
}

/// One decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// Requests still allowed right now (after this one, when allowed).
    pub remaining: u32,
    /// Microseconds until the quota is whole again (the `t` of the RateLimit header).
    pub reset_us: i64,
    /// When refused: microseconds until a request would be allowed (`Retry-After`).
    pub retry_after_us: i64,
}

/// Decides one request at `now_us` against the stored TAT; returns the decision and the TAT to
/// store (unchanged when refused).
#[must_use]
pub fn decide(stored_tat: Option<i64>, quota: Quota, now_us: i64) -> (Decision, i64) {
    let t = quota.interval_us();
    let window = t.saturating_mul(i64::from(quota.limit));
    let tat = stored_tat.map_or(now_us, |s| s.max(now_us));
    let new_tat = tat.saturating_add(t);
    let allow_at = new_tat.saturating_sub(window);
    if now_us < allow_at {
        let old = stored_tat.unwrap_or(now_us).max(now_us);
        return (
            Decision {
                allowed: false,
                remaining: 0,
                reset_us: old - now_us,
                retry_after_us: allow_at - now_us,
            },
            old,
        );
    }
    let headroom = window - (new_tat - now_us);
    let remaining = u32::try_from((headroom / t).max(0)).unwrap_or(u32::MAX);
    (
        Decision {
            allowed: true,
            remaining,
            reset_us: new_tat - now_us,
            retry_after_us: 0,
        },
        new_tat,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_the_whole_quota_then_the_sustained_rate() {
        let q = Quota::per_minute(60); // one per second, burst 60
        let mut tat = None;
        let now = 1_000_000_000;
        for i in 0..60 {
            let (d, t) = decide(tat, q, now);
            assert!(d.allowed, "request {i}");
            assert_eq!(d.remaining, 59 - i);
            tat = Some(t);
        }
        let (d, t) = decide(tat, q, now);
        assert!(!d.allowed);
        assert_eq!(d.retry_after_us, 1_000_000);
        assert_eq!(Some(t), tat, "a refusal stores nothing new");
        // Retry-After is honest: at exactly that moment the next request passes.
        let (d, _) = decide(tat, q, now + d.retry_after_us);
        assert!(d.allowed);
        // Just before it, it does not.
        let (d, _) = decide(tat, q, now + 999_999);
        assert!(!d.allowed);
    }

    #[test]
    fn an_idle_key_recovers_its_whole_quota() {
        let q = Quota::per_minute(10);
        let (_, tat) = decide(None, q, 0);
        let (d, _) = decide(Some(tat), q, 60_000_000);
        assert!(d.allowed);
        assert_eq!(d.remaining, 9);
    }
}

//! Rate limits shared by every instance: the GCRA state lives in Redis, one key per limited
//! subject, and each decision is one `EVALSHA` of an atomic script (one round trip). The script
//! computes exactly what `gatehouse_core::limits::gcra::decide` computes.

use gatehouse_core::telemetry::metrics;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use async_trait::async_trait;
use gatehouse_core::Error;
use gatehouse_core::limits::{Decision, MemoryLimiter, Quota, RateLimitStore};
use redis::aio::ConnectionManager;

use crate::RedisClient;

/// KEYS[1]: the subject. ARGV: interval (us), limit, now (us). Returns
/// {allowed, remaining, reset_us, retry_after_us}. Lua numbers are doubles: exact for integers
/// below 2^53, and microsecond timestamps stay below 2^51 until the year 2041 + 30,000.
const SCRIPT: &str = r"
local t = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local window = t * limit
local stored = redis.call('GET', KEYS[1])
local tat = now
if stored then tat = math.max(tonumber(stored), now) end
local new_tat = tat + t
local allow_at = new_tat - window
if now < allow_at then
  return {0, 0, tat - now, allow_at - now}
end
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.floor((new_tat - now) / 1000) + 1)
return {1, math.floor((window - (new_tat - now)) / t), new_tat - now, 0}
";

#[derive(Clone)]
pub struct RedisLimiter {
    conn: ConnectionManager,
    script: Arc<redis::Script>,
    prefix: String,
}

impl std::fmt::Debug for RedisLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLimiter")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn unavailable(e: &redis::RedisError) -> Error {
    Error::Store(gatehouse_core::StoreError::Unavailable(format!(
        "redis: {e}"
    )))
}

impl RedisLimiter {
    /// Prepares the connection without waiting for Redis: it connects on the first decision and
    /// reconnects after a failure, each attempt bounded (half a second to connect, TLS handshake
    /// included, or to answer), so a Redis that is down at start or later costs a fallback
    /// decision, not a stall. `prefix` namespaces the keys, so several deployments can share one
    /// Redis.
    pub fn new(client: &RedisClient, prefix: &str) -> Result<Self, Error> {
        let conn = ConnectionManager::new_lazy_with_config(
            client.inner().clone(),
            crate::redis_conn::bounded(),
        )
        .map_err(|e| unavailable(&e))?;
        Ok(Self {
            conn,
            script: Arc::new(redis::Script::new(SCRIPT)),
            prefix: prefix.to_owned(),
        })
    }
}

#[async_trait]
impl RateLimitStore for RedisLimiter {
    async fn decide(&self, key: &str, quota: Quota, now_us: i64) -> Result<Decision, Error> {
        let mut conn = self.conn.clone();
        let (allowed, remaining, reset_us, retry_after_us): (i64, i64, i64, i64) = self
            .script
            .key(format!("{}{key}", self.prefix))
            .arg(quota.interval_us())
            .arg(quota.limit)
            .arg(now_us)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| unavailable(&e))?;
        Ok(Decision {
            allowed: allowed == 1,
            remaining: u32::try_from(remaining.max(0)).unwrap_or(u32::MAX),
            reset_us,
            retry_after_us,
        })
    }

    fn kind(&self) -> &'static str {
        "redis"
    }
}

/// Redis when it answers; the in-process limiter while it does not (each instance then limits
/// on its own, and what it counted is not carried into Redis, so around an outage the global
/// limit is at most (instances + 1) x quota). Never
/// fails a request because Redis is away.
#[derive(Debug)]
pub struct FallbackLimiter {
    primary: Arc<dyn RateLimitStore>,
    fallback: MemoryLimiter,
    degraded: AtomicBool,
    /// Decisions taken by the fallback (a counter for metrics and the readiness report).
    pub fallback_decisions: AtomicU64,
}

impl FallbackLimiter {
    #[must_use]
    pub fn new(primary: Arc<dyn RateLimitStore>) -> Self {
        Self {
            primary,
            fallback: MemoryLimiter::default(),
            degraded: AtomicBool::new(false),
            fallback_decisions: AtomicU64::new(0),
        }
    }

    #[must_use]
    pub fn is_degraded(&self) -> bool {
        self.degraded.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl RateLimitStore for FallbackLimiter {
    async fn decide(&self, key: &str, quota: Quota, now_us: i64) -> Result<Decision, Error> {
        match self.primary.decide(key, quota, now_us).await {
            Ok(d) => {
                if self.degraded.swap(false, Ordering::Relaxed) {
                    metrics::set_degraded("rate_limits", false);
                    tracing::warn!(store = self.primary.kind(), "rate limits are shared again");
                }
                Ok(d)
            }
            Err(e) => {
                if !self.degraded.swap(true, Ordering::Relaxed) {
                    metrics::set_degraded("rate_limits", true);
                    tracing::warn!(error = %e, "rate-limit store unreachable; limiting in this process until it returns");
                }
                metrics::error("redis");
                metrics::rate_limit_fallback();
                self.fallback_decisions.fetch_add(1, Ordering::Relaxed);
                Ok(self.fallback.decide_now(key, quota, now_us))
            }
        }
    }

    fn kind(&self) -> &'static str {
        if self.is_degraded() {
            "memory-fallback"
        } else {
            self.primary.kind()
        }
    }
}

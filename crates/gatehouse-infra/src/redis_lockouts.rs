//! Lockout counts and mail throttles shared by every instance: each count is a Redis hash
//! (failures, last failure, locked until), and each call is one `EVALSHA` of an atomic script
//! (one round trip) computing what `gatehouse_core::limits::MemoryLockouts` computes. Keys carry
//! an unkeyed SHA-256 of the subject rather than its text, so no email address is written out
//! in clear; anyone who can read Redis can still test a guessed address against them, so Redis
//! holds personal data. Every key expires when it no longer matters (the longer of its lock and
//! the forgetting time).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use async_trait::async_trait;
use gatehouse_core::Error;
use gatehouse_core::limits::{Count, CountKind, LockoutStore, MemoryLockouts};
use gatehouse_core::telemetry::metrics;
use redis::aio::ConnectionManager;
use time::{Duration, OffsetDateTime};

/// KEYS: the n counts' keys, then the group keys. ARGV[1]: now (ms); ARGV[2]: n; then per count
/// threshold, first lock (ms), max lock (ms), forget after (ms), and the index in KEYS of its
/// group (0: none). Returns the longest wait (ms) while any count is locked (nothing counted),
/// else 0 with every count counted. Lua numbers are doubles: exact for these integers.
const ATTEMPT: &str = r"
local now = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local wait = 0
for i = 1, n do
  local u = tonumber(redis.call('HGET', KEYS[i], 'u') or '0')
  if u > now and u - now > wait then wait = u - now end
end
if wait > 0 then return wait end
for i = 1, n do
  local b = 2 + (i - 1) * 5
  local threshold = tonumber(ARGV[b + 1])
  local first = tonumber(ARGV[b + 2])
  local max = tonumber(ARGV[b + 3])
  local forget = tonumber(ARGV[b + 4])
  local g = tonumber(ARGV[b + 5])
  local f = tonumber(redis.call('HGET', KEYS[i], 'f') or '0')
  local l = tonumber(redis.call('HGET', KEYS[i], 'l') or '0')
  if now - l >= forget then f = 0 end
  f = f + 1
  local keep = forget
  if f >= threshold then
    local lock = math.min(first * 2 ^ math.min(f - threshold, 20), max)
    redis.call('HSET', KEYS[i], 'u', string.format('%d', now + lock))
    if lock > keep then keep = lock end
  end
  redis.call('HSET', KEYS[i], 'f', f, 'l', string.format('%d', now))
  redis.call('PEXPIRE', KEYS[i], math.floor(keep))
  if g > 0 then
    redis.call('SADD', KEYS[g], KEYS[i])
    if redis.call('PTTL', KEYS[g]) < keep then redis.call('PEXPIRE', KEYS[g], math.floor(keep)) end
  end
end
return 0
";

/// KEYS: the counts' keys; ARGV: each count's threshold. One failure back from each; a count
/// below its threshold again is unlocked.
const REFUND: &str = r"
for i = 1, #KEYS do
  local f = redis.call('HGET', KEYS[i], 'f')
  if f then
    f = math.max(tonumber(f) - 1, 0)
    redis.call('HSET', KEYS[i], 'f', f)
    if f < tonumber(ARGV[i]) then redis.call('HDEL', KEYS[i], 'u') end
  end
end
return 0
";

/// KEYS[1]: the group's set of count keys. Deletes them and the set.
const CLEAR_GROUP: &str = r"
local members = redis.call('SMEMBERS', KEYS[1])
for _, k in ipairs(members) do redis.call('DEL', k) end
redis.call('DEL', KEYS[1])
return #members
";

/// KEYS[1]: the throttle; ARGV: now (ms), period (ms). 1 (and now stored) when nothing went
/// through within the period, else 0.
const THROTTLE: &str = r"
local at = redis.call('GET', KEYS[1])
if at and tonumber(ARGV[1]) - tonumber(at) < tonumber(ARGV[2]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
";

#[derive(Clone)]
pub struct RedisLockouts {
    conn: ConnectionManager,
    attempt: Arc<redis::Script>,
    refund: Arc<redis::Script>,
    clear_group: Arc<redis::Script>,
    throttle: Arc<redis::Script>,
    prefix: String,
}

impl std::fmt::Debug for RedisLockouts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLockouts")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn unavailable(e: &redis::RedisError) -> Error {
    Error::Store(gatehouse_core::StoreError::Unavailable(format!(
        "redis: {e}"
    )))
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.whole_milliseconds()).unwrap_or(i64::MAX)
}

fn unix_millis(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

impl RedisLockouts {
    /// Like `RedisLimiter::new`: lazy, bounded, reconnecting. `prefix` namespaces the keys (the
    /// deployment's `redis_key_prefix`).
    pub fn new(client: &crate::RedisClient, prefix: &str) -> Result<Self, Error> {
        let conn = ConnectionManager::new_lazy_with_config(
            client.inner().clone(),
            crate::redis_conn::bounded(),
        )
        .map_err(|e| unavailable(&e))?;
        Ok(Self {
            conn,
            attempt: Arc::new(redis::Script::new(ATTEMPT)),
            refund: Arc::new(redis::Script::new(REFUND)),
            clear_group: Arc::new(redis::Script::new(CLEAR_GROUP)),
            throttle: Arc::new(redis::Script::new(THROTTLE)),
            prefix: prefix.to_owned(),
        })
    }

    fn hashed(&self, family: &str, kind: &str, text: &str) -> String {
        let digest = gatehouse_crypto::digest::sha256(&[kind.as_bytes(), b"\0", text.as_bytes()]);
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("{}{family}:{hex}", self.prefix)
    }

    fn count_key(&self, c: &Count<'_>) -> String {
        self.hashed("lock", c.kind.as_str(), c.subject)
    }

    fn group_key(&self, kind: CountKind, group: &str) -> String {
        self.hashed("lockgroup", kind.as_str(), group)
    }
}

#[async_trait]
impl LockoutStore for RedisLockouts {
    async fn attempt(
        &self,
        counts: &[Count<'_>],
        now: OffsetDateTime,
    ) -> Result<Option<Duration>, Error> {
        let mut inv = self.attempt.prepare_invoke();
        let mut groups = Vec::new();
        for c in counts {
            inv.key(self.count_key(c));
        }
        inv.arg(unix_millis(now)).arg(counts.len());
        for c in counts {
            let group = match c.group {
                Some(g) => {
                    groups.push(self.group_key(c.kind, g));
                    counts.len() + groups.len()
                }
                None => 0,
            };
            inv.arg(c.policy.threshold)
                .arg(millis(c.policy.first_lock))
                .arg(millis(c.policy.max_lock))
                .arg(millis(c.policy.forget_after))
                .arg(group);
        }
        for g in groups {
            inv.key(g);
        }
        let wait_ms: i64 = inv
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(|e| unavailable(&e))?;
        Ok((wait_ms > 0).then(|| Duration::milliseconds(wait_ms)))
    }

    async fn refund(&self, counts: &[Count<'_>]) -> Result<(), Error> {
        let mut inv = self.refund.prepare_invoke();
        for c in counts {
            inv.key(self.count_key(c)).arg(c.policy.threshold);
        }
        let _: i64 = inv
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(|e| unavailable(&e))?;
        Ok(())
    }

    async fn clear(&self, counts: &[Count<'_>]) -> Result<(), Error> {
        if counts.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = counts.iter().map(|c| self.count_key(c)).collect();
        let _: i64 = redis::cmd("DEL")
            .arg(keys)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(|e| unavailable(&e))?;
        Ok(())
    }

    async fn clear_group(&self, kind: CountKind, group: &str) -> Result<(), Error> {
        let _: i64 = self
            .clear_group
            .key(self.group_key(kind, group))
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(|e| unavailable(&e))?;
        Ok(())
    }

    async fn first_within(
        &self,
        key: &str,
        period: Duration,
        now: OffsetDateTime,
    ) -> Result<bool, Error> {
        // The stored value is when it let one through, so a caller's clock (not Redis's) decides;
        // the key's expiry only cleans up.
        let k = self.hashed("throttle", "mail", key);
        let allowed: i64 = self
            .throttle
            .key(k)
            .arg(unix_millis(now))
            .arg(millis(period).max(1))
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(|e| unavailable(&e))?;
        Ok(allowed == 1)
    }

    fn kind(&self) -> &'static str {
        "redis"
    }
}

/// Redis when it answers; the counts in this process while it does not (each instance then
/// counts on its own, and what it counted is not carried into Redis when it returns, so around
/// an outage the guesses allowed are at most (instances + 1) x threshold). Never fails a sign-in
/// because Redis is away.
#[derive(Debug)]
pub struct FallbackLockouts {
    primary: Arc<dyn LockoutStore>,
    fallback: MemoryLockouts,
    degraded: AtomicBool,
    /// Calls answered by the fallback (for metrics and tests).
    pub fallback_calls: AtomicU64,
}

impl FallbackLockouts {
    #[must_use]
    pub fn new(primary: Arc<dyn LockoutStore>) -> Self {
        Self {
            primary,
            fallback: MemoryLockouts::default(),
            degraded: AtomicBool::new(false),
            fallback_calls: AtomicU64::new(0),
        }
    }

    #[must_use]
    pub fn is_degraded(&self) -> bool {
        self.degraded.load(Ordering::Relaxed)
    }

    fn answered(&self) {
        if self.degraded.swap(false, Ordering::Relaxed) {
            metrics::set_degraded("lockouts", false);
            tracing::warn!(
                store = self.primary.kind(),
                "lockout counts are shared again"
            );
        }
    }

    fn failed(&self, e: &Error) {
        if !self.degraded.swap(true, Ordering::Relaxed) {
            metrics::set_degraded("lockouts", true);
            tracing::warn!(error = %e, "lockout store unreachable; counting in this process until it returns");
        }
        metrics::error("redis");
        self.fallback_calls.fetch_add(1, Ordering::Relaxed);
    }
}

/// Runs `$call` on the primary, or on the in-process fallback when the primary fails.
macro_rules! or_fallback {
    ($self:ident, $store:ident => $call:expr) => {{
        let primary = {
            let $store = &*$self.primary;
            $call.await
        };
        match primary {
            Ok(v) => {
                $self.answered();
                Ok(v)
            }
            Err(e) => {
                $self.failed(&e);
                let $store = &$self.fallback;
                $call.await
            }
        }
    }};
}

#[async_trait]
impl LockoutStore for FallbackLockouts {
    async fn attempt(
        &self,
        counts: &[Count<'_>],
        now: OffsetDateTime,
    ) -> Result<Option<Duration>, Error> {
        or_fallback!(self, s => s.attempt(counts, now))
    }

    async fn refund(&self, counts: &[Count<'_>]) -> Result<(), Error> {
        or_fallback!(self, s => s.refund(counts))
    }

    async fn clear(&self, counts: &[Count<'_>]) -> Result<(), Error> {
        // Both: what the fallback counted while Redis was away must go too.
        self.fallback.clear(counts).await?;
        or_fallback!(self, s => s.clear(counts))
    }

    async fn clear_group(&self, kind: CountKind, group: &str) -> Result<(), Error> {
        self.fallback.clear_group(kind, group).await?;
        or_fallback!(self, s => s.clear_group(kind, group))
    }

    async fn first_within(
        &self,
        key: &str,
        period: Duration,
        now: OffsetDateTime,
    ) -> Result<bool, Error> {
        or_fallback!(self, s => s.first_within(key, period, now))
    }

    fn prune(&self, now: OffsetDateTime) -> usize {
        self.fallback.prune(now)
    }

    fn kind(&self) -> &'static str {
        if self.is_degraded() {
            "memory-fallback"
        } else {
            self.primary.kind()
        }
    }
}

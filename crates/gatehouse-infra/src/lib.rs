//! Infrastructure adapters. Today: the Redis rate-limit store, and the fallback that keeps
//! limiting in-process while Redis is away.
#![forbid(unsafe_code)]

mod redis_limiter;

pub use redis_limiter::{FallbackLimiter, RedisLimiter};

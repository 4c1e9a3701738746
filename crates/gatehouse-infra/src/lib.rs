//! Infrastructure adapters: over Redis (every client made by [`redis_client`], TLS included),
//! the rate-limit store (with the fallback that keeps limiting in-process while Redis is away)
//! and revocation fan-out; mail transports (SMTP and the development `.eml` writer); the webhook
//! HTTP client with its SSRF guard.
#![forbid(unsafe_code)]

pub mod dkim;
pub mod dns;
pub mod fanout;
pub mod mail;
pub mod pkcs11;
mod redis_client;
mod redis_limiter;
pub mod webhooks;

pub use fanout::RedisFanout;
pub use redis_client::{RedisClient, redis_client};
pub use redis_limiter::{FallbackLimiter, RedisLimiter};

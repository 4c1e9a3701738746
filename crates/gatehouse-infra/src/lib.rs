//! Infrastructure adapters: over Redis (every client made by [`redis_client`], TLS included),
//! the rate-limit and lockout stores (each with the fallback that keeps counting in-process while
//! Redis is away) and revocation fan-out; mail transports (SMTP and the development `.eml`
//! writer); the webhook HTTP client with its SSRF guard.
#![forbid(unsafe_code)]

pub mod breach;
pub mod dkim;
pub mod dns;
pub mod fanout;
pub mod mail;
pub mod oauth_client;
pub mod pkcs11;
mod redis_client;
mod redis_conn;
mod redis_limiter;
mod redis_lockouts;
pub mod webhooks;

pub use fanout::RedisFanout;
pub use redis_client::{RedisClient, redis_client};
pub use redis_limiter::{FallbackLimiter, RedisLimiter};
pub use redis_lockouts::{FallbackLockouts, RedisLockouts};

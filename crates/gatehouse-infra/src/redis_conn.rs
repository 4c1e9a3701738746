//! How every Redis connection of ours behaves: connected lazily, each attempt bounded (half a
//! second to connect or answer) and retried once, so a Redis that is down at start or later costs
//! a fallback decision, not a stall.

use std::time::Duration;

use redis::aio::ConnectionManagerConfig;

#[must_use]
pub(crate) fn bounded() -> ConnectionManagerConfig {
    let bound = Some(Duration::from_millis(500));
    ConnectionManagerConfig::new()
        .set_number_of_retries(1)
        .set_connection_timeout(bound)
        .set_response_timeout(bound)
        .set_max_delay(Duration::from_secs(1))
}

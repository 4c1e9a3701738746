//! `[connections]` (H1): what one TCP connection may hold, on every listener. A client that
//! opens connections and never finishes a request's headers, or keeps idle connections open,
//! would otherwise hold a file descriptor each until the process runs out.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ConfigError;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectionsConfig {
    /// How long a connection may wait for a request's complete headers: a new connection for
    /// its first request, a kept-alive one for its next (so this is also the idle timeout).
    pub header_timeout_secs: u64,
    /// A connection older than this finishes the request in flight and is closed; the client
    /// reconnects. A request that outlives it by `request_timeout_secs` is cut off.
    pub max_lifetime_secs: u64,
    /// Connections open at once from one address (IPv6: one /64). `trusted_proxies` are exempt.
    pub max_per_address: usize,
    /// Connections open at once in all, per listener.
    pub max_total: usize,
}

impl Default for ConnectionsConfig {
    fn default() -> Self {
        Self {
            header_timeout_secs: 10,
            max_lifetime_secs: 600,
            max_per_address: 128,
            max_total: 8192,
        }
    }
}

/// The validated bounds.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionSettings {
    pub header_timeout: Duration,
    pub max_lifetime: Duration,
    pub max_per_address: usize,
    pub max_total: usize,
}

pub(super) fn validate(c: &ConnectionsConfig) -> Result<ConnectionSettings, ConfigError> {
    if !(1..=300).contains(&c.header_timeout_secs) {
        return Err(ConfigError(format!(
            "connections.header_timeout_secs: {} is outside 1..=300 (a connection waiting longer \
             for headers is closed)",
            c.header_timeout_secs
        )));
    }
    if !(1..=86_400).contains(&c.max_lifetime_secs) {
        return Err(ConfigError(format!(
            "connections.max_lifetime_secs: {} is outside 1..=86400",
            c.max_lifetime_secs
        )));
    }
    if !(1..=1_000_000).contains(&c.max_total) {
        return Err(ConfigError(format!(
            "connections.max_total: {} is outside 1..=1000000",
            c.max_total
        )));
    }
    if c.max_per_address == 0 || c.max_per_address > c.max_total {
        return Err(ConfigError(format!(
            "connections.max_per_address: {} must be at least 1 and at most connections.max_total \
             ({})",
            c.max_per_address, c.max_total
        )));
    }
    Ok(ConnectionSettings {
        header_timeout: Duration::from_secs(c.header_timeout_secs),
        max_lifetime: Duration::from_secs(c.max_lifetime_secs),
        max_per_address: c.max_per_address,
        max_total: c.max_total,
    })
}

/// [`validate`] for unit tests elsewhere in the crate: panics on a refusal.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) fn validate_for_tests(c: &ConnectionsConfig) -> ConnectionSettings {
    validate(c).unwrap()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn each_bound_is_refused_outside_its_range_with_its_name() {
        let ok = ConnectionsConfig::default();
        assert!(validate(&ok).is_ok());
        type Edit = fn(&mut ConnectionsConfig);
        let cases: [(Edit, &str); 4] = [
            (|c| c.header_timeout_secs = 0, "header_timeout_secs"),
            (|c| c.max_lifetime_secs = 0, "max_lifetime_secs"),
            (|c| c.max_total = 0, "max_total"),
            (|c| c.max_per_address = c.max_total + 1, "max_per_address"),
        ];
        for (bad, name) in cases {
            let mut c = ConnectionsConfig::default();
            bad(&mut c);
            let err = validate(&c).unwrap_err();
            assert!(err.0.contains(name), "{err}");
        }
    }
}

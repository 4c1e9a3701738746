//! `[sso]`: single sign-on per organisation (issue 24): the name servers that answer the email
//! domains' challenge records.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::ConfigError;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SsoConfig {
    /// Name servers asked for `_gatehouse-challenge.<domain>` (UDP, "address:port"); the
    /// system's when empty.
    pub dns_servers: Vec<String>,
}

/// What `[sso]` comes to.
#[derive(Debug, Clone, Default)]
pub struct SsoSetup {
    pub dns_servers: Vec<SocketAddr>,
}

pub(super) fn validate(c: &SsoConfig) -> Result<SsoSetup, ConfigError> {
    let mut dns_servers = Vec::with_capacity(c.dns_servers.len());
    for s in &c.dns_servers {
        dns_servers.push(s.parse::<SocketAddr>().map_err(|_| {
            ConfigError(format!(
                "sso.dns_servers: {s:?} is not an address and port such as \"10.0.0.2:53\""
            ))
        })?);
    }
    Ok(SsoSetup { dns_servers })
}

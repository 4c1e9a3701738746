//! The listeners and the edge: `listen`, `admin_listen`, `trusted_proxy_tls`, `trusted_proxies`,
//! `cors_allowed_origins`, `body_limit_bytes`, `request_timeout_secs`, `shutdown_grace_secs`.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::{ConfigError, RawConfig, refuse};

/// What the listeners and the HTTP edge take.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    /// The operators' own listener, when set.
    pub admin_listen: Option<SocketAddr>,
    /// Only from these peers is `X-Forwarded-For` believed.
    pub trusted_proxies: Vec<IpAddr>,
    /// The operator declares that a proxy in front terminates TLS (plain HTTP is then allowed
    /// off loopback in production).
    pub trusted_proxy_tls: bool,
    pub cors_allowed_origins: Vec<String>,
    pub body_limit_bytes: usize,
    pub request_timeout: Duration,
    pub shutdown_grace: Duration,
}

/// `tls_configured`: whether `[tls]` is set (then plain HTTP is never served).
pub(super) fn validate(
    raw: &RawConfig,
    production: bool,
    tls_configured: bool,
) -> Result<ServerSettings, ConfigError> {
    let listen: SocketAddr = raw.listen.parse().map_err(|_| {
        ConfigError(format!(
            "listen: {:?} is not an address and port such as 127.0.0.1:8080",
            raw.listen
        ))
    })?;
    let admin_listen: Option<SocketAddr> = match &raw.admin_listen {
        None => None,
        Some(a) => Some(a.parse().map_err(|_| {
            ConfigError(format!(
                "admin_listen: {a:?} is not an address and port such as 127.0.0.1:8081"
            ))
        })?),
    };
    if admin_listen == Some(listen) {
        return refuse("admin_listen: must differ from listen");
    }
    if let Some(a) = admin_listen
        && production
        && !a.ip().is_loopback()
        && !raw.trusted_proxy_tls
        && !tls_configured
    {
        return refuse(format!(
            "admin_listen: production mode refuses plain HTTP on the non-loopback address {a}; \
             configure [tls] (tls.cert_file, tls.key_file) or terminate TLS in a proxy and set \
             trusted_proxy_tls = true"
        ));
    }
    if production && !listen.ip().is_loopback() && !raw.trusted_proxy_tls && !tls_configured {
        return refuse(format!(
            "listen: production mode refuses plain HTTP on the non-loopback address {listen}; \
             configure [tls] (tls.cert_file, tls.key_file) or terminate TLS in a proxy in front \
             of Gatehouse and set trusted_proxy_tls = true"
        ));
    }
    for origin in &raw.cors_allowed_origins {
        check_origin(origin)?;
    }
    if raw.body_limit_bytes == 0 || raw.body_limit_bytes > 64 * 1024 * 1024 {
        return refuse("body_limit_bytes: must be between 1 and 67108864 (64 MiB)");
    }
    if raw.request_timeout_secs == 0 {
        return refuse("request_timeout_secs: must be at least 1");
    }
    let mut trusted_proxies = Vec::new();
    for p in &raw.trusted_proxies {
        trusted_proxies.push(p.parse().map_err(|_| {
            ConfigError(format!(
                "trusted_proxies: {p:?} is not an IP address (list each proxy's address)"
            ))
        })?);
    }
    Ok(ServerSettings {
        listen,
        admin_listen,
        trusted_proxies,
        trusted_proxy_tls: raw.trusted_proxy_tls,
        cors_allowed_origins: raw.cors_allowed_origins.clone(),
        body_limit_bytes: raw.body_limit_bytes,
        request_timeout: Duration::from_secs(raw.request_timeout_secs),
        shutdown_grace: Duration::from_secs(raw.shutdown_grace_secs),
    })
}

fn check_origin(origin: &str) -> Result<(), ConfigError> {
    if origin.contains('*') {
        return refuse(format!(
            "cors_allowed_origins: the wildcard {origin:?} is refused; list each allowed origin \
             exactly, such as \"https://app.example.com\""
        ));
    }
    let well_formed = origin.split_once("://").is_some_and(|(scheme, host)| {
        matches!(scheme, "http" | "https")
            && !host.is_empty()
            && !host.contains('/')
            && !host.contains('@')
            && host.bytes().all(|b| b.is_ascii_graphic())
    });
    if !well_formed {
        return refuse(format!(
            "cors_allowed_origins: {origin:?} is not an origin; write scheme://host[:port] with \
             no path, such as \"https://app.example.com\""
        ));
    }
    Ok(())
}

//! `[metrics]` (E3): whether the process records Prometheus metrics, and where they are served:
//! always at `/internal/v1/metrics` behind service authentication, and, with `listen` set, at
//! `/metrics` on a listener of their own with no authentication.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::ConfigError;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Off: nothing is recorded (load tests compare the two) and no metrics endpoint exists.
    pub enabled: bool,
    /// A separate address for an unauthenticated `/metrics`, such as `127.0.0.1:9090`.
    pub listen: Option<String>,
    /// Production refuses an unauthenticated metrics listener beyond loopback unless this is
    /// set: the metrics name organisations and their traffic.
    pub listen_public: bool,
    /// How many organisations get a series of their own in `gatehouse_organization_requests`;
    /// the rest are summed as `other`.
    pub top_organizations: usize,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: None,
            listen_public: false,
            top_organizations: 20,
        }
    }
}

#[derive(Debug, Clone)]
pub struct MetricsSettings {
    pub enabled: bool,
    pub listen: Option<SocketAddr>,
    pub top_organizations: usize,
}

pub(super) fn validate(
    c: &MetricsConfig,
    production: bool,
    taken: &[SocketAddr],
) -> Result<MetricsSettings, ConfigError> {
    if !(1..=1000).contains(&c.top_organizations) {
        return Err(ConfigError(format!(
            "metrics.top_organizations: {} is outside 1..=1000 (each is a series in every scrape)",
            c.top_organizations
        )));
    }
    let listen = match &c.listen {
        Some(a) => {
            let addr: SocketAddr = a.parse().map_err(|_| {
                ConfigError(format!(
                    "metrics.listen: {a:?} is not an address and port such as 127.0.0.1:9090"
                ))
            })?;
            // Port 0 (an ephemeral port, as tests use) can never collide.
            if addr.port() != 0 && taken.contains(&addr) {
                return Err(ConfigError(
                    "metrics.listen: must differ from listen and admin_listen".into(),
                ));
            }
            if production && !addr.ip().is_loopback() && !c.listen_public {
                return Err(ConfigError(format!(
                    "metrics.listen: production refuses unauthenticated metrics on the \
                     non-loopback address {addr}; scrape /internal/v1/metrics with X-Service-Auth, \
                     or set metrics.listen_public = true if the network is yours alone"
                )));
            }
            Some(addr)
        }
        None => None,
    };
    Ok(MetricsSettings {
        enabled: c.enabled,
        listen,
        top_organizations: c.top_organizations,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(listen: Option<&str>) -> MetricsConfig {
        MetricsConfig {
            listen: listen.map(str::to_owned),
            ..MetricsConfig::default()
        }
    }

    #[test]
    fn refuses_what_it_should() {
        let main: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert!(validate(&cfg(None), true, &[main]).is_ok());
        assert!(validate(&cfg(Some("127.0.0.1:9090")), true, &[main]).is_ok());
        let e = validate(&cfg(Some("0.0.0.0:9090")), true, &[main]).unwrap_err();
        assert!(e.0.contains("listen_public"), "{e}");
        assert!(validate(&cfg(Some("0.0.0.0:9090")), false, &[main]).is_ok());
        let public = MetricsConfig {
            listen_public: true,
            ..cfg(Some("0.0.0.0:9090"))
        };
        assert!(validate(&public, true, &[main]).is_ok());
        assert!(validate(&cfg(Some("127.0.0.1:8080")), false, &[main]).is_err());
        assert!(validate(&cfg(Some("nope")), false, &[main]).is_err());
        let none = MetricsConfig {
            top_organizations: 0,
            ..MetricsConfig::default()
        };
        assert!(validate(&none, false, &[main]).is_err());
    }
}

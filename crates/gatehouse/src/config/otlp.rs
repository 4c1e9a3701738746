//! `[otlp]` (E2): whether finished requests are exported as OpenTelemetry spans over OTLP/HTTP
//! (JSON bodies), and to which collector. Needs a build with the `otlp` cargo feature.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ConfigError;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpConfig {
    /// Off: no spans are made and no collector is contacted.
    pub enabled: bool,
    /// The collector's full traces URL (used as given: nothing is appended to it).
    pub endpoint: String,
    /// The `service.name` resource attribute the spans carry.
    pub service_name: String,
    /// How long one export (retries included) may take before its batch is dropped.
    pub timeout_ms: u64,
}

impl Default for OtlpConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            endpoint: "http://127.0.0.1:4318/v1/traces".into(),
            service_name: "gatehouse".into(),
            timeout_ms: 3000,
        }
    }
}

#[derive(Debug, Clone)]
pub struct OtlpSettings {
    pub endpoint: String,
    pub service_name: String,
    pub timeout: Duration,
}

/// `None` when export is off.
pub(super) fn validate(
    c: &OtlpConfig,
    production: bool,
) -> Result<Option<OtlpSettings>, ConfigError> {
    if !c.enabled {
        return Ok(None);
    }
    // Refused here rather than ignored: an operator who turned export on expects spans, and a
    // build without the exporter would otherwise drop them without a word.
    if !cfg!(feature = "otlp") {
        return Err(ConfigError(
            "otlp.enabled: this build has no OTLP support; rebuild with --features otlp".into(),
        ));
    }
    if c.service_name.trim().is_empty() {
        return Err(ConfigError("otlp.service_name: must not be empty".into()));
    }
    if !(100..=60_000).contains(&c.timeout_ms) {
        return Err(ConfigError(format!(
            "otlp.timeout_ms: {} is outside 100..=60000",
            c.timeout_ms
        )));
    }
    let uri: axum::http::Uri = c.endpoint.parse().map_err(|_| {
        ConfigError(format!(
            "otlp.endpoint: {:?} is not a URL such as http://127.0.0.1:4318/v1/traces",
            c.endpoint
        ))
    })?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => {
            return Err(ConfigError(format!(
                "otlp.endpoint: {:?} must start with http:// or https://",
                c.endpoint
            )));
        }
    };
    let Some(authority) = uri.authority() else {
        return Err(ConfigError(format!(
            "otlp.endpoint: {:?} names no host",
            c.endpoint
        )));
    };
    // The configuration is logged at start; a password in the URL would be logged with it.
    if authority.as_str().contains('@') {
        return Err(ConfigError(
            "otlp.endpoint: must not carry credentials (user:password@)".into(),
        ));
    }
    if production && !https && !is_loopback(authority.host()) {
        return Err(ConfigError(format!(
            "otlp.endpoint: production refuses plain HTTP to the non-loopback collector {:?}: \
             spans name organisations, users and routes; run the collector on loopback or as a \
             sidecar",
            authority.host()
        )));
    }
    Ok(Some(OtlpSettings {
        endpoint: c.endpoint.clone(),
        service_name: c.service_name.clone(),
        timeout: Duration::from_millis(c.timeout_ms),
    }))
}

fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on(endpoint: &str) -> OtlpConfig {
        OtlpConfig {
            enabled: true,
            endpoint: endpoint.into(),
            ..OtlpConfig::default()
        }
    }

    #[test]
    fn off_is_always_fine() {
        assert!(validate(&OtlpConfig::default(), true).unwrap().is_none());
    }

    #[cfg(not(feature = "otlp"))]
    #[test]
    fn refused_without_the_feature() {
        let e = validate(&on("http://127.0.0.1:4318/v1/traces"), false).unwrap_err();
        assert!(e.0.contains("--features otlp"), "{e}");
    }

    #[cfg(feature = "otlp")]
    #[test]
    fn refuses_what_it_should() {
        let ok = validate(&on("http://127.0.0.1:4318/v1/traces"), true).unwrap();
        assert_eq!(ok.unwrap().timeout, Duration::from_millis(3000));
        assert!(validate(&on("http://localhost:4318/v1/traces"), true).is_ok());
        assert!(validate(&on("http://[::1]:4318/v1/traces"), true).is_ok());
        assert!(validate(&on("http://collector:4318/v1/traces"), false).is_ok());
        let e = validate(&on("http://collector:4318/v1/traces"), true).unwrap_err();
        assert!(e.0.contains("non-loopback"), "{e}");
        let e = validate(&on("grpc://127.0.0.1:4317"), false).unwrap_err();
        assert!(e.0.contains("http:// or https://"), "{e}");
        assert!(validate(&on("127.0.0.1:4318"), false).is_err());
        assert!(validate(&on("https://collector:4318/v1/traces"), true).is_ok());
        assert!(validate(&on("http://u:p@127.0.0.1:4318/v1/traces"), false).is_err());
        let slow = OtlpConfig {
            timeout_ms: 0,
            ..on("http://127.0.0.1:4318/v1/traces")
        };
        assert!(validate(&slow, false).is_err());
    }
}

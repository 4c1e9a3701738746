use std::time::Duration;

use axum::http::HeaderValue;

/// An allow-list of exact origins (`scheme://host[:port]`). The binary validates the list at load
/// (no wildcard); here it is only matched.
#[derive(Debug, Clone, Default)]
pub struct CorsOrigins(Vec<HeaderValue>);

impl CorsOrigins {
    /// Origins that are not valid header values are dropped; configuration validation has
    /// already refused them.
    #[must_use]
    pub fn new<'a>(origins: impl IntoIterator<Item = &'a str>) -> Self {
        Self(
            origins
                .into_iter()
                .filter_map(|o| HeaderValue::from_str(o).ok())
                .collect(),
        )
    }

    #[must_use]
    pub fn allows(&self, origin: &HeaderValue) -> bool {
        self.0.iter().any(|o| o == origin)
    }

    #[must_use]
    pub fn list(&self) -> &[HeaderValue] {
        &self.0
    }
}

/// One finished request, as the access log records it.
#[derive(Debug, Clone, Copy)]
pub struct AccessLine<'a> {
    pub request_id: &'a str,
    pub method: &'a str,
    pub route: &'a str,
    pub status: u16,
    pub latency_us: u64,
    /// The caller (once authenticated) and the per-stage timings.
    pub info: &'a gatehouse_core::telemetry::RequestInfo,
}

/// Where access lines go when not through `tracing` (the binary writes JSON lines straight into
/// its log buffer: the line is written for every request, and tracing's formatter costs more).
pub trait AccessLog: Send + Sync + std::fmt::Debug {
    fn record(&self, line: &AccessLine<'_>);
}

#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub cors_origins: CorsOrigins,
    pub body_limit_bytes: usize,
    pub request_timeout: Duration,
    /// `None`: access lines are `tracing` events at INFO (ERROR for 5xx).
    pub access_log: Option<std::sync::Arc<dyn AccessLog>>,
    /// Also handed every finished request, whatever the log settings (the OTLP span exporter).
    pub span_sink: Option<std::sync::Arc<dyn AccessLog>>,
    /// Proxies whose `X-Forwarded-For` names the client address the access line records.
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            cors_origins: CorsOrigins::default(),
            body_limit_bytes: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            access_log: None,
            span_sink: None,
            trusted_proxies: Vec::new(),
        }
    }
}

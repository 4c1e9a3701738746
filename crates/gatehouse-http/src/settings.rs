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

#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub cors_origins: CorsOrigins,
    pub body_limit_bytes: usize,
    pub request_timeout: Duration,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            cors_origins: CorsOrigins::default(),
            body_limit_bytes: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
        }
    }
}

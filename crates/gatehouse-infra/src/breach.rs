//! The breached-password range client (A1; ASVS 5.0 6.2.12): one GET of `{url}/{prefix}` per
//! new password, with the 5-hex-character prefix core computed, under a timeout. Only the
//! prefix leaves the process; core compares the suffixes. No redirects, no proxy from the
//! environment; `Add-Padding: true` asks the service to pad its answer so the response size
//! says little about the prefix.

use std::time::Duration;

use async_trait::async_trait;
use gatehouse_core::identity::BreachRange;
use reqwest_webhooks as reqwest;

/// Answers longer than this are refused (a real range answer is a few tens of kilobytes).
const MAX_BODY: usize = 1024 * 1024;

#[derive(Debug)]
pub struct HttpBreachRange {
    client: reqwest::Client,
    /// The range endpoint without its trailing `/`.
    base: String,
}

impl HttpBreachRange {
    pub fn new(url: &url::Url, timeout: Duration) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(timeout)
            .timeout(timeout)
            .build()
            .map_err(|e| format!("passwords.breach_range_url: the HTTP client: {e}"))?;
        Ok(Self {
            client,
            base: url.as_str().trim_end_matches('/').to_owned(),
        })
    }
}

#[async_trait]
impl BreachRange for HttpBreachRange {
    async fn range(&self, prefix: &str) -> Result<String, String> {
        let res = self
            .client
            .get(format!("{}/{prefix}", self.base))
            .header("add-padding", "true")
            .send()
            .await
            .map_err(|e| format!("the range service did not answer: {e}"))?;
        if !res.status().is_success() {
            return Err(format!("the range service answered {}", res.status()));
        }
        let body = res
            .bytes()
            .await
            .map_err(|e| format!("the range service's answer was cut off: {e}"))?;
        if body.len() > MAX_BODY {
            return Err("the range service's answer is too long".to_owned());
        }
        String::from_utf8(body.to_vec())
            .map_err(|_| "the range service's answer is not text".into())
    }
}

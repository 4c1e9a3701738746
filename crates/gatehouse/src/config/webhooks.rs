//! `[webhooks]`: where webhooks may go, which product events exist, how delivery behaves (F3).

use std::net::SocketAddr;
use std::time::Duration;

use gatehouse_core::webhooks::{DestinationPolicy, WebhookSettings, valid_product_type};
use gatehouse_infra::webhooks::WebhookClientSettings;
use serde::{Deserialize, Serialize};

use super::{ConfigError, refuse};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    /// Development only: endpoints may be plain http:// URLs.
    pub allow_http: bool,
    /// Development only: endpoints may resolve to loopback addresses (127.0.0.0/8, ::1). Every
    /// other private, link-local or reserved address stays refused.
    pub allow_loopback: bool,
    /// Name servers the client asks (`"127.0.0.1:5353"`); the system's when empty.
    pub dns_servers: Vec<String>,
    /// The product's own event types, for `POST /internal/v1/events` (`invoice.paid`, ...).
    pub product_event_types: Vec<String>,
    /// An endpoint failing every delivery for this long is disabled (1 to 720).
    pub disable_after_hours: u64,
    /// How often the delivery job looks for due deliveries (also woken when events are queued).
    pub poll_interval_ms: u64,
    /// The whole of one attempt, connection included (1 to 60).
    pub timeout_secs: u64,
    /// Attempts in flight at once per instance (1 to 256).
    pub concurrency: usize,
    /// The waits between attempts, in seconds, before ±20 % jitter; a delivery is given up after
    /// the last. Empty: the default schedule of about a day (5 s, 5 min, 30 min, 2 h, 5 h, 10 h,
    /// 8 h). At most 20 waits of at most 86400 s each.
    pub retry_waits_secs: Vec<u64>,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        Self {
            allow_http: false,
            allow_loopback: false,
            dns_servers: Vec::new(),
            product_event_types: Vec::new(),
            disable_after_hours: 20,
            poll_interval_ms: 1_000,
            timeout_secs: 15,
            concurrency: 32,
            retry_waits_secs: Vec::new(),
        }
    }
}

/// What the kernel and the HTTP client take.
#[derive(Debug, Clone)]
pub struct WebhookSetup {
    pub settings: WebhookSettings,
    pub client: WebhookClientSettings,
    pub poll: Duration,
}

pub(super) fn validate(c: &WebhooksConfig, production: bool) -> Result<WebhookSetup, ConfigError> {
    if production && (c.allow_http || c.allow_loopback) {
        return refuse(
            "webhooks.allow_http and webhooks.allow_loopback: development settings; production \
             sends webhooks only over https to public addresses",
        );
    }
    let mut dns = Vec::with_capacity(c.dns_servers.len());
    for s in &c.dns_servers {
        dns.push(s.parse::<SocketAddr>().map_err(|_| {
            ConfigError(format!(
                "webhooks.dns_servers: {s:?} is not an address and port such as \"10.0.0.2:53\""
            ))
        })?);
    }
    for t in &c.product_event_types {
        if !valid_product_type(t) {
            return refuse(format!(
                "webhooks.product_event_types: {t:?} must be two to four dotted parts of a-z, 0-9 \
                 and _, outside Gatehouse's own namespaces (user, session, member, api_key, \
                 record, grant, erasure, webhook, connector)"
            ));
        }
    }
    if !(1..=720).contains(&c.disable_after_hours)
        || c.poll_interval_ms < 50
        || !(1..=60).contains(&c.timeout_secs)
        || !(1..=256).contains(&c.concurrency)
    {
        return refuse(
            "webhooks: disable_after_hours 1 to 720, poll_interval_ms at least 50, timeout_secs 1 \
             to 60, concurrency 1 to 256",
        );
    }
    if c.retry_waits_secs.len() > 20 || c.retry_waits_secs.iter().any(|w| !(1..=86_400).contains(w))
    {
        return refuse("webhooks.retry_waits_secs: at most 20 waits, each 1 to 86400 seconds");
    }
    let policy = DestinationPolicy {
        allow_http: c.allow_http,
        allow_loopback: c.allow_loopback,
    };
    Ok(WebhookSetup {
        settings: WebhookSettings {
            destinations: policy,
            disable_after: time::Duration::hours(
                i64::try_from(c.disable_after_hours).unwrap_or(72),
            ),
            product_event_types: c.product_event_types.clone(),
            concurrency: c.concurrency,
            // A pass leases twice `concurrency` deliveries and runs them `concurrency` at a
            // time: two rounds of the longest attempt, one more, and a margin.
            batch: u32::try_from(c.concurrency.saturating_mul(2)).unwrap_or(512),
            lease: time::Duration::seconds(
                i64::try_from(c.timeout_secs.saturating_mul(3) + 5).unwrap_or(200),
            ),
            retry_waits: if c.retry_waits_secs.is_empty() {
                WebhookSettings::default().retry_waits
            } else {
                c.retry_waits_secs
                    .iter()
                    .map(|s| time::Duration::seconds(i64::try_from(*s).unwrap_or(86_400)))
                    .collect()
            },
        },
        client: WebhookClientSettings {
            policy,
            dns_servers: dns,
            timeout: Duration::from_secs(c.timeout_secs),
        },
        poll: Duration::from_millis(c.poll_interval_ms),
    })
}

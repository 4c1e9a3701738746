//! Webhooks (F3): endpoints per organisation, Standard Webhooks signatures, at-least-once
//! delivery from a durable queue in the database with exponential backoff and jitter over about
//! a day, a log of every attempt, manual replay, and endpoints disabled after a sustained
//! failure (with an event and a mail to the organisation's owners and admins).
//!
//! Events are queued in the transaction of the change they report: Gatehouse's own by the audit
//! append of that change (`enqueue.rs`), the product's by `POST /internal/v1/events`. Outbound
//! requests go through a [`WebhookTransport`] (the infrastructure layer's HTTP client), which
//! checks every address after resolution against [`destination`]'s rules and follows no
//! redirect.

mod catalogue;
mod deliver;
pub mod destination;
mod endpoints;
pub(crate) mod enqueue;
mod sign;

use async_trait::async_trait;
use time::Duration;

pub use catalogue::{for_audit_action, gatehouse_types, valid_product_type};
pub use deliver::WebhookReport;
pub use destination::{DestinationPolicy, Refusal};
pub use endpoints::{CreatedEndpoint, EndpointChange, NewEndpoint, RotatedSecret};
pub use enqueue::{MAX_EVENTS, ProductWebhookEvent};
pub use sign::{message_id, signature};

/// Webhook settings, from configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSettings {
    pub destinations: DestinationPolicy,
    /// The waits between attempts (before jitter); a delivery dies after the last.
    pub retry_waits: Vec<Duration>,
    /// An endpoint failing for this long without one success is disabled.
    pub disable_after: Duration,
    /// The product's declared event types.
    pub product_event_types: Vec<String>,
    /// Deliveries in flight at once, per instance.
    pub concurrency: usize,
    /// Deliveries leased per pass.
    pub batch: u32,
    /// How long a leased delivery stays the worker's: longer than an attempt may take, so no
    /// other instance takes it meanwhile; a worker killed mid-send frees it after this.
    pub lease: Duration,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            destinations: DestinationPolicy::default(),
            // About a day in all: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 8 h (25 h 35 min).
            retry_waits: vec![
                Duration::seconds(5),
                Duration::minutes(5),
                Duration::minutes(30),
                Duration::hours(2),
                Duration::hours(5),
                Duration::hours(10),
                Duration::hours(8),
            ],
            // Shorter than the schedule's shortest span (the sum of its waits less 20 %): a
            // delivery that dies has failed for longer than this, so the endpoint is disabled
            // at its last attempt even when no other event follows.
            disable_after: Duration::hours(20),
            product_event_types: Vec::new(),
            concurrency: 32,
            batch: 64,
            lease: Duration::seconds(50),
        }
    }
}

/// A receiver's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// The start of the body, at most [`EXCERPT`] bytes, lossily decoded.
    pub excerpt: String,
}

/// How much of a receiver's answer the delivery log keeps.
pub const EXCERPT: usize = 512;

/// Why an attempt got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub reason: String,
    /// The destination was refused by the SSRF rules (no connection was made).
    pub refused: bool,
}

/// The HTTP client for webhooks, in the infrastructure layer.
#[async_trait]
pub trait WebhookTransport: Send + Sync + std::fmt::Debug {
    /// Resolves the URL's host and checks every address (at an endpoint's creation or change).
    async fn check_destination(&self, url: &url::Url) -> Result<(), Refusal>;

    /// Posts `body` with `headers`: every resolved address checked before connecting, no
    /// redirect followed, no proxy, a bounded time.
    async fn post(
        &self,
        url: &url::Url,
        headers: &[(&'static str, String)],
        body: &[u8],
    ) -> Result<Answer, Failure>;
}

/// Webhooks (F3).
#[derive(Debug, Clone, Copy)]
pub struct Webhooks<'k>(pub(crate) &'k crate::kernel::Kernel);

crate::kernel::service_handle!(Webhooks);

impl crate::kernel::Kernel {
    /// Webhooks (`webhooks`).
    #[must_use]
    pub fn webhooks(&self) -> Webhooks<'_> {
        Webhooks(self)
    }
}

impl Webhooks<'_> {
    /// The product's declared event types.
    #[must_use]
    pub fn product_types(&self) -> &[String] {
        &self.webhook_settings().product_event_types
    }

    /// Whether `name` is an event type endpoints may subscribe to.
    #[must_use]
    pub fn known_type(&self, name: &str) -> bool {
        gatehouse_types().any(|t| t == name)
            || self
                .webhook_settings()
                .product_event_types
                .iter()
                .any(|t| t == name)
    }
}

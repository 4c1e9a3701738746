//! Webhooks (F3): an organisation's endpoints, the events queued for them, one delivery per
//! endpoint and event, and a log of every attempt. The queue is durable: an event is written in
//! the transaction of the change it reports, and a delivery stays until it succeeds or dies.

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::StoreError;
use crate::ids::OrgId;
use crate::page::{Page, PageRequest};

/// An endpoint. Its secrets are sealed fields (kind `webhook_secret`, one per version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointRow {
    pub org_id: OrgId,
    pub id: Uuid,
    pub url: String,
    pub event_types: Vec<String>,
    pub description: Option<String>,
    /// `None` while active; why it was disabled otherwise.
    pub disabled: Option<String>,
    /// The secret that signs now.
    pub secret_version: u32,
    /// Until when the previous version signs too (rotation's overlap).
    pub previous_until: Option<OffsetDateTime>,
    /// The first failure since the last success: the endpoint is disabled once this is older
    /// than the disable period.
    pub failing_since: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// One event, as every endpoint receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookMessageRow {
    pub org_id: OrgId,
    pub id: Uuid,
    pub event_type: String,
    /// The body, exactly as signed and sent.
    pub payload: Vec<u8>,
    pub created_at: OffsetDateTime,
}

/// Where one delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    Pending,
    Delivered,
    /// Given up: its attempts ran out, or its endpoint was disabled.
    Dead,
}

impl DeliveryState {
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Dead => "dead",
        }
    }

    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "delivered" => Some(Self::Delivered),
            "dead" => Some(Self::Dead),
            _ => None,
        }
    }
}

/// One event for one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRow {
    pub org_id: OrgId,
    pub id: Uuid,
    pub endpoint_id: Uuid,
    pub message_id: Uuid,
    pub state: DeliveryState,
    pub attempts: u32,
    pub next_attempt_at: OffsetDateTime,
    pub created_at: OffsetDateTime,
}

/// One attempt, as the delivery log shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRow {
    pub org_id: OrgId,
    pub id: Uuid,
    pub delivery_id: Uuid,
    pub endpoint_id: Uuid,
    pub message_id: Uuid,
    /// 1 for the first.
    pub attempt: u32,
    pub at: OffsetDateTime,
    /// The receiver's status, when it answered.
    pub status: Option<u16>,
    pub latency_ms: u32,
    /// Why it failed, when it did without an answer (refused destination, timeout, ...).
    pub error: Option<String>,
    /// The start of the receiver's answer, capped.
    pub response: String,
}

/// What an attempt changed in its delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryOutcome {
    pub id: Uuid,
    pub state: DeliveryState,
    pub attempts: u32,
    pub next_attempt_at: OffsetDateTime,
    /// The lease the attempt was made under (its claim's `next_attempt_at`): the outcome is
    /// written only while the delivery is still pending under that lease, so a worker whose
    /// lease ran out (and another took the delivery) cannot overwrite the newer outcome.
    pub leased_until: OffsetDateTime,
}

#[async_trait]
/// The scope's webhooks.
pub trait WebhookStore: Send {
    async fn insert_endpoint(&mut self, e: &EndpointRow) -> Result<(), StoreError>;

    async fn endpoint(&mut self, id: Uuid) -> Result<Option<EndpointRow>, StoreError>;

    /// [`Self::endpoint`], locked until the transaction ends, so two changes (an edit and a
    /// secret rotation) cannot undo one another (PostgreSQL `FOR UPDATE`; SQLite's writers take
    /// turns already). Only in a writing transaction.
    async fn lock_endpoint(&mut self, id: Uuid) -> Result<Option<EndpointRow>, StoreError>;

    /// Newest first.
    async fn list_endpoints(&mut self, page: PageRequest) -> Result<Page<EndpointRow>, StoreError>;

    /// Writes every mutable field; returns whether it exists.
    async fn update_endpoint(&mut self, e: &EndpointRow) -> Result<bool, StoreError>;

    /// Deletes the endpoint with its deliveries and attempts; returns whether it existed.
    async fn delete_endpoint(&mut self, id: Uuid) -> Result<bool, StoreError>;

    /// The active endpoints subscribed to `event_type`.
    async fn endpoints_for(&mut self, event_type: &str) -> Result<Vec<EndpointRow>, StoreError>;

    /// Queues events and their deliveries.
    async fn enqueue_webhooks(
        &mut self,
        messages: &[WebhookMessageRow],
        deliveries: &[DeliveryRow],
    ) -> Result<(), StoreError>;

    async fn webhook_message(&mut self, id: Uuid) -> Result<Option<WebhookMessageRow>, StoreError>;

    async fn delivery(&mut self, id: Uuid) -> Result<Option<DeliveryRow>, StoreError>;

    /// An endpoint's attempts, newest first.
    async fn list_attempts(
        &mut self,
        endpoint_id: Uuid,
        page: PageRequest,
    ) -> Result<Page<AttemptRow>, StoreError>;

    /// Gives up every pending delivery of the endpoint (it was disabled); returns how many.
    async fn kill_deliveries(&mut self, endpoint_id: Uuid) -> Result<u64, StoreError>;

    /// Disables the endpoint if it is enabled, touching nothing else; returns whether it did.
    async fn disable_endpoint(
        &mut self,
        id: Uuid,
        reason: &str,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError>;
}

#[async_trait]
/// The delivery side, across organisations: each call a transaction of its own.
pub trait WebhookQueue: Send + Sync {
    /// Takes up to `limit` pending deliveries due at `now` and leases them until `lease_until`
    /// (their next attempt moves there), so workers on several instances never take the same
    /// one, and one that died mid-send frees it then.
    async fn claim_due_webhooks(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<DeliveryRow>, StoreError>;

    /// Records one organisation's attempts, what they changed in their deliveries, and each
    /// endpoint's first failure since its last success (`None` after a success). Bookkeeping
    /// in a transaction of its own, like mail's: the change that queued the event was audited.
    async fn record_webhook_attempts(
        &self,
        org: OrgId,
        attempts: &[AttemptRow],
        outcomes: &[DeliveryOutcome],
        failing_since: &[(Uuid, Option<OffsetDateTime>)],
    ) -> Result<(), StoreError>;
}

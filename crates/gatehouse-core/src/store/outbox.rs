//! The mail outbox: a message is queued in the transaction of the change that sends it, and delivered later by a worker.

use crate::error::StoreError;
use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

/// One queued message. The whole message (recipient, subject, bodies) is one sealed envelope:
/// a reset link waiting in the outbox is as sensitive as a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailRecord {
    pub id: Uuid,
    /// Emptied once delivered.
    pub envelope: Vec<u8>,
    pub created_at: OffsetDateTime,
    pub attempts: u32,
    pub next_attempt_at: OffsetDateTime,
    pub sent_at: Option<OffsetDateTime>,
    pub last_error: Option<String>,
    /// SHA-256 of the recipient's lower-cased address: how export and erasure find a person's
    /// mail (the address itself is only inside the envelope). Empty when not known.
    pub recipient: Vec<u8>,
    /// The template it was made from (`password_reset`, ...), or `product` for the product's own.
    pub kind: String,
    /// The organisation whose product mail this is, and its list: delivery consults that
    /// organisation's opt-out list first. Gatehouse's own mail has neither and is never
    /// suppressed.
    pub org_id: Option<crate::ids::OrgId>,
    pub list: Option<String>,
}

/// The outbox at a glance, for readiness and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailBacklog {
    /// Messages not yet delivered.
    pub pending: u64,
    /// Of those, how many have failed at least once.
    pub failing: u64,
    /// When the oldest undelivered message was queued.
    pub oldest: Option<OffsetDateTime>,
    /// The newest undelivered message's last failure.
    pub last_error: Option<String>,
}

#[async_trait]
/// Queuing mail inside a platform transaction.
pub trait OutboxStore: Send {
    /// Queues a message; it commits (or rolls back) with the transaction's change.
    async fn enqueue_mail(&mut self, m: &MailRecord) -> Result<(), StoreError>;

    /// Every message to the address whose digest is `recipient` (see `MailRecord::recipient`),
    /// oldest first, at most `limit`: a person's mail for their export.
    async fn mail_to(
        &mut self,
        recipient: &[u8],
        limit: u32,
    ) -> Result<Vec<MailRecord>, StoreError>;

    /// Deletes every message to that address (erasure); returns how many.
    async fn delete_mail_to(&mut self, recipient: &[u8]) -> Result<u64, StoreError>;
}

#[async_trait]
/// The delivery side of the outbox, each call a transaction of its own (bookkeeping: the change
/// that queued the message was audited).
pub trait MailQueue: Send + Sync {
    /// Takes up to `limit` undelivered messages due at `now` and leases them until
    /// `lease_until` (their next attempt moves there), so concurrent workers on several
    /// instances never take the same message. Bookkeeping in a transaction of its own.
    async fn claim_due_mail(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<MailRecord>, StoreError>;
    /// Marks a message delivered and erases its sealed body.
    async fn mail_delivered(&self, id: uuid::Uuid, at: OffsetDateTime) -> Result<(), StoreError>;
    /// Records a failed attempt and when to try again.
    async fn mail_failed(
        &self,
        id: uuid::Uuid,
        attempts: u32,
        next_attempt_at: OffsetDateTime,
        error: &str,
    ) -> Result<(), StoreError>;
    /// Gives a message up: it is never claimed again and its sealed body is emptied.
    async fn mail_dead(
        &self,
        id: uuid::Uuid,
        attempts: u32,
        at: OffsetDateTime,
        error: &str,
    ) -> Result<(), StoreError>;
    async fn mail_backlog(&self) -> Result<MailBacklog, StoreError>;
    /// Whether the recipient (by address digest) is on `org`'s opt-out list for `list`.
    async fn mail_opted_out(
        &self,
        org: crate::ids::OrgId,
        recipient: &[u8],
        list: &str,
    ) -> Result<bool, StoreError>;
}

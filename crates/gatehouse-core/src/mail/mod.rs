//! Mail: an outbox written in the same transaction as the change that needs the message, and a
//! delivery loop that hands due messages to a transport with retries and backoff. Transports
//! (SMTP, the development `.eml` writer) live in the infrastructure layer behind
//! [`MailTransport`]; a transport that fails delays mail and never stops the process.

pub mod dns_records;
mod domain_check;
mod product;
mod templates;
mod unsubscribe;

use crate::telemetry::metrics;
use std::sync::Mutex;
use std::sync::PoisonError;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::Duration;
use uuid::Uuid;

pub(crate) use domain_check::askable;
pub use domain_check::{
    DkimSigning, DomainCheckSettings, DomainChecker, DomainReport, Finding, MAX_QUERIES,
    SPF_LOOKUP_LIMIT, TxtError, TxtResolver, Verdict, check_domain,
};
pub use product::{MailTemplate, ProductBody, ProductMessage, Queued};
pub use templates::{Template, render};
pub use unsubscribe::{UnsubscribeLink, Unsubscribed};

use crate::error::Error;
use crate::ids::new_uuid;
use crate::kernel::Kernel;
use crate::store::{MailRecord, PlatformTx};

/// What the templates need from configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailSettings {
    /// Shown in subjects and greetings.
    pub product_name: String,
    /// Links in mail point here (for example `https://app.example.com`).
    pub base_url: String,
    /// Gatehouse's own public URL: unsubscribe links point here (`{public_url}/v1/unsubscribe`).
    /// Empty when not configured: product mail is then refused.
    pub public_url: String,
    /// The product's own message templates (`POST /internal/v1/messages` with `template`).
    pub templates: Vec<MailTemplate>,
    /// The `From:` address.
    pub from: String,
    /// The first retry waits this long; each later one twice as long, up to `max_backoff`.
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    /// A message that has failed this many times is given up (dead), whatever the reason.
    pub max_attempts: u32,
    /// A message the relay refused for good this many times is given up sooner.
    pub max_refusals: u32,
    /// How long a claimed batch stays the claiming worker's: longer than sending the whole batch
    /// may take, so no other instance sends it meanwhile. A worker killed mid-batch frees its
    /// messages after this, so it is also how late they may go out.
    pub lease: Duration,
}

impl Default for MailSettings {
    fn default() -> Self {
        Self {
            product_name: "Gatehouse".to_owned(),
            base_url: "http://127.0.0.1:8080".to_owned(),
            public_url: "http://127.0.0.1:8080".to_owned(),
            templates: Vec::new(),
            from: "Gatehouse <no-reply@localhost>".to_owned(),
            first_backoff: Duration::seconds(5),
            max_backoff: Duration::minutes(15),
            max_attempts: 12,
            max_refusals: 3,
            lease: Duration::minutes(2),
        }
    }
}

/// One message, as queued and as handed to the transport.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub id: Uuid,
    pub from: String,
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// Extra headers (the product's mail carries `List-Unsubscribe` and
    /// `List-Unsubscribe-Post`, RFC 8058). Absent in messages queued before they existed.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
}

impl std::fmt::Debug for Message {
    // Bodies carry one-time links: never print them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("id", &self.id)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// Why a delivery failed. `summary` is a category for health and metrics (no server text: a
/// relay's reply may quote addresses); `detail` goes to the operator's log only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendError {
    pub summary: &'static str,
    pub detail: String,
    /// The relay refused the message for good (SMTP 5xx) or it cannot be built: retrying the
    /// same message will not help, so it goes dead after `MailSettings::max_refusals` attempts.
    pub permanent: bool,
}

/// Delivers one message. An error is retried later; neither of its texts may contain the
/// message body.
#[async_trait]
pub trait MailTransport: Send + Sync + std::fmt::Debug {
    /// `"smtp"` or `"file"`, for logs and health.
    fn kind(&self) -> &'static str;
    async fn send(&self, message: &Message) -> Result<(), SendError>;
}

/// The delivery loop's recent history, for readiness and metrics.
#[derive(Debug, Default)]
pub struct MailHealth {
    last_error: Mutex<Option<String>>,
    delivered: AtomicU64,
    failed: AtomicU64,
    skipped: AtomicU64,
}

impl MailHealth {
    #[must_use]
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    #[must_use]
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    #[must_use]
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// Product messages not sent because their recipient opted out after they were queued.
    #[must_use]
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    fn set_error(&self, e: Option<String>) {
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = e;
    }
}

/// What one pass of the delivery loop did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    pub delivered: u32,
    pub failed: u32,
    /// Not sent: the recipient opted out of the message's list.
    pub skipped: u32,
}

const SEAL_KIND: &str = "mail";
/// Messages one delivery pass claims and sends, one after another.
pub const DELIVERY_BATCH: u32 = 20;
/// What a skipped message's row says.
pub const SKIPPED: &str = "skipped: the recipient opted out of this list";

/// What the outbox knows a recipient by: the SHA-256 of the lower-cased address (see
/// `MailRecord::recipient`).
#[must_use]
pub fn recipient_digest(address: &str) -> [u8; 32] {
    gatehouse_crypto::sha256(&[
        b"gatehouse.mail.recipient.v1\0",
        address.trim().to_lowercase().as_bytes(),
    ])
}

/// Whether the failure of attempt `attempts + 1` ends the message's retries.
#[must_use]
pub fn gives_up(settings: &MailSettings, attempts: u32, e: &SendError) -> bool {
    let attempts = attempts.saturating_add(1);
    attempts >= settings.max_attempts || (e.permanent && attempts >= settings.max_refusals)
}

/// The wait before attempt `attempts + 1`: `first * 2^(attempts-1)`, capped.
#[must_use]
pub fn backoff(settings: &MailSettings, attempts: u32) -> Duration {
    let factor = 1i32 << attempts.saturating_sub(1).min(20);
    settings
        .first_backoff
        .checked_mul(factor)
        .unwrap_or(settings.max_backoff)
        .min(settings.max_backoff)
}

impl Kernel {
    /// Queues `template` for `to` inside `tx`: it is sent only if the transaction commits.
    pub(crate) async fn enqueue_mail(
        &self,
        tx: &mut dyn PlatformTx,
        to: &str,
        template: Template<'_>,
    ) -> Result<Uuid, Error> {
        let settings = self.mail_settings();
        let id = new_uuid(self.clock());
        let (subject, text, html) = render(settings, &template);
        let message = Message {
            id,
            from: settings.from.clone(),
            to: to.to_owned(),
            subject,
            text,
            html,
            headers: Vec::new(),
        };
        let plain = zeroize::Zeroizing::new(
            serde_json::to_vec(&message).map_err(|e| Error::Internal(e.to_string()))?,
        );
        let envelope = self
            .keyring()
            .seal_platform(SEAL_KIND, &id.to_string(), &plain)?;
        let now = self.clock().now();
        tx.enqueue_mail(&MailRecord {
            id,
            envelope,
            created_at: now,
            attempts: 0,
            next_attempt_at: now,
            sent_at: None,
            last_error: None,
            recipient: recipient_digest(to).to_vec(),
            kind: template.kind().to_owned(),
            org_id: None,
            list: None,
        })
        .await?;
        Ok(id)
    }

    /// Wakes the delivery loop (call after the enqueuing transaction committed).
    pub(crate) fn mail_queued(&self) {
        self.mail_wakeup().notify_one();
    }
}

/// The mail outbox's delivery side and its health.
#[derive(Debug, Clone, Copy)]
pub struct Mail<'k>(pub(crate) &'k Kernel);

crate::kernel::service_handle!(Mail);

impl<'k> Mail<'k> {
    /// Notified when mail was queued; the delivery loop waits on it between polls.
    #[must_use]
    pub fn wakeup(&self) -> &'k tokio::sync::Notify {
        self.0.mail_wakeup()
    }

    /// Deliveries and failures since start, and the last failure.
    #[must_use]
    pub fn health(&self) -> &'k MailHealth {
        self.0.mail_health()
    }
}

impl Mail<'_> {
    /// Delivers the messages due now through `transport`; failures are rescheduled with backoff.
    pub async fn deliver_due(
        &self,
        transport: &dyn MailTransport,
    ) -> Result<DeliveryReport, Error> {
        let mut report = DeliveryReport::default();
        let now = self.clock().now();
        let lease_until = now + self.mail_settings().lease;
        let due = self
            .store()
            .claim_due_mail(now, lease_until, DELIVERY_BATCH)
            .await?;
        for record in due {
            let message = match self.open_message(&record) {
                Ok(m) => m,
                Err(e) => {
                    // Unreadable is permanent: give it up rather than retrying it.
                    tracing::error!(mail_id = %record.id, error = %e, "a queued message cannot be opened; it is dead");
                    self.store()
                        .mail_dead(
                            record.id,
                            record.attempts.saturating_add(1),
                            now,
                            "the sealed message cannot be opened",
                        )
                        .await?;
                    metrics::mail_delivery("dead");
                    report.failed += 1;
                    continue;
                }
            };
            if let (Some(org), Some(list)) = (record.org_id, record.list.as_deref())
                && self
                    .store()
                    .mail_opted_out(org, &record.recipient, list)
                    .await?
            {
                // Opted out after it was queued: never sent, its body erased, counted.
                self.store()
                    .mail_dead(record.id, record.attempts, now, SKIPPED)
                    .await?;
                self.mail_health().skipped.fetch_add(1, Ordering::Relaxed);
                metrics::mail_delivery("skipped");
                tracing::info!(mail_id = %record.id, "mail skipped: the recipient opted out");
                report.skipped += 1;
                continue;
            }
            // Past the claim another instance may take these messages: stop rather than send
            // what it may be sending too (what is left is due again when the claim runs out).
            // Checked just before sending, after the store calls that may wait for a connection.
            if self.clock().now() >= lease_until {
                tracing::warn!(
                    "a mail delivery pass outlasted its claim; the rest waits for the next pass"
                );
                break;
            }
            match transport.send(&message).await {
                Ok(()) => {
                    let at = self.clock().now();
                    self.store().mail_delivered(record.id, at).await?;
                    self.mail_health().delivered.fetch_add(1, Ordering::Relaxed);
                    self.mail_health().set_error(None);
                    metrics::mail_delivery("sent");
                    metrics::set_degraded("mail", false);
                    tracing::info!(
                        mail_id = %record.id,
                        transport = transport.kind(),
                        attempts = record.attempts + 1,
                        "mail delivered"
                    );
                    report.delivered += 1;
                }
                Err(e) if gives_up(self.mail_settings(), record.attempts, &e) => {
                    let attempts = record.attempts.saturating_add(1);
                    let failure = format!("{}: {}", transport.kind(), e.summary);
                    self.store()
                        .mail_dead(record.id, attempts, self.clock().now(), &failure)
                        .await?;
                    self.mail_health().failed.fetch_add(1, Ordering::Relaxed);
                    metrics::mail_delivery("dead");
                    metrics::error(transport.kind());
                    self.mail_health().set_error(Some(failure));
                    tracing::error!(
                        mail_id = %record.id,
                        transport = transport.kind(),
                        attempts,
                        permanent = e.permanent,
                        error = %e.detail,
                        "mail delivery given up; the message is dead and its body erased"
                    );
                    report.failed += 1;
                }
                Err(e) => {
                    let attempts = record.attempts.saturating_add(1);
                    let wait = backoff(self.mail_settings(), attempts);
                    let next = self.clock().now() + wait;
                    // One text for the outbox row and for health: readiness reads whichever it
                    // finds first, so both must say the same.
                    let failure = format!("{}: {}", transport.kind(), e.summary);
                    self.store()
                        .mail_failed(record.id, attempts, next, &failure)
                        .await?;
                    self.mail_health().failed.fetch_add(1, Ordering::Relaxed);
                    metrics::mail_delivery("retry");
                    metrics::error(transport.kind());
                    metrics::set_degraded("mail", true);
                    self.mail_health().set_error(Some(failure));
                    tracing::warn!(
                        mail_id = %record.id,
                        transport = transport.kind(),
                        attempts,
                        retry_in_secs = wait.whole_seconds(),
                                                error = %e.detail,
                        "mail delivery failed; it stays in the outbox"
                    );
                    report.failed += 1;
                }
            }
        }
        Ok(report)
    }

    fn open_message(&self, record: &MailRecord) -> Result<Message, Error> {
        let plain =
            self.keyring()
                .open_platform(SEAL_KIND, &record.id.to_string(), &record.envelope)?;
        serde_json::from_slice(plain.expose()).map_err(|e| Error::Internal(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_first_wait_and_is_capped() {
        let s = MailSettings::default();
        assert_eq!(backoff(&s, 1), Duration::seconds(5));
        assert_eq!(backoff(&s, 2), Duration::seconds(10));
        assert_eq!(backoff(&s, 4), Duration::seconds(40));
        assert_eq!(backoff(&s, 12), Duration::minutes(15));
        assert_eq!(backoff(&s, u32::MAX), Duration::minutes(15));
    }

    #[test]
    fn a_message_never_prints_its_body() {
        let m = Message {
            id: Uuid::nil(),
            from: "a@x".into(),
            to: "b@x".into(),
            subject: "Reset".into(),
            text: "token=SECRET".into(),
            html: "token=SECRET".into(),
            headers: Vec::new(),
        };
        assert!(!format!("{m:?}").contains("SECRET"));
    }
}

//! The delivery worker's pass: lease due deliveries (across organisations, so several instances
//! share the work without taking the same one), sign each attempt (a fresh `webhook-timestamp`,
//! the same `webhook-id`), send up to `concurrency` at once, log every attempt, and schedule the
//! next with exponential backoff and jitter. An endpoint that has failed without one success for
//! `disable_after` is disabled, with an audit event (which raises `webhook.endpoint_disabled` for
//! the organisation's other endpoints) and a mail to its owners and admins.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use futures_util::StreamExt;
use gatehouse_crypto::SecretBytes;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::endpoints::{previous_signs, secret_at, secret_field};
use super::sign::{message_id, signature};
use super::{Answer, Failure, WebhookTransport, Webhooks};
use crate::audit::{self, Actor, AuditEvent};
use crate::error::Error;
use crate::ids::{OrgId, new_uuid};
use crate::keyring::{FieldRef, SealedKind};
use crate::mail::Template;
use crate::page::PageRequest;
use crate::scope::TenantScope;
use crate::store::{
    AttemptRow, DeliveryOutcome, DeliveryRow, DeliveryState, EndpointRow, Role, TenantTx,
    WebhookMessageRow,
};

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WebhookReport {
    pub delivered: u32,
    /// Failed attempts that will be retried.
    pub retried: u32,
    /// Deliveries given up (attempts spent, or the endpoint disabled or gone).
    pub dead: u32,
    /// Attempts refused before connecting (a forbidden destination).
    pub refused: u32,
    pub disabled_endpoints: u32,
}

type SendFuture<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = (usize, u32, Result<Answer, Failure>)> + Send + 'a>,
>;

/// What an attempt needs.
struct Job<'a> {
    delivery: &'a DeliveryRow,
    endpoint: &'a Loaded,
    message: &'a WebhookMessageRow,
}

struct Loaded {
    row: EndpointRow,
    url: Option<url::Url>,
    secrets: Vec<SecretBytes>,
}

/// The wait before attempt `attempt + 1` (attempt counts from 1), with ±20 % jitter so a burst
/// of failures does not come back as a burst; `None` once the schedule is spent.
fn next_wait(waits: &[Duration], attempt: u32) -> Option<Duration> {
    let base = *waits.get(usize::try_from(attempt).ok()?.checked_sub(1)?)?;
    let mut r = [0u8; 2];
    let jitter = if gatehouse_crypto::fill_random(&mut r).is_ok() {
        // -0.2 ..= +0.2 of the wait, in thousandths.
        i32::from(u16::from_be_bytes(r) % 401) - 200
    } else {
        0
    };
    Some(base + base * jitter / 1000)
}

/// One organisation's attempts, outcomes, and per endpoint whether an attempt succeeded and
/// whether one failed.
type Settled = (
    Vec<AttemptRow>,
    Vec<DeliveryOutcome>,
    HashMap<Uuid, (bool, bool)>,
);

/// One organisation's part of a pass: what was read for its deliveries.
struct OrgBatch {
    org: OrgId,
    endpoints: HashMap<Uuid, Option<Loaded>>,
    messages: HashMap<Uuid, Option<WebhookMessageRow>>,
    deliveries: Vec<DeliveryRow>,
}

/// `t` without its nanoseconds below the microsecond: the stores keep microseconds, and a
/// lease is compared for equality when its outcome is written.
fn micros(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(t.nanosecond() / 1_000 * 1_000)
        .unwrap_or(t)
}

impl Webhooks<'_> {
    /// One pass: delivers what is due now. Every organisation's deliveries share one pool of
    /// `concurrency` attempts, so a slow receiver holds up only the slots it occupies; an
    /// organisation whose endpoints cannot be read is skipped (its deliveries come back when
    /// their lease runs out) without stopping the others.
    pub async fn deliver_due(
        &self,
        transport: &dyn WebhookTransport,
    ) -> Result<WebhookReport, Error> {
        let settings = self.webhook_settings();
        let now = self.clock().now();
        let lease = micros(now + settings.lease);
        let due = self
            .store()
            .claim_due_webhooks(now, lease, settings.batch)
            .await?;
        let mut by_org: BTreeMap<OrgId, Vec<DeliveryRow>> = BTreeMap::new();
        for d in due {
            by_org.entry(d.org_id).or_default().push(d);
        }
        let mut batches = Vec::with_capacity(by_org.len());
        for (org, deliveries) in by_org {
            match self.read_batch(org, deliveries, now).await {
                Ok(b) => batches.push(b),
                Err(e) => {
                    tracing::warn!(org = %org, error = %e, "could not read an organisation's webhooks; its deliveries wait for their lease to run out");
                }
            }
        }
        let mut report = WebhookReport::default();
        // Every job of the pass, across organisations.
        let mut jobs = Vec::new();
        let mut unsendable: Vec<(usize, &DeliveryRow)> = Vec::new();
        for (b, batch) in batches.iter().enumerate() {
            for d in &batch.deliveries {
                let endpoint = batch.endpoints.get(&d.endpoint_id).and_then(Option::as_ref);
                let message = batch.messages.get(&d.message_id).and_then(Option::as_ref);
                match (endpoint, message) {
                    (Some(e), Some(m))
                        if e.row.disabled.is_none() && e.url.is_some() && !e.secrets.is_empty() =>
                    {
                        jobs.push((
                            b,
                            Job {
                                delivery: d,
                                endpoint: e,
                                message: m,
                            },
                        ));
                    }
                    // Disabled, deleted, or unreadable: nothing will ever send it.
                    _ => unsendable.push((b, d)),
                }
            }
        }
        let concurrency = self.webhook_settings().concurrency.max(1);
        // Boxed one by one in a loop, not mapped by a closure: the futures borrow the jobs, and a
        // closure's borrow is not general enough for a future the runtime may move across threads.
        let mut sends: Vec<SendFuture<'_>> = Vec::with_capacity(jobs.len());
        for (i, (_, job)) in jobs.iter().enumerate() {
            sends.push(Box::pin(async move {
                let started = Instant::now();
                let result = self.attempt(transport, job).await;
                let ms = u32::try_from(started.elapsed().as_millis()).unwrap_or(u32::MAX);
                (i, ms, result)
            }));
        }
        let results: Vec<(usize, u32, Result<Answer, Failure>)> = futures_util::stream::iter(sends)
            .buffer_unordered(concurrency)
            .collect()
            .await;
        let at = self.clock().now();
        let mut per_org: Vec<Settled> = batches.iter().map(|_| Default::default()).collect();
        for (b, d) in unsendable {
            report.dead += 1;
            if let Some((_, outcomes, _)) = per_org.get_mut(b) {
                outcomes.push(DeliveryOutcome {
                    id: d.id,
                    state: DeliveryState::Dead,
                    attempts: d.attempts,
                    next_attempt_at: at,
                    leased_until: lease,
                });
            }
        }
        let waits = &self.webhook_settings().retry_waits;
        for (i, latency_ms, result) in results {
            let Some((b, job)) = jobs.get(i) else {
                continue;
            };
            let Some((attempts, outcomes, health)) = per_org.get_mut(*b) else {
                continue;
            };
            let d = job.delivery;
            let attempt = d.attempts.saturating_add(1);
            let (status, error, response, ok) = match &result {
                Ok(a) => (
                    Some(a.status),
                    None,
                    a.excerpt.clone(),
                    (200..300).contains(&a.status),
                ),
                Err(f) => (None, Some(f.reason.clone()), String::new(), false),
            };
            if result.as_ref().is_err_and(|f| f.refused) {
                report.refused += 1;
            }
            attempts.push(AttemptRow {
                org_id: d.org_id,
                id: new_uuid(self.clock()),
                delivery_id: d.id,
                endpoint_id: d.endpoint_id,
                message_id: d.message_id,
                attempt,
                at,
                status,
                latency_ms,
                error,
                response,
            });
            let h = health.entry(d.endpoint_id).or_default();
            let (state, next) = if ok {
                h.0 = true;
                report.delivered += 1;
                (DeliveryState::Delivered, at)
            } else {
                h.1 = true;
                match next_wait(waits, attempt) {
                    Some(wait) => {
                        report.retried += 1;
                        (DeliveryState::Pending, at + wait)
                    }
                    None => {
                        report.dead += 1;
                        (DeliveryState::Dead, at)
                    }
                }
            };
            outcomes.push(DeliveryOutcome {
                id: d.id,
                state,
                attempts: attempt,
                next_attempt_at: next,
                leased_until: lease,
            });
        }
        crate::telemetry::metrics::webhook_attempts(
            report.delivered,
            u32::try_from(jobs.len())
                .unwrap_or(u32::MAX)
                .saturating_sub(report.delivered),
        );
        for (batch, (attempts, outcomes, health)) in batches.iter().zip(per_org) {
            if let Err(e) = self
                .settle(batch, &attempts, &outcomes, health, at, &mut report)
                .await
            {
                tracing::warn!(org = %batch.org, error = %e, "could not record webhook attempts; those deliveries are tried again when their lease runs out");
            }
        }
        Ok(report)
    }

    async fn load(
        &self,
        tx: &mut dyn TenantTx,
        endpoint: Uuid,
        now: OffsetDateTime,
    ) -> Result<Option<Loaded>, Error> {
        let Some(row) = tx.endpoint(endpoint).await? else {
            return Ok(None);
        };
        let mut versions = vec![row.secret_version];
        if previous_signs(&row, now) {
            versions.push(row.secret_version - 1);
        }
        let mut secrets = Vec::with_capacity(versions.len());
        for v in versions {
            let (id, field) = secret_at(&endpoint.to_string(), &secret_field(v));
            let at = FieldRef {
                kind: SealedKind::WebhookSecret,
                record_id: &id,
                field: &field,
            };
            if let Some(s) = self.keyring().open(tx, at).await? {
                secrets.push(s);
            }
        }
        let url = url::Url::parse(&row.url).ok();
        Ok(Some(Loaded { row, url, secrets }))
    }

    async fn read_batch(
        &self,
        org: OrgId,
        deliveries: Vec<DeliveryRow>,
        now: OffsetDateTime,
    ) -> Result<OrgBatch, Error> {
        let mut endpoints: HashMap<Uuid, Option<Loaded>> = HashMap::new();
        let mut messages: HashMap<Uuid, Option<WebhookMessageRow>> = HashMap::new();
        let mut tx = self
            .store()
            .begin_read_scoped(&TenantScope::granted(org))
            .await?;
        for d in &deliveries {
            if let std::collections::hash_map::Entry::Vacant(slot) = endpoints.entry(d.endpoint_id)
            {
                let loaded = match self.load(tx.as_mut(), d.endpoint_id, now).await {
                    Ok(l) => l,
                    // Keys shredded, or a sealed secret that no longer opens: never sendable.
                    Err(Error::KeysShredded | Error::Unreadable(_)) => None,
                    Err(e) => return Err(e),
                };
                slot.insert(loaded);
            }
            if let std::collections::hash_map::Entry::Vacant(slot) = messages.entry(d.message_id) {
                slot.insert(tx.webhook_message(d.message_id).await?);
            }
        }
        Ok(OrgBatch {
            org,
            endpoints,
            messages,
            deliveries,
        })
    }

    /// Writes one organisation's attempts and outcomes, moves its endpoints' failure streaks,
    /// and disables those failing for longer than the disable period.
    async fn settle(
        &self,
        batch: &OrgBatch,
        attempts: &[AttemptRow],
        outcomes: &[DeliveryOutcome],
        health: HashMap<Uuid, (bool, bool)>,
        at: OffsetDateTime,
        report: &mut WebhookReport,
    ) -> Result<(), Error> {
        let disable_after = self.webhook_settings().disable_after;
        let mut failing_since = Vec::new();
        let mut to_disable = Vec::new();
        for (endpoint, (succeeded, failed)) in health {
            let Some(Some(e)) = batch.endpoints.get(&endpoint) else {
                continue;
            };
            if succeeded {
                if e.row.failing_since.is_some() {
                    failing_since.push((endpoint, None));
                }
            } else if failed {
                let since = e.row.failing_since.unwrap_or(at);
                if e.row.failing_since.is_none() {
                    failing_since.push((endpoint, Some(since)));
                }
                if at - since >= disable_after {
                    to_disable.push((endpoint, since));
                }
            }
        }
        self.store()
            .record_webhook_attempts(batch.org, attempts, outcomes, &failing_since)
            .await?;
        for (endpoint, since) in to_disable {
            if self.disable_failing(batch.org, endpoint, since).await? {
                report.disabled_endpoints += 1;
            }
        }
        Ok(())
    }

    async fn attempt(
        &self,
        transport: &dyn WebhookTransport,
        job: &Job<'_>,
    ) -> Result<Answer, Failure> {
        let url = job.endpoint.url.as_ref().ok_or_else(|| Failure {
            reason: "the endpoint's URL does not parse".into(),
            refused: true,
        })?;
        let id = message_id(job.message.id);
        let ts = self.clock().now().unix_timestamp();
        let keys: Vec<&[u8]> = job
            .endpoint
            .secrets
            .iter()
            .map(SecretBytes::expose)
            .collect();
        let sig = signature(&keys, &id, ts, &job.message.payload);
        let headers = [
            ("content-type", "application/json".to_owned()),
            ("user-agent", "Gatehouse-Webhooks/1".to_owned()),
            ("webhook-id", id),
            ("webhook-timestamp", ts.to_string()),
            ("webhook-signature", sig),
        ];
        transport.post(url, &headers, &job.message.payload).await
    }

    /// Disables an endpoint that kept failing; returns whether this call did.
    async fn disable_failing(
        &self,
        org: OrgId,
        endpoint: Uuid,
        since: OffsetDateTime,
    ) -> Result<bool, Error> {
        let scope = TenantScope::granted(org);
        let mut admins = Vec::new();
        let current = {
            let mut tx = self.store().begin_read_scoped(&scope).await?;
            let mut page = PageRequest::parse(None, Some(200))?;
            loop {
                let found = tx.list_memberships(page).await?;
                admins.extend(
                    found
                        .items
                        .iter()
                        .filter(|m| matches!(m.role, Role::Owner | Role::Admin))
                        .map(|m| m.user_id),
                );
                match found.next_cursor {
                    Some(c) if admins.len() < 1000 => {
                        page = PageRequest::parse(Some(&c), Some(200))?;
                    }
                    _ => break,
                }
            }
            tx.endpoint(endpoint).await?
        };
        let Some(e) = current.filter(|e| e.disabled.is_none()) else {
            return Ok(false);
        };
        let now = self.clock().now();
        let hours = (now - since).whole_hours();
        let mut platform = self.store().begin().await?;
        for user in &admins {
            if let Some(u) = platform.user_by_id(*user).await? {
                self.enqueue_mail(
                    platform.as_mut(),
                    &u.email,
                    Template::WebhookDisabled {
                        url: &super::endpoints::shown_url(&e.url),
                        since_hours: hours,
                    },
                )
                .await?;
            }
        }
        let mut tx = platform.enter(&scope).await?;
        // Only the disabled mark changes: a rotation or a change made meanwhile stays.
        let reason = format!("every delivery failed for {hours} hours");
        if !tx.disable_endpoint(endpoint, &reason, now).await? {
            return Ok(false);
        }
        let killed = tx.kill_deliveries(endpoint).await?;
        let event = AuditEvent::success(
            Actor::system("webhooks"),
            "webhook.endpoint_disabled",
            "webhook_endpoint",
            endpoint,
        )
        .with_details(
            serde_json::json!({
                "url": super::endpoints::shown_url(&e.url),
                "failing_hours": hours,
                "deliveries_given_up": killed,
            })
            .to_string(),
        );
        let proof = audit::append_tenant(tx.as_mut(), self.clock(), event).await?;
        tx.commit(proof).await?;
        self.mail_queued();
        tracing::warn!(org = %org, endpoint = %endpoint, hours, "webhook endpoint disabled after failing");
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_follow_the_schedule_within_their_jitter_and_then_stop() {
        let waits = crate::webhooks::WebhookSettings::default().retry_waits;
        for (i, base) in waits.iter().enumerate() {
            let w = next_wait(&waits, u32::try_from(i + 1).unwrap()).unwrap();
            assert!(w >= *base * 0.8 && w <= *base * 1.2, "{i}: {w}");
        }
        assert_eq!(
            next_wait(&waits, u32::try_from(waits.len() + 1).unwrap()),
            None
        );
        assert_eq!(next_wait(&waits, 0), None);
        let total: Duration = waits.iter().copied().sum();
        assert!(
            total > Duration::hours(20) && total < Duration::hours(30),
            "{total}"
        );
    }
}

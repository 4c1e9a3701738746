//! Queuing events: Gatehouse's own from the audit append of the change they report (so an event
//! exists exactly when its change committed), the product's from `POST /internal/v1/events`. An
//! event no endpoint subscribes to is not stored.

use std::collections::HashMap;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::Webhooks;
use super::catalogue::for_audit_action;
use crate::audit::{self, Actor, AuditEvent, Outcome};
use crate::clock::Clock;
use crate::context::ServiceCall;
use crate::error::Error;
use crate::ids::{OrgId, new_uuid};
use crate::scope::TenantScope;
use crate::store::{DeliveryRow, DeliveryState, EndpointRow, TenantTx, WebhookMessageRow};

/// Events per call of `POST /internal/v1/events`.
pub const MAX_EVENTS: usize = 1000;
/// The largest body one event may have.
const MAX_PAYLOAD: usize = 64 * 1024;

/// One of the product's events.
#[derive(Debug, Clone, PartialEq)]
pub struct ProductWebhookEvent {
    pub event_type: String,
    /// A JSON object.
    pub data: serde_json::Value,
}

fn body(event_type: &str, at: OffsetDateTime, data: serde_json::Value) -> Result<Vec<u8>, Error> {
    let timestamp = at
        .format(&Rfc3339)
        .map_err(|e| Error::Internal(e.to_string()))?;
    serde_json::to_vec(&serde_json::json!({
        "type": event_type,
        "timestamp": timestamp,
        "data": data,
    }))
    .map_err(|e| Error::Internal(e.to_string()))
}

/// A message for `endpoints`, and one delivery each, due now.
fn queued(
    clock: &dyn Clock,
    org: OrgId,
    event_type: &str,
    payload: Vec<u8>,
    endpoints: &[EndpointRow],
) -> (WebhookMessageRow, Vec<DeliveryRow>) {
    let now = clock.now();
    let message = WebhookMessageRow {
        org_id: org,
        id: new_uuid(clock),
        event_type: event_type.to_owned(),
        payload,
        created_at: now,
    };
    let deliveries = endpoints
        .iter()
        .map(|e| DeliveryRow {
            org_id: org,
            id: new_uuid(clock),
            endpoint_id: e.id,
            message_id: message.id,
            state: DeliveryState::Pending,
            attempts: 0,
            next_attempt_at: now,
            created_at: now,
        })
        .collect();
    (message, deliveries)
}

/// Queues the webhook event `event` raises, if it raises one and an endpoint subscribes to it,
/// in the transaction that appends it.
pub(crate) async fn for_audit_event(
    tx: &mut dyn TenantTx,
    clock: &dyn Clock,
    event: &AuditEvent,
) -> Result<(), Error> {
    if event.outcome != Outcome::Success {
        return Ok(());
    }
    let Some(event_type) = for_audit_action(&event.action) else {
        return Ok(());
    };
    let endpoints = tx.endpoints_for(event_type).await?;
    if endpoints.is_empty() {
        return Ok(());
    }
    let org = tx.scope().org_id();
    let details: serde_json::Value =
        serde_json::from_str(&event.details).unwrap_or(serde_json::Value::Null);
    let data = serde_json::json!({
        "organization_id": org.as_uuid(),
        "actor": {"type": event.actor.kind.as_str(), "id": event.actor.id},
        "resource": {"type": event.resource_type, "id": event.resource_id},
        "details": details,
    });
    let (message, deliveries) = queued(
        clock,
        org,
        event_type,
        body(event_type, clock.now(), data)?,
        &endpoints,
    );
    tx.enqueue_webhooks(std::slice::from_ref(&message), &deliveries)
        .await?;
    Ok(())
}

impl Webhooks<'_> {
    /// Queues the product's events for `org`'s subscribed endpoints, all or none, with one audit
    /// event for the call. Returns (events accepted, deliveries queued).
    pub async fn publish(
        &self,
        call: &ServiceCall,
        org: OrgId,
        events: Vec<ProductWebhookEvent>,
    ) -> Result<(usize, usize), Error> {
        if events.is_empty() || events.len() > MAX_EVENTS {
            return Err(Error::invalid(
                "events",
                format!("must hold 1 to {MAX_EVENTS} events"),
            ));
        }
        let declared = &self.webhook_settings().product_event_types;
        let now = self.clock().now();
        let mut bodies = Vec::with_capacity(events.len());
        for e in events {
            if !declared.contains(&e.event_type) {
                return Err(Error::invalid(
                    "type",
                    format!(
                        "{:?} is not a declared product event type (webhooks.product_event_types)",
                        e.event_type
                    ),
                ));
            }
            if !e.data.is_object() {
                return Err(Error::invalid("data", "must be a JSON object"));
            }
            let b = body(&e.event_type, now, e.data)?;
            if b.len() > MAX_PAYLOAD {
                return Err(Error::invalid("data", "makes an event body over 64 KiB"));
            }
            bodies.push((e.event_type, b));
        }
        let mut platform = self.store().begin().await?;
        if platform.organization_by_id(org).await?.is_none() {
            return Err(Error::NotFound("organization"));
        }
        let mut tx = platform.enter(&TenantScope::granted(org)).await?;
        let mut subscribed: HashMap<String, Vec<EndpointRow>> = HashMap::new();
        let mut messages = Vec::new();
        let mut deliveries = Vec::new();
        let accepted = bodies.len();
        for (event_type, payload) in bodies {
            if !subscribed.contains_key(&event_type) {
                let found = tx.endpoints_for(&event_type).await?;
                subscribed.insert(event_type.clone(), found);
            }
            let endpoints = subscribed
                .get(&event_type)
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            if endpoints.is_empty() {
                continue;
            }
            let (m, d) = queued(self.clock(), org, &event_type, payload, endpoints);
            messages.push(m);
            deliveries.extend(d);
        }
        tx.enqueue_webhooks(&messages, &deliveries).await?;
        let event = AuditEvent::success(
            Actor::system(&format!("service:{}", call.service)),
            "webhook.events_published",
            "organization",
            org.as_uuid(),
        )
        .with_details(
            serde_json::json!({"events": accepted, "stored": messages.len(), "deliveries": deliveries.len()})
                .to_string(),
        )
        .with_request(call.request.request_id.clone());
        let proof = audit::append_tenant(tx.as_mut(), self.clock(), event).await?;
        tx.commit(proof).await?;
        if !deliveries.is_empty() {
            self.webhooks_queued();
        }
        Ok((accepted, deliveries.len()))
    }
}

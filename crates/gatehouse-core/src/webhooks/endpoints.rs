//! Endpoints: created, listed, changed, deleted, their secrets rotated with an overlap, their
//! delivery log read and deliveries replayed. Each change is audited; `webhooks.manage` gates
//! all of it.

use gatehouse_crypto::{SecretBytes, SecretString};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::Webhooks;
use super::destination::check_url;
use super::sign::new_secret;
use crate::audit::{self, AuditEvent};
use crate::context::TenantCall;
use crate::error::Error;
use crate::identity::Permission;
use crate::ids::new_uuid;
use crate::keyring::{FieldRef, SealedKind};
use crate::page::{Page, PageRequest};
use crate::store::{AttemptRow, DeliveryRow, DeliveryState, EndpointRow, TenantTx};

/// At most this many endpoints' event types, and this long a description.
const MAX_TYPES: usize = 50;
const MAX_DESCRIPTION: usize = 200;
/// The longest overlap a rotation may keep the old secret signing.
pub const MAX_OVERLAP: Duration = Duration::days(7);

/// A new endpoint.
#[derive(Debug, Clone)]
pub struct NewEndpoint {
    pub url: String,
    pub event_types: Vec<String>,
    pub description: Option<String>,
}

/// A change; `None` leaves a field alone.
#[derive(Debug, Clone, Default)]
pub struct EndpointChange {
    pub url: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub description: Option<Option<String>>,
    /// `Some(true)` enables a disabled endpoint; `Some(false)` disables it.
    pub enabled: Option<bool>,
}

/// An endpoint just made, with its secret (shown this once).
#[derive(Debug)]
pub struct CreatedEndpoint {
    pub endpoint: EndpointRow,
    pub secret: SecretString,
}

/// A rotation's new secret (shown this once) and until when the old one still signs.
#[derive(Debug)]
pub struct RotatedSecret {
    pub endpoint: EndpointRow,
    pub secret: SecretString,
}

/// An endpoint's URL as audit events, mail and other endpoints see it: scheme, host and port,
/// never its path or query (which may carry a receiver's token).
pub(crate) fn shown_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => match (u.host_str(), u.port()) {
            (Some(h), Some(p)) => format!("{}://{h}:{p}", u.scheme()),
            (Some(h), None) => format!("{}://{h}", u.scheme()),
            _ => String::new(),
        },
        Err(_) => String::new(),
    }
}

/// What a refused destination is told, whatever the reason.
const GENERIC_REFUSAL: &str = "must resolve to public addresses only (no loopback, private, \
                               link-local, metadata or reserved address)";

/// Endpoints one organisation may have: each event is queued once per subscribed endpoint in
/// the transaction of its change.
pub const MAX_ENDPOINTS: usize = 50;

pub(super) fn secret_at(endpoint: &str, field: &str) -> (String, String) {
    (endpoint.to_owned(), field.to_owned())
}

pub(super) fn secret_field(version: u32) -> String {
    format!("v{version}")
}

impl Webhooks<'_> {
    /// Checks the caller may manage webhooks (and is not impersonating: a secret and a standing
    /// outbound channel outlive the impersonation) before any name is resolved for them; each
    /// change checks again in its own transaction.
    async fn may_manage(&self, call: &TenantCall) -> Result<(), Error> {
        crate::identity::refuse_under_impersonation(
            &call.principal,
            "webhook endpoints cannot be changed while impersonating",
        )?;
        self.managing(call, false).await.map(|_| ())
    }

    /// A transaction in the caller's organisation (writing or reading), once the caller is
    /// found to hold `webhooks.manage`.
    async fn managing(&self, call: &TenantCall, write: bool) -> Result<Box<dyn TenantTx>, Error> {
        let tx = if write {
            self.store().begin_scoped(&call.scope).await?
        } else {
            self.store().begin_read_scoped(&call.scope).await?
        };
        let (tx, _) = self
            .authorize(
                tx,
                &call.principal,
                Permission::WEBHOOKS_MANAGE,
                &call.request,
            )
            .await?;
        Ok(tx)
    }

    fn types(&self, types: &[String]) -> Result<Vec<String>, Error> {
        if types.is_empty() || types.len() > MAX_TYPES {
            return Err(Error::invalid(
                "event_types",
                format!("must list 1 to {MAX_TYPES} event types"),
            ));
        }
        let mut out: Vec<String> = Vec::with_capacity(types.len());
        for t in types {
            if !self.known_type(t) {
                return Err(Error::invalid(
                    "event_types",
                    format!("{t:?} is not an event type (see GET /v1/webhooks/event-types)"),
                ));
            }
            if !out.contains(t) {
                out.push(t.clone());
            }
        }
        Ok(out)
    }

    fn description(d: Option<String>) -> Result<Option<String>, Error> {
        match d {
            Some(d)
                if d.is_empty()
                    || d.chars().count() > MAX_DESCRIPTION
                    || d.chars().any(char::is_control) =>
            {
                Err(Error::invalid(
                    "description",
                    format!("must be 1 to {MAX_DESCRIPTION} characters without control characters"),
                ))
            }
            other => Ok(other),
        }
    }

    /// The URL, checked for shape and then by resolving it: no endpoint is stored that would
    /// send to a forbidden address now.
    async fn destination(&self, url: &str) -> Result<String, Error> {
        let parsed = check_url(url, self.webhook_settings().destinations).map_err(|r| {
            // A shape refusal (scheme, credentials) is the caller's own input; an address
            // refusal is answered like a resolved one.
            if r.starts_with("resolves") {
                Error::invalid("url", GENERIC_REFUSAL)
            } else {
                Error::invalid("url", r)
            }
        })?;
        let transport = self.webhook_transport().ok_or(Error::Conflict(
            "webhooks are not configured on this server",
        ))?;
        if let Err(detail) = transport.check_destination(&parsed).await {
            // The caller learns only that the host is not allowed: which internal address a
            // name resolves to (or whether it resolves) is the operator's to know.
            tracing::info!(detail = %detail, "a webhook destination was refused");
            return Err(Error::invalid("url", GENERIC_REFUSAL));
        }
        Ok(parsed.to_string())
    }

    async fn seal_secret(
        &self,
        tx: &mut dyn TenantTx,
        endpoint: Uuid,
        version: u32,
        raw: &SecretBytes,
    ) -> Result<(), Error> {
        let (id, field) = secret_at(&endpoint.to_string(), &secret_field(version));
        self.keyring()
            .seal(
                tx,
                FieldRef {
                    kind: SealedKind::WebhookSecret,
                    record_id: &id,
                    field: &field,
                },
                raw.expose(),
            )
            .await
    }

    /// Makes an endpoint. Its secret (`whsec_...`) is in the answer only.
    pub async fn create(
        &self,
        call: &TenantCall,
        input: NewEndpoint,
    ) -> Result<CreatedEndpoint, Error> {
        self.may_manage(call).await?;
        let event_types = self.types(&input.event_types)?;
        let description = Self::description(input.description)?;
        let url = self.destination(&input.url).await?;
        let (raw, secret) = new_secret()?;
        let now = self.clock().now();
        let mut tx = self.managing(call, true).await?;
        let existing = tx
            .list_endpoints(PageRequest::parse(None, Some(200))?)
            .await?;
        if existing.items.len() >= MAX_ENDPOINTS {
            return Err(Error::Conflict(
                "the organisation has 50 webhook endpoints, the most it may have",
            ));
        }
        let endpoint = EndpointRow {
            org_id: call.scope.org_id(),
            id: new_uuid(self.clock()),
            url,
            event_types,
            description,
            disabled: None,
            secret_version: 1,
            previous_until: None,
            failing_since: None,
            created_at: now,
            updated_at: now,
        };
        tx.insert_endpoint(&endpoint).await?;
        self.seal_secret(tx.as_mut(), endpoint.id, 1, &raw).await?;
        let event = AuditEvent::success(
            call.principal.actor(),
            "webhook.endpoint_created",
            "webhook_endpoint",
            endpoint.id,
        )
        .with_details(
            serde_json::json!({"url": shown_url(&endpoint.url), "event_types": endpoint.event_types})
                .to_string(),
        )
        .with_request(call.request.request_id.clone());
        let proof = audit::append_tenant(tx.as_mut(), self.clock(), event).await?;
        tx.commit(proof).await?;
        Ok(CreatedEndpoint { endpoint, secret })
    }

    pub async fn list(
        &self,
        call: &TenantCall,
        page: PageRequest,
    ) -> Result<Page<EndpointRow>, Error> {
        let mut tx = self.managing(call, false).await?;
        Ok(tx.list_endpoints(page).await?)
    }

    pub async fn get(&self, call: &TenantCall, id: Uuid) -> Result<EndpointRow, Error> {
        let mut tx = self.managing(call, false).await?;
        tx.endpoint(id)
            .await?
            .ok_or(Error::NotFound("webhook endpoint"))
    }

    /// Changes an endpoint; enabling one clears its failure streak.
    pub async fn update(
        &self,
        call: &TenantCall,
        id: Uuid,
        change: EndpointChange,
    ) -> Result<EndpointRow, Error> {
        self.may_manage(call).await?;
        let types = change
            .event_types
            .as_deref()
            .map(|t| self.types(t))
            .transpose()?;
        let description = change.description.map(Self::description).transpose()?;
        let url = match &change.url {
            Some(u) => Some(self.destination(u).await?),
            None => None,
        };
        let mut tx = self.managing(call, true).await?;
        let mut e = tx
            .lock_endpoint(id)
            .await?
            .ok_or(Error::NotFound("webhook endpoint"))?;
        if let Some(u) = url {
            e.url = u;
        }
        if let Some(t) = types {
            e.event_types = t;
        }
        if let Some(d) = description {
            e.description = d;
        }
        match change.enabled {
            Some(true) => {
                e.disabled = None;
                e.failing_since = None;
            }
            Some(false) if e.disabled.is_none() => e.disabled = Some("disabled by a member".into()),
            _ => {}
        }
        e.updated_at = self.clock().now();
        tx.update_endpoint(&e).await?;
        if e.disabled.is_some() {
            tx.kill_deliveries(e.id).await?;
        }
        let event = AuditEvent::success(call.principal.actor(), "webhook.endpoint_updated", "webhook_endpoint", id)
            .with_details(serde_json::json!({"url": shown_url(&e.url), "event_types": e.event_types, "enabled": e.disabled.is_none()}).to_string())
            .with_request(call.request.request_id.clone());
        let proof = audit::append_tenant(tx.as_mut(), self.clock(), event).await?;
        tx.commit(proof).await?;
        Ok(e)
    }

    /// Deletes an endpoint with its secrets, deliveries and log.
    pub async fn delete(&self, call: &TenantCall, id: Uuid) -> Result<(), Error> {
        let mut tx = self.managing(call, true).await?;
        let e = tx
            .endpoint(id)
            .await?
            .ok_or(Error::NotFound("webhook endpoint"))?;
        for v in 1..=e.secret_version {
            tx.delete_sealed(
                SealedKind::WebhookSecret.as_str(),
                &id.to_string(),
                &secret_field(v),
            )
            .await?;
        }
        tx.delete_endpoint(id).await?;
        let event = AuditEvent::success(
            call.principal.actor(),
            "webhook.endpoint_deleted",
            "webhook_endpoint",
            id,
        )
        .with_request(call.request.request_id.clone());
        let proof = audit::append_tenant(tx.as_mut(), self.clock(), event).await?;
        tx.commit(proof).await?;
        Ok(())
    }

    /// A new secret signs from now; the old one signs beside it for `overlap` (0 to 7 days),
    /// so receivers can switch without dropping a message.
    pub async fn rotate_secret(
        &self,
        call: &TenantCall,
        id: Uuid,
        overlap: Duration,
    ) -> Result<RotatedSecret, Error> {
        crate::identity::refuse_under_impersonation(
            &call.principal,
            "webhook secrets cannot be rotated while impersonating",
        )?;
        if overlap.is_negative() || overlap > MAX_OVERLAP {
            return Err(Error::invalid(
                "overlap_seconds",
                "must be 0 to 604800 (seven days)",
            ));
        }
        let (raw, secret) = new_secret()?;
        let mut tx = self.managing(call, true).await?;
        let mut e = tx
            .lock_endpoint(id)
            .await?
            .ok_or(Error::NotFound("webhook endpoint"))?;
        let now = self.clock().now();
        // A version older than the previous one never signs again: its sealed value goes.
        if e.secret_version > 1 {
            tx.delete_sealed(
                SealedKind::WebhookSecret.as_str(),
                &id.to_string(),
                &secret_field(e.secret_version - 1),
            )
            .await?;
        }
        e.secret_version += 1;
        e.previous_until = (overlap > Duration::ZERO).then(|| now + overlap);
        e.updated_at = now;
        self.seal_secret(tx.as_mut(), id, e.secret_version, &raw)
            .await?;
        tx.update_endpoint(&e).await?;
        let event = AuditEvent::success(call.principal.actor(), "webhook.secret_rotated", "webhook_endpoint", id)
            .with_details(serde_json::json!({"version": e.secret_version, "overlap_seconds": overlap.whole_seconds()}).to_string())
            .with_request(call.request.request_id.clone());
        let proof = audit::append_tenant(tx.as_mut(), self.clock(), event).await?;
        tx.commit(proof).await?;
        Ok(RotatedSecret {
            endpoint: e,
            secret,
        })
    }

    /// An endpoint's delivery log, newest first.
    pub async fn attempts(
        &self,
        call: &TenantCall,
        id: Uuid,
        page: PageRequest,
    ) -> Result<Page<AttemptRow>, Error> {
        let mut tx = self.managing(call, false).await?;
        tx.endpoint(id)
            .await?
            .ok_or(Error::NotFound("webhook endpoint"))?;
        Ok(tx.list_attempts(id, page).await?)
    }

    /// Sends a delivery's event again, as a new delivery due now (the same `webhook-id`, so a
    /// receiver that already has it can tell).
    pub async fn replay(
        &self,
        call: &TenantCall,
        endpoint: Uuid,
        delivery: Uuid,
    ) -> Result<DeliveryRow, Error> {
        let mut tx = self.managing(call, true).await?;
        let e = tx
            .endpoint(endpoint)
            .await?
            .ok_or(Error::NotFound("webhook endpoint"))?;
        if e.disabled.is_some() {
            return Err(Error::Conflict("the endpoint is disabled; enable it first"));
        }
        let old = tx
            .delivery(delivery)
            .await?
            .filter(|d| d.endpoint_id == endpoint)
            .ok_or(Error::NotFound("webhook delivery"))?;
        let now = self.clock().now();
        let d = DeliveryRow {
            org_id: call.scope.org_id(),
            id: new_uuid(self.clock()),
            endpoint_id: endpoint,
            message_id: old.message_id,
            state: DeliveryState::Pending,
            attempts: 0,
            next_attempt_at: now,
            created_at: now,
        };
        tx.enqueue_webhooks(&[], std::slice::from_ref(&d)).await?;
        let event = AuditEvent::success(
            call.principal.actor(),
            "webhook.delivery_replayed",
            "webhook_delivery",
            d.id,
        )
        .with_details(serde_json::json!({"endpoint": endpoint, "replays": delivery}).to_string())
        .with_request(call.request.request_id.clone());
        let proof = audit::append_tenant(tx.as_mut(), self.clock(), event).await?;
        tx.commit(proof).await?;
        self.webhooks_queued();
        Ok(d)
    }
}

/// Whether the previous secret still signs at `now`.
pub(super) fn previous_signs(e: &EndpointRow, now: OffsetDateTime) -> bool {
    e.secret_version > 1 && e.previous_until.is_some_and(|t| now < t)
}

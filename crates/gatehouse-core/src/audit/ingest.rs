//! The product's own events (E1): a service appends what its users and keys did (`report.run`,
//! `memory.export`) to their organisation's chain, through the group-commit writer, and is
//! answered once they are durable. Every actor and every resource Gatehouse knows is checked to
//! belong to the organisation, so a product cannot write into one organisation's log about
//! another's people, keys, secrets or records; Gatehouse's own verbs are refused.

use std::collections::HashSet;
use std::net::IpAddr;

use uuid::Uuid;

use super::{Actor, ActorKind, AuditEvent, AuditLog, Outcome, batcher::PersonalEvent};
use crate::context::ServiceCall;
use crate::error::Error;
use crate::ids::{OrgId, UserId};
use crate::keyring::PersonalData;
use crate::scope::TenantScope;
use crate::store::TenantTx;

/// Events per call.
pub const MAX_EVENTS: usize = 1_000;
/// A detail object's size once serialised.
pub const MAX_DETAIL_BYTES: usize = 4_096;

/// The first segments of Gatehouse's own actions: a product's event may not pose as one.
const RESERVED: [&str; 41] = [
    "api_key",
    "api_keys",
    "audit",
    "auth",
    "check",
    "checkpoint",
    "data",
    "email",
    "grant",
    "grants",
    "erasure",
    "impersonation",
    "invitation",
    "key",
    "keyring",
    "lifecycle",
    "link",
    "login",
    "mail",
    "member",
    "members",
    "mfa",
    "operator",
    "org",
    "organization",
    "password",
    "permission",
    "platform",
    "record",
    "recovery",
    "retention",
    "role",
    "roles",
    "secret",
    "secrets",
    "session",
    "share_link",
    "signup",
    "transit",
    "user",
    "webhook",
];

/// Who did it: a member, or one of the organisation's API keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventActor {
    User(UserId),
    ApiKey(Uuid),
}

/// One event as the product reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProductEvent {
    pub actor: EventActor,
    /// The product's own dotted verb (`report.run`).
    pub action: String,
    pub resource_type: String,
    pub resource_id: String,
    pub outcome: Outcome,
    /// A JSON object, at most [`MAX_DETAIL_BYTES`] serialised.
    pub detail: serde_json::Map<String, serde_json::Value>,
    /// The product's request id; the ingesting request's when absent.
    pub request_id: Option<String>,
    /// The end user's address and agent, sealed under the actor's subject key (G2).
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
}

/// A refusal naming the event by its index (the field names the part).
fn refuse(field: &'static str, i: usize, reason: impl std::fmt::Display) -> Error {
    Error::invalid(field, format!("event {i}: {reason}"))
}

fn identifier(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn printable(s: &str, max: usize) -> bool {
    !s.is_empty() && s.chars().count() <= max && !s.chars().any(char::is_control)
}

/// The checks that need no database; the serialised detail on success.
fn check_shape(i: usize, e: &ProductEvent) -> Result<String, Error> {
    let dotted = e.action.len() <= 64
        && e.action.split('.').count() >= 2
        && e.action.split('.').all(|p| identifier(p, 64));
    if !dotted {
        return Err(refuse(
            "events[].action",
            i,
            "a dotted lower-case verb of at most 64 characters, such as report.run",
        ));
    }
    let namespace = e.action.split('.').next().unwrap_or_default();
    if RESERVED.contains(&namespace) {
        return Err(refuse(
            "events[].action",
            i,
            format!("{namespace}.* is Gatehouse's own; name the product's verbs in its own terms"),
        ));
    }
    if !identifier(&e.resource_type, 40) {
        return Err(refuse(
            "events[].resource.type",
            i,
            "lower-case letters, digits and underscores, at most 40",
        ));
    }
    if !printable(&e.resource_id, 200) {
        return Err(refuse(
            "events[].resource.id",
            i,
            "1 to 200 characters, no control characters",
        ));
    }
    if e.request_id.as_deref().is_some_and(|r| !printable(r, 128)) {
        return Err(refuse(
            "events[].request_id",
            i,
            "1 to 128 characters, no control characters",
        ));
    }
    if e.user_agent.as_deref().is_some_and(|u| !printable(u, 512)) {
        return Err(refuse(
            "events[].user_agent",
            i,
            "1 to 512 characters, no control characters",
        ));
    }
    let detail = serde_json::to_string(&e.detail).map_err(|e| Error::Internal(e.to_string()))?;
    if detail.len() > MAX_DETAIL_BYTES {
        return Err(refuse(
            "events[].detail",
            i,
            format!("at most {MAX_DETAIL_BYTES} bytes as JSON"),
        ));
    }
    Ok(detail)
}

/// What has been found to belong to the organisation, so each is asked once per call.
#[derive(Default)]
struct Known {
    members: HashSet<Uuid>,
    keys: HashSet<Uuid>,
    resources: HashSet<(String, String)>,
}

impl AuditLog<'_> {
    /// Appends the product's `events` to `org`'s chain, all or none: one that fails a check
    /// refuses the call with its index, and nothing is written. Returns once every event is
    /// committed.
    pub async fn ingest(
        &self,
        call: &ServiceCall,
        org: OrgId,
        events: Vec<ProductEvent>,
    ) -> Result<usize, Error> {
        if events.is_empty() || events.len() > MAX_EVENTS {
            return Err(Error::invalid(
                "events",
                format!("1 to {MAX_EVENTS} per call"),
            ));
        }
        let mut details = Vec::with_capacity(events.len());
        for (i, e) in events.iter().enumerate() {
            details.push(check_shape(i, e)?);
        }
        let mut platform = self.store().begin_read().await?;
        if platform.organization_by_id(org).await?.is_none() {
            return Err(Error::NotFound("organization"));
        }
        drop(platform);
        let scope = TenantScope::granted(org);
        let mut tx = self.store().begin_read_scoped(&scope).await?;
        let mut known = Known::default();
        for (i, e) in events.iter().enumerate() {
            self.check_actor(tx.as_mut(), &mut known, i, e.actor)
                .await?;
            self.check_resource(tx.as_mut(), &mut known, org, i, e)
                .await?;
        }
        drop(tx);
        let n = events.len();
        let batch: Vec<PersonalEvent> = events
            .into_iter()
            .zip(details)
            .map(|(e, detail)| to_event(call, e, &detail))
            .collect::<Result<_, Error>>()?;
        self.audit_batcher().record_all(&scope, batch).await?;
        Ok(n)
    }

    async fn check_actor(
        &self,
        tx: &mut dyn TenantTx,
        known: &mut Known,
        i: usize,
        actor: EventActor,
    ) -> Result<(), Error> {
        let refused = || {
            refuse(
                "events[].actor",
                i,
                "is not a member or an API key of this organisation",
            )
        };
        match actor {
            EventActor::User(u) => {
                if !known.members.contains(&u.as_uuid()) {
                    tx.membership(u).await?.ok_or_else(refused)?;
                    known.members.insert(u.as_uuid());
                }
            }
            EventActor::ApiKey(k) => {
                if !known.keys.contains(&k) {
                    tx.api_key(k).await?.ok_or_else(refused)?;
                    known.keys.insert(k);
                }
            }
        }
        Ok(())
    }

    /// A resource of a kind Gatehouse keeps (a member, key, secret, grant, the organisation, a
    /// record of a declared type) must be this organisation's; the product's other kinds are
    /// its own business.
    async fn check_resource(
        &self,
        tx: &mut dyn TenantTx,
        known: &mut Known,
        org: OrgId,
        i: usize,
        e: &ProductEvent,
    ) -> Result<(), Error> {
        let key = (e.resource_type.clone(), e.resource_id.clone());
        if known.resources.contains(&key) {
            return Ok(());
        }
        let uuid = || e.resource_id.parse::<Uuid>().ok();
        let ours = match e.resource_type.as_str() {
            "organization" => uuid() == Some(org.as_uuid()),
            "user" => match uuid() {
                Some(u) => tx.membership(UserId::from_uuid(u)).await?.is_some(),
                None => false,
            },
            "api_key" => match uuid() {
                Some(k) => tx.api_key(k).await?.is_some(),
                None => false,
            },
            "secret" => match uuid() {
                Some(s) => tx.secret(s).await?.is_some(),
                None => false,
            },
            "grant" => match uuid() {
                Some(g) => tx.grant(g).await?.is_some(),
                None => false,
            },
            kind if self.product().record_type(kind).is_some() => {
                tx.record_by_external(kind, &e.resource_id).await?.is_some()
            }
            _ => true,
        };
        if !ours {
            return Err(refuse(
                "events[].resource",
                i,
                format!(
                    "names no {} of this organisation; an event may name only its own \
                     organisation's resources",
                    e.resource_type
                ),
            ));
        }
        known.resources.insert(key);
        Ok(())
    }
}

fn to_event(call: &ServiceCall, e: ProductEvent, detail: &str) -> Result<PersonalEvent, Error> {
    let (kind, id) = match e.actor {
        EventActor::User(u) => (ActorKind::User, u.as_uuid()),
        EventActor::ApiKey(k) => (ActorKind::ApiKey, k),
    };
    let details = format!(
        "{{\"source\":\"product\",\"service\":{},\"detail\":{detail}}}",
        serde_json::to_string(&*call.service).map_err(|e| Error::Internal(e.to_string()))?
    );
    let mut event = AuditEvent::success(
        Actor {
            kind,
            id: id.to_string(),
            impersonator_id: None,
        },
        &e.action,
        &e.resource_type,
        &e.resource_id,
    )
    .with_details(details)
    .with_request(e.request_id.or_else(|| call.request.request_id.clone()));
    event.outcome = e.outcome;
    let personal = (e.ip.is_some() || e.user_agent.is_some()).then(|| {
        (
            id.to_string(),
            PersonalData {
                ip: e.ip.map(|a| a.to_string()),
                user_agent: e.user_agent,
            },
        )
    });
    Ok((event, personal))
}

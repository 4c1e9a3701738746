//! `POST /internal/v1/audit-events`: the product's own events (E1), appended to an organisation's
//! chain on behalf of its members and keys.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use gatehouse_core::audit::{EventActor, MAX_EVENTS, Outcome, ProductEvent};
use gatehouse_core::{Error, OrgId, UserId};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::ServiceCaller;
use crate::json::ApiJson;
use crate::problem::{ApiError, Problem};
use crate::state::AppState;

/// Who did it: exactly one of the two.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ActorRef {
    /// A member of the organisation.
    user_id: Option<Uuid>,
    /// One of the organisation's API keys.
    api_key_id: Option<Uuid>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResourceRef {
    /// `organization`, `user`, `api_key`, `secret`, `grant` or a declared record type are
    /// checked to be this organisation's (a record by its external id); any other type is the
    /// product's own and taken as given.
    #[serde(rename = "type")]
    #[schema(min_length = 1, max_length = 40)]
    kind: String,
    #[schema(min_length = 1, max_length = 200)]
    id: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct IngestEvent {
    actor: ActorRef,
    /// The product's own dotted verb (`report.run`); Gatehouse's own namespaces (`user.*`,
    /// `record.*`, `secret.*`, ...) are refused.
    #[schema(min_length = 3, max_length = 64)]
    action: String,
    resource: ResourceRef,
    /// `success` (the default), `denied` or `failure`.
    outcome: Option<String>,
    /// A JSON object of at most 4096 bytes.
    #[schema(value_type = Option<Object>)]
    detail: Option<serde_json::Map<String, serde_json::Value>>,
    /// The product's request id; this request's when absent.
    #[schema(max_length = 128)]
    request_id: Option<String>,
    /// The end user's address: stored sealed under the actor's own key, unreadable once that
    /// person is erased.
    ip: Option<String>,
    #[schema(max_length = 512)]
    user_agent: Option<String>,
}

/// One event (`event`) or a batch (`events`), never both.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct IngestRequest {
    organization_id: Uuid,
    event: Option<IngestEvent>,
    /// 1 to 1000 events, appended in this order.
    events: Option<Vec<IngestEvent>>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Ingested {
    /// How many events were appended: all of them, in one transaction (a call is all or
    /// nothing).
    appended: usize,
}

fn convert(i: usize, e: IngestEvent) -> Result<ProductEvent, Error> {
    let actor = match (e.actor.user_id, e.actor.api_key_id) {
        (Some(u), None) => EventActor::User(UserId::from_uuid(u)),
        (None, Some(k)) => EventActor::ApiKey(k),
        _ => {
            return Err(Error::invalid(
                "events[].actor",
                format!("event {i}: exactly one of user_id and api_key_id"),
            ));
        }
    };
    let outcome = match e.outcome.as_deref() {
        None | Some("success") => Outcome::Success,
        Some("denied") => Outcome::Denied,
        Some("failure") => Outcome::Failure,
        Some(_) => {
            return Err(Error::invalid(
                "events[].outcome",
                format!("event {i}: success, denied or failure"),
            ));
        }
    };
    let ip = match e.ip {
        None => None,
        Some(a) => Some(a.parse().map_err(|_| {
            Error::invalid("events[].ip", format!("event {i}: an IPv4 or IPv6 address"))
        })?),
    };
    Ok(ProductEvent {
        actor,
        action: e.action,
        resource_type: e.resource.kind,
        resource_id: e.resource.id,
        outcome,
        detail: e.detail.unwrap_or_default(),
        request_id: e.request_id,
        ip,
        user_agent: e.user_agent,
    })
}

/// Appends the product's own events (what its users and keys did) to an organisation's audit
/// log, answered once they are durable. All or nothing: an event that fails a check refuses
/// the call, naming it by index, and nothing is written.
#[utoipa::path(post, path = "/internal/v1/audit-events", tag = "internal",
    security(("service" = [])),
    request_body = IngestRequest,
    responses(
        (status = 201, description = "Every event is committed to the organisation's chain", body = Ingested),
        (status = 401, description = "No or a wrong service secret", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such organisation", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: a malformed event, a reserved action, or an actor or resource not of this organisation", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn ingest(
    State(state): State<AppState>,
    ServiceCaller(call): ServiceCaller,
    ApiJson(req): ApiJson<IngestRequest>,
) -> Result<(StatusCode, Json<Ingested>), ApiError> {
    let raw = match (req.event, req.events) {
        (Some(e), None) => vec![e],
        (None, Some(es)) if !es.is_empty() && es.len() <= MAX_EVENTS => es,
        _ => {
            return Err(Error::invalid(
                "events",
                format!("either one event or 1 to {MAX_EVENTS} events"),
            )
            .into());
        }
    };
    let events = raw
        .into_iter()
        .enumerate()
        .map(|(i, e)| convert(i, e))
        .collect::<Result<Vec<_>, _>>()?;
    let appended = state
        .kernel
        .audit()
        .ingest(&call, OrgId::from_uuid(req.organization_id), events)
        .await?;
    Ok((StatusCode::CREATED, Json(Ingested { appended })))
}

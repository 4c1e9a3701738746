//! Webhooks (F3): `/v1/webhooks/...` for an organisation's endpoints, their delivery log and
//! replays (`webhooks.manage`), and `POST /internal/v1/events` for the product's own events.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use gatehouse_core::page::PageRequest;
use gatehouse_core::store::{AttemptRow, EndpointRow};
use gatehouse_core::webhooks::{EndpointChange, NewEndpoint, ProductWebhookEvent};
use gatehouse_core::{Error, OrgId};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::auth::{OrgCaller, OrgScoped, ServiceCaller};
use crate::json::{ApiJson, Created};
use crate::problem::{ApiError, Problem};
use crate::routes::organization::PageQuery;
use crate::routes::records::double_option;
use crate::state::AppState;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Endpoint {
    id: Uuid,
    url: String,
    event_types: Vec<String>,
    description: Option<String>,
    enabled: bool,
    /// Why it was disabled (by a member, or after failing every delivery for the disable period).
    disabled_reason: Option<String>,
    /// The secret version that signs now.
    secret_version: u32,
    /// Until when the previous secret signs beside it.
    #[serde(with = "time::serde::rfc3339::option")]
    previous_secret_until: Option<OffsetDateTime>,
    /// The first failure since the last success.
    #[serde(with = "time::serde::rfc3339::option")]
    failing_since: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    updated_at: OffsetDateTime,
}

impl From<EndpointRow> for Endpoint {
    fn from(e: EndpointRow) -> Self {
        Self {
            id: e.id,
            url: e.url,
            event_types: e.event_types,
            description: e.description,
            enabled: e.disabled.is_none(),
            disabled_reason: e.disabled,
            secret_version: e.secret_version,
            previous_secret_until: e.previous_until,
            failing_since: e.failing_since,
            created_at: e.created_at,
            updated_at: e.updated_at,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct EndpointWithSecret {
    /// `whsec_` and the base64 of 32 random bytes, shown this once: the Standard Webhooks
    /// libraries verify with it.
    secret: String,
    #[serde(flatten)]
    endpoint: Endpoint,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateEndpoint {
    /// https:// (http:// only where development allows it), resolving to public addresses only.
    #[schema(max_length = 2048)]
    url: String,
    /// 1 to 50 types from `GET /v1/webhooks/event-types`.
    #[schema(min_items = 1, max_items = 50)]
    event_types: Vec<String>,
    #[schema(max_length = 200)]
    description: Option<String>,
}

const URL_REFUSED: &str = "`validation_failed`: a URL that is not https, carries credentials, or resolves to a loopback, private, link-local, metadata or reserved address; an unknown event type";

/// Makes an endpoint; its signing secret is in the answer only. Needs `webhooks.manage`.
#[utoipa::path(post, path = "/v1/webhooks/endpoints", tag = "webhooks", security(("bearer" = [])),
    params(OrgScoped), request_body = CreateEndpoint,
    responses(
        (status = 201, description = "The endpoint and its secret, shown once", body = EndpointWithSecret),
        (status = 403, description = "`forbidden`: the caller lacks `webhooks.manage`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = URL_REFUSED, body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn create(
    State(state): State<AppState>,
    OrgCaller(call): OrgCaller,
    ApiJson(req): ApiJson<CreateEndpoint>,
) -> Result<Created<EndpointWithSecret>, ApiError> {
    let made = state
        .kernel
        .webhooks()
        .create(
            &call,
            NewEndpoint {
                url: req.url,
                event_types: req.event_types,
                description: req.description,
            },
        )
        .await?;
    Ok(Created(EndpointWithSecret {
        secret: made.secret.expose().to_owned(),
        endpoint: made.endpoint.into(),
    }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct EndpointPage {
    items: Vec<Endpoint>,
    next_cursor: Option<String>,
}

/// The organisation's endpoints, newest first (never their secrets).
#[utoipa::path(get, path = "/v1/webhooks/endpoints", tag = "webhooks", security(("bearer" = [])),
    params(OrgScoped, PageQuery),
    responses(
        (status = 200, description = "A page of endpoints", body = EndpointPage),
        (status = 403, description = "`forbidden`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: a bad cursor or limit", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list(
    State(state): State<AppState>,
    OrgCaller(call): OrgCaller,
    Query(q): Query<PageQuery>,
) -> Result<Json<EndpointPage>, ApiError> {
    let page = PageRequest::parse(q.cursor.as_deref(), q.limit)?;
    let found = state.kernel.webhooks().list(&call, page).await?;
    Ok(Json(EndpointPage {
        items: found.items.into_iter().map(Endpoint::from).collect(),
        next_cursor: found.next_cursor,
    }))
}

#[utoipa::path(get, path = "/v1/webhooks/endpoints/{id}", tag = "webhooks", security(("bearer" = [])),
    params(OrgScoped, ("id" = Uuid, Path, description = "The endpoint")),
    responses(
        (status = 200, description = "The endpoint", body = Endpoint),
        (status = 404, description = "No such endpoint", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn get(
    State(state): State<AppState>,
    OrgCaller(call): OrgCaller,
    Path(id): Path<Uuid>,
) -> Result<Json<Endpoint>, ApiError> {
    Ok(Json(state.kernel.webhooks().get(&call, id).await?.into()))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateEndpoint {
    #[schema(max_length = 2048)]
    url: Option<String>,
    #[schema(min_items = 1, max_items = 50)]
    event_types: Option<Vec<String>>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "double_option::deserialize")]
    #[schema(value_type = Option<String>, max_length = 200)]
    description: Option<Option<String>>,
    /// `true` enables a disabled endpoint (its failure streak starts over); `false` disables it
    /// and gives up its pending deliveries.
    enabled: Option<bool>,
}

/// Changes an endpoint. Fields left out stay as they are.
#[utoipa::path(patch, path = "/v1/webhooks/endpoints/{id}", tag = "webhooks", security(("bearer" = [])),
    params(OrgScoped, ("id" = Uuid, Path, description = "The endpoint")), request_body = UpdateEndpoint,
    responses(
        (status = 200, description = "The endpoint", body = Endpoint),
        (status = 404, description = "No such endpoint", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = URL_REFUSED, body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn update(
    State(state): State<AppState>,
    OrgCaller(call): OrgCaller,
    Path(id): Path<Uuid>,
    ApiJson(req): ApiJson<UpdateEndpoint>,
) -> Result<Json<Endpoint>, ApiError> {
    let e = state
        .kernel
        .webhooks()
        .update(
            &call,
            id,
            EndpointChange {
                url: req.url,
                event_types: req.event_types,
                description: req.description,
                enabled: req.enabled,
            },
        )
        .await?;
    Ok(Json(e.into()))
}

/// Deletes an endpoint with its secrets, pending deliveries and delivery log.
#[utoipa::path(delete, path = "/v1/webhooks/endpoints/{id}", tag = "webhooks", security(("bearer" = [])),
    params(OrgScoped, ("id" = Uuid, Path, description = "The endpoint")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such endpoint", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn delete(
    State(state): State<AppState>,
    OrgCaller(call): OrgCaller,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    state.kernel.webhooks().delete(&call, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RotateSecret {
    /// How long the old secret keeps signing beside the new one (0 to 604800; default 86400).
    #[schema(minimum = 0, maximum = 604_800)]
    overlap_seconds: Option<i64>,
}

/// Makes a new signing secret, shown once; the old one signs beside it for the overlap.
#[utoipa::path(post, path = "/v1/webhooks/endpoints/{id}/rotate-secret", tag = "webhooks", security(("bearer" = [])),
    params(OrgScoped, ("id" = Uuid, Path, description = "The endpoint")), request_body = RotateSecret,
    responses(
        (status = 200, description = "The endpoint and its new secret, shown once", body = EndpointWithSecret),
        (status = 404, description = "No such endpoint", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: an overlap out of range", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn rotate_secret(
    State(state): State<AppState>,
    OrgCaller(call): OrgCaller,
    Path(id): Path<Uuid>,
    ApiJson(req): ApiJson<RotateSecret>,
) -> Result<Json<EndpointWithSecret>, ApiError> {
    let overlap = time::Duration::seconds(req.overlap_seconds.unwrap_or(86_400));
    let r = state
        .kernel
        .webhooks()
        .rotate_secret(&call, id, overlap)
        .await?;
    Ok(Json(EndpointWithSecret {
        secret: r.secret.expose().to_owned(),
        endpoint: r.endpoint.into(),
    }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Attempt {
    id: Uuid,
    delivery_id: Uuid,
    /// The event's `webhook-id`.
    message_id: String,
    attempt: u32,
    #[serde(with = "time::serde::rfc3339")]
    at: OffsetDateTime,
    /// The receiver's status, when it answered.
    status: Option<u16>,
    latency_ms: u32,
    /// Why no answer came (a refused destination, a timeout, a failed connection).
    error: Option<String>,
    /// The first 512 bytes of the receiver's answer.
    response: String,
}

impl From<AttemptRow> for Attempt {
    fn from(a: AttemptRow) -> Self {
        Self {
            id: a.id,
            delivery_id: a.delivery_id,
            message_id: gatehouse_core::webhooks::message_id(a.message_id),
            attempt: a.attempt,
            at: a.at,
            status: a.status,
            latency_ms: a.latency_ms,
            error: a.error,
            response: a.response,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct AttemptPage {
    items: Vec<Attempt>,
    next_cursor: Option<String>,
}

/// The endpoint's delivery log: every attempt, newest first.
#[utoipa::path(get, path = "/v1/webhooks/endpoints/{id}/attempts", tag = "webhooks", security(("bearer" = [])),
    params(OrgScoped, ("id" = Uuid, Path, description = "The endpoint"), PageQuery),
    responses(
        (status = 200, description = "A page of attempts", body = AttemptPage),
        (status = 404, description = "No such endpoint", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: a bad cursor or limit", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn attempts(
    State(state): State<AppState>,
    OrgCaller(call): OrgCaller,
    Path(id): Path<Uuid>,
    Query(q): Query<PageQuery>,
) -> Result<Json<AttemptPage>, ApiError> {
    let page = PageRequest::parse(q.cursor.as_deref(), q.limit)?;
    let found = state.kernel.webhooks().attempts(&call, id, page).await?;
    Ok(Json(AttemptPage {
        items: found.items.into_iter().map(Attempt::from).collect(),
        next_cursor: found.next_cursor,
    }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Replayed {
    /// The new delivery, due now.
    delivery_id: Uuid,
}

/// Sends a delivery's event to the endpoint again, now (the same `webhook-id`).
#[utoipa::path(post, path = "/v1/webhooks/endpoints/{id}/deliveries/{delivery_id}/replay", tag = "webhooks", security(("bearer" = [])),
    params(OrgScoped, ("id" = Uuid, Path, description = "The endpoint"), ("delivery_id" = Uuid, Path, description = "The delivery")),
    responses(
        (status = 202, description = "Queued again", body = Replayed),
        (status = 404, description = "No such endpoint or delivery", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`conflict`: the endpoint is disabled", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn replay(
    State(state): State<AppState>,
    OrgCaller(call): OrgCaller,
    Path((id, delivery)): Path<(Uuid, Uuid)>,
) -> Result<(StatusCode, Json<Replayed>), ApiError> {
    let d = state.kernel.webhooks().replay(&call, id, delivery).await?;
    Ok((StatusCode::ACCEPTED, Json(Replayed { delivery_id: d.id })))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct EventTypes {
    /// Raised by Gatehouse itself.
    gatehouse: Vec<&'static str>,
    /// Declared by the product (`webhooks.product_event_types`), sent through
    /// `POST /internal/v1/events`.
    product: Vec<String>,
}

/// The event types an endpoint may subscribe to.
#[utoipa::path(get, path = "/v1/webhooks/event-types", tag = "webhooks", security(("bearer" = [])),
    params(OrgScoped),
    responses((status = 200, description = "Every event type", body = EventTypes)))]
pub(crate) async fn event_types(
    State(state): State<AppState>,
    OrgCaller(_call): OrgCaller,
) -> Json<EventTypes> {
    Json(EventTypes {
        gatehouse: gatehouse_core::webhooks::gatehouse_types().collect(),
        product: state.kernel.webhooks().product_types().to_vec(),
    })
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProductEvent {
    /// A declared product event type.
    #[serde(rename = "type")]
    #[schema(max_length = 64)]
    kind: String,
    /// Any JSON object; the event's body is at most 64 KiB.
    #[schema(value_type = Object)]
    data: serde_json::Value,
}

/// One event (`event`) or a batch (`events`), never both.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PublishEvents {
    organization_id: Uuid,
    event: Option<ProductEvent>,
    /// 1 to 1000 events, queued all or none.
    #[schema(max_items = 1000)]
    events: Option<Vec<ProductEvent>>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Published {
    /// Events accepted.
    accepted: usize,
    /// Deliveries queued (one per subscribed endpoint and event).
    deliveries: usize,
}

/// Queues the product's own events for the organisation's subscribed endpoints.
#[utoipa::path(post, path = "/internal/v1/events", tag = "internal", security(("service" = [])),
    request_body = PublishEvents,
    responses(
        (status = 202, description = "Queued", body = Published),
        (status = 404, description = "No such organisation", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: an undeclared type, data that is not an object or too large, neither or both of `event` and `events`, more than 1000 events", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn publish(
    State(state): State<AppState>,
    ServiceCaller(call): ServiceCaller,
    ApiJson(req): ApiJson<PublishEvents>,
) -> Result<(StatusCode, Json<Published>), ApiError> {
    let events = match (req.event, req.events) {
        (Some(e), None) => vec![e],
        (None, Some(es)) => es,
        _ => return Err(Error::invalid("events", "give either event or events").into()),
    };
    let events = events
        .into_iter()
        .map(|e| ProductWebhookEvent {
            event_type: e.kind,
            data: e.data,
        })
        .collect();
    let (accepted, deliveries) = state
        .kernel
        .webhooks()
        .publish(&call, OrgId::from_uuid(req.organization_id), events)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Published {
            accepted,
            deliveries,
        }),
    ))
}

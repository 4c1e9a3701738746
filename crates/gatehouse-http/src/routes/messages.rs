//! `POST /internal/v1/messages` (F2): the product's own mail, through Gatehouse's outbox, so the
//! organisation's opt-out list applies to it and every message carries one-click unsubscribe.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use gatehouse_core::mail::{ProductBody, ProductMessage, Queued};
use gatehouse_core::{Error, OrgId};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::ServiceCaller;
use crate::json::ApiJson;
use crate::problem::{ApiError, Problem};
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SendMessage {
    organization_id: Uuid,
    /// One address.
    #[schema(max_length = 254)]
    to: String,
    /// The list the recipient may leave: 1 to 64 of `a-z`, `0-9`, `.`, `_`, `-`.
    #[schema(pattern = "^[a-z0-9._-]{1,64}$")]
    list: String,
    /// Raw bodies: `subject` and `text` (and optionally `html`)...
    #[schema(max_length = 200)]
    subject: Option<String>,
    #[schema(max_length = 102_400)]
    text: Option<String>,
    #[schema(max_length = 204_800)]
    html: Option<String>,
    /// ...or a template from `[[mail.templates]]` with its `variables`.
    #[schema(max_length = 64)]
    template: Option<String>,
    #[serde(default)]
    variables: BTreeMap<String, String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct SentMessage {
    /// The queued message (absent when suppressed).
    id: Option<Uuid>,
    /// `queued`, or `suppressed` when the recipient had opted out of the list (nothing queued).
    status: &'static str,
}

/// Queues one message of the product's. Delivery consults the opt-out list again just before
/// sending.
#[utoipa::path(post, path = "/internal/v1/messages", tag = "internal", security(("service" = [])),
    request_body = SendMessage,
    responses(
        (status = 202, description = "Queued, or suppressed by the opt-out list", body = SentMessage),
        (status = 404, description = "No such organisation", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: a bad address or list, raw bodies and a template together or neither, an unknown template or a missing variable, oversized bodies", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn send(
    State(state): State<AppState>,
    ServiceCaller(call): ServiceCaller,
    ApiJson(req): ApiJson<SendMessage>,
) -> Result<(StatusCode, Json<SentMessage>), ApiError> {
    let body = match (req.template, req.subject, req.text) {
        (Some(name), None, None) if req.html.is_none() => ProductBody::Template {
            name,
            variables: req.variables,
        },
        (None, Some(subject), Some(text)) if req.variables.is_empty() => ProductBody::Raw {
            subject,
            text,
            html: req.html,
        },
        _ => {
            return Err(Error::invalid(
                "template",
                "give either subject and text (and optionally html), or template and variables",
            )
            .into());
        }
    };
    let queued = state
        .kernel
        .send_product_mail(
            &call,
            ProductMessage {
                org: OrgId::from_uuid(req.organization_id),
                to: req.to,
                list: req.list,
                body,
            },
        )
        .await?;
    let (id, status) = match queued {
        Queued::Queued(id) => (Some(id), "queued"),
        Queued::Suppressed => (None, "suppressed"),
    };
    Ok((StatusCode::ACCEPTED, Json(SentMessage { id, status })))
}

//! Reading the audit log: the organisation's chain (`audit.read`), its NDJSON export, and the
//! operators' trail on the operator API.

use axum::Json;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use gatehouse_core::audit::{AuditFilter, AuditReader, AuditView, Outcome};
use gatehouse_core::{Error, PageRequest};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::auth::{OperatorCaller, OrgCaller, OrgScoped};
use crate::problem::{ApiError, Problem};
use crate::routes::organization::PageQuery;
use crate::state::AppState;

/// The filters; the listings also take a page (`PageQuery`), the export reads every page.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditQuery {
    /// Actor id (a user, operator, key or service id).
    actor: Option<String>,
    /// Action prefix: `member.` matches `member.added` and `member.role_changed`.
    action: Option<String>,
    resource_type: Option<String>,
    resource_id: Option<String>,
    /// `success`, `denied` or `failure`.
    #[param(value_type = Option<AuditOutcome>, inline)]
    outcome: Option<String>,
    /// RFC 3339, inclusive.
    #[param(format = DateTime)]
    since: Option<String>,
    /// RFC 3339, exclusive.
    #[param(format = DateTime)]
    until: Option<String>,
}

/// The outcomes an audit event records, as the `outcome` filter takes them.
#[derive(Debug, utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // for the document: the filter is parsed from the query's text
pub(crate) enum AuditOutcome {
    Success,
    Denied,
    Failure,
}

fn time_param(field: &'static str, v: Option<&str>) -> Result<Option<OffsetDateTime>, Error> {
    v.map(|t| {
        OffsetDateTime::parse(t, &Rfc3339)
            .map_err(|_| Error::invalid(field, "must be an RFC 3339 time"))
    })
    .transpose()
}

impl AuditQuery {
    fn filter(&self) -> Result<AuditFilter, Error> {
        Ok(AuditFilter {
            actor_id: self.actor.clone(),
            action_prefix: self.action.clone(),
            resource_type: self.resource_type.clone(),
            resource_id: self.resource_id.clone(),
            outcome: match self.outcome.as_deref() {
                None => None,
                Some("success") => Some(Outcome::Success),
                Some("denied") => Some(Outcome::Denied),
                Some("failure") => Some(Outcome::Failure),
                Some(_) => {
                    return Err(Error::invalid(
                        "outcome",
                        "must be success, denied or failure",
                    ));
                }
            },
            since: time_param("since", self.since.as_deref())?,
            until: time_param("until", self.until.as_deref())?,
        })
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct AuditActor {
    #[serde(rename = "type")]
    kind: String,
    id: String,
    /// The operator acting through an impersonation.
    impersonator_id: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct AuditResource {
    #[serde(rename = "type")]
    kind: String,
    id: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct AuditEventBody {
    id: Uuid,
    /// Position in the chain.
    seq: u64,
    #[serde(with = "time::serde::rfc3339")]
    at: OffsetDateTime,
    actor: AuditActor,
    action: String,
    resource: AuditResource,
    outcome: String,
    request_id: Option<String>,
    /// Personal data; null once the data subject has been erased.
    ip: Option<String>,
    user_agent: Option<String>,
    #[schema(value_type = Object)]
    details: serde_json::Value,
    /// The chain hash, hex.
    hash: String,
}

fn body(v: AuditView) -> AuditEventBody {
    let r = v.record;
    let personal = v.personal.unwrap_or_default();
    AuditEventBody {
        id: r.id,
        seq: r.seq,
        at: r.at,
        actor: AuditActor {
            kind: r.actor_kind,
            id: r.actor_id,
            impersonator_id: r.impersonator_id,
        },
        action: r.action,
        resource: AuditResource {
            kind: r.resource_type,
            id: r.resource_id,
        },
        outcome: r.outcome,
        request_id: r.request_id,
        ip: personal.ip,
        user_agent: personal.user_agent,
        details: serde_json::from_str(&r.details).unwrap_or(serde_json::Value::Null),
        hash: r.hash.iter().map(|b| format!("{b:02x}")).collect(),
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct AuditPage {
    items: Vec<AuditEventBody>,
    next_cursor: Option<String>,
}

async fn page(
    state: &AppState,
    reader: &AuditReader,
    q: &AuditQuery,
    p: &PageQuery,
) -> Result<Json<AuditPage>, ApiError> {
    let filter = q.filter()?;
    let page = PageRequest::parse(p.cursor.as_deref(), p.limit)?;
    let found = state.kernel.audit().page(reader, &filter, page).await?;
    Ok(Json(AuditPage {
        items: found.items.into_iter().map(body).collect(),
        next_cursor: found.next_cursor,
    }))
}

/// The organisation's audit events, newest first. Needs `audit.read`.
#[utoipa::path(get, path = "/v1/audit-logs", tag = "audit", security(("bearer" = [])),
    params(OrgScoped, AuditQuery, PageQuery),
    responses(
        (status = 200, description = "A page of events", body = AuditPage),
        (status = 403, description = "`forbidden`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: `outcome`, `since` or `until` is malformed, or `cursor` is not one this server issued, or `limit` is not 1 to 200", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list(
    State(state): State<AppState>,
    OrgCaller(call): OrgCaller,
    Query(q): Query<AuditQuery>,
    Query(p): Query<PageQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    let reader = state.kernel.audit().reader(&call).await?;
    page(&state, &reader, &q, &p).await
}

const EXPORT_PAGE: u32 = 200;

/// Every matching event as NDJSON (one JSON object per line), newest first, streamed. Needs
/// `audit.read`. The export is itself recorded (`audit.exported`, with its filter) before it
/// starts.
#[utoipa::path(get, path = "/v1/audit-logs/export", tag = "audit", security(("bearer" = [])),
    params(OrgScoped, AuditQuery),
    responses(
        (status = 200, description = "NDJSON stream of events", content_type = "application/x-ndjson", body = AuditEventBody),
        (status = 403, description = "`forbidden`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: `outcome`, `since` or `until` is malformed", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn export(
    State(state): State<AppState>,
    OrgCaller(call): OrgCaller,
    Query(q): Query<AuditQuery>,
) -> Result<Response, ApiError> {
    let filter = q.filter()?;
    let reader = state.kernel.audit().export_reader(&call, &filter).await?;
    let first = PageRequest::parse(None, Some(EXPORT_PAGE))?;
    let stream = futures_util::stream::unfold(Some(first), move |next| {
        let state = state.clone();
        let reader = reader.clone();
        let filter = filter.clone();
        async move {
            let request = next?;
            match state.kernel.audit().page(&reader, &filter, request).await {
                Ok(found) => {
                    let mut chunk = Vec::new();
                    for v in found.items {
                        if serde_json::to_writer(&mut chunk, &body(v)).is_ok() {
                            chunk.push(b'\n');
                        }
                    }
                    let following = found
                        .next_cursor
                        .and_then(|c| PageRequest::parse(Some(&c), Some(EXPORT_PAGE)).ok());
                    Some((Ok::<_, std::io::Error>(chunk), following))
                }
                Err(e) => {
                    // Headers are sent: end the stream with an error so the client sees a
                    // truncated transfer rather than a silently short export.
                    tracing::error!(error = %e, "audit export failed part-way");
                    Some((Err(std::io::Error::other("audit export failed")), None))
                }
            }
        }
    });
    let mut res = Body::from_stream(stream).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    Ok(res)
}

/// The operators' trail (platform events, operator sign-ins, impersonations), newest first.
#[utoipa::path(get, path = "/admin/v1/audit-logs", tag = "admin", security(("bearer" = [])),
    params(AuditQuery, PageQuery),
    responses(
        (status = 200, description = "A page of events", body = AuditPage),
        (status = 403, description = "Not an operator token", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: `outcome`, `since` or `until` is malformed, or `cursor` is not one this server issued, or `limit` is not 1 to 200", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn operator_list(
    State(state): State<AppState>,
    OperatorCaller(call): OperatorCaller,
    Query(q): Query<AuditQuery>,
    Query(p): Query<PageQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    let reader = state.kernel.audit().operator_reader(&call)?;
    page(&state, &reader, &q, &p).await
}

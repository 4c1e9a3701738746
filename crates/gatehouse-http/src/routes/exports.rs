//! Exports (G1): `GET /v1/me/export` for oneself, `POST /v1/exports` for an organisation or one
//! of its members. Both stream NDJSON (docs/API.md, "Exports"): a header line on the first page,
//! one line per stored row, and a last line carrying the cursor to resume from.

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use gatehouse_core::data_rights::{Export, Position};
use gatehouse_core::{Error, UserId};
use serde::Deserialize;
use uuid::Uuid;

use crate::auth::{Caller, OrgCaller, OrgScoped};
use crate::json::ApiJson;
use crate::problem::{ApiError, Problem};
use crate::state::AppState;

const DEFAULT_LINES: u32 = 10_000;
const MAX_LINES: u32 = 100_000;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ExportQuery {
    /// The `next_cursor` of the previous page's last line; absent for the first page.
    cursor: Option<String>,
    /// Lines per page (1 to 100000, default 10000): a page ends at the first store page past it.
    limit: Option<u32>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExportRequest {
    /// A member to export; absent for the whole organisation.
    user_id: Option<Uuid>,
    /// The `next_cursor` of the previous page's last line; absent for the first page.
    cursor: Option<String>,
    /// Lines per page (1 to 100000, default 10000).
    limit: Option<u32>,
}

fn start(cursor: Option<&str>, limit: Option<u32>) -> Result<(Position, u32), Error> {
    let at = match cursor.filter(|c| !c.is_empty()) {
        Some(c) => Position::decode(c)?,
        None => Position::default(),
    };
    let limit = limit.unwrap_or(DEFAULT_LINES);
    if !(1..=MAX_LINES).contains(&limit) {
        return Err(Error::invalid("limit", format!("1 to {MAX_LINES}")));
    }
    Ok((at, limit))
}

/// Streams one page of `export` from `at`: the header when it starts, then chunks until about
/// `limit` lines, then `{"type":"page_end","next_cursor":...}` (null at the end).
fn stream(state: AppState, export: Export, at: Position, limit: u32) -> Response {
    let header_line = at
        .is_start()
        .then(|| state.kernel.data_rights().header(&export));
    let first = header_line.map(|h| {
        let mut line = serde_json::to_vec(&h).unwrap_or_default();
        line.push(b'\n');
        line
    });
    let body = futures_util::stream::unfold((Some(at), 0u32, false), move |(at, sent, done)| {
        let state = state.clone();
        let export = export.clone();
        async move {
            if done {
                return None;
            }
            let Some(pos) = at.clone().filter(|_| sent < limit) else {
                let end = serde_json::json!({"type": "page_end",
                                                 "next_cursor": at.map(|p| p.encode())});
                let mut line = serde_json::to_vec(&end).unwrap_or_default();
                line.push(b'\n');
                return Some((Ok::<_, std::io::Error>(line), (None, sent, true)));
            };
            match state.kernel.data_rights().chunk(&export, &pos).await {
                Ok((lines, next)) => {
                    let mut out = Vec::new();
                    for l in &lines {
                        if serde_json::to_writer(&mut out, l).is_ok() {
                            out.push(b'\n');
                        }
                    }
                    let n = u32::try_from(lines.len()).unwrap_or(u32::MAX);
                    Some((Ok(out), (next, sent.saturating_add(n), false)))
                }
                Err(e) => {
                    // Headers are sent: cut the transfer so the client sees it incomplete
                    // rather than a short export that looks whole.
                    tracing::error!(error = %e, "an export failed part-way");
                    Some((
                        Err(std::io::Error::other("export failed")),
                        (None, sent, true),
                    ))
                }
            }
        }
    });
    let head = futures_util::stream::iter(first.map(Ok::<_, std::io::Error>));
    let mut res = Body::from_stream(futures_util::StreamExt::chain(head, body)).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    res
}

/// Everything Gatehouse stores about the caller, in every organisation they belong to: account,
/// memberships, sessions and devices, factors (metadata only), mail, API keys they created,
/// records they own and audit events that name them. NDJSON, paged by cursor; needs the
/// step-up of `data.export`, in the person's own session. Every page is recorded.
#[utoipa::path(get, path = "/v1/me/export", tag = "me", security(("bearer" = [])),
    params(ExportQuery),
    responses(
        (status = 200, description = "One page of the NDJSON export", content_type = "application/x-ndjson", body = Object),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`step_up_required` (no recent second factor or password check), or `wrong_audience` (an impersonation or an API key). A session an organisation's single sign-on began exports only the person's data in that organisation", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: a malformed cursor, or a limit out of range", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn mine(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ExportQuery>,
) -> Result<Response, ApiError> {
    let (at, limit) = start(q.cursor.as_deref(), q.limit)?;
    let export = state
        .kernel
        .data_rights()
        .export_self(&caller.call, !at.is_start())
        .await?;
    Ok(stream(state, export, at, limit))
}

/// The organisation's data, or one member's data in it (`data.export`, with step-up). NDJSON,
/// paged by cursor; each page is authorised again.
#[utoipa::path(post, path = "/v1/exports", tag = "organization", security(("bearer" = [])),
    params(OrgScoped),
    request_body = ExportRequest,
    responses(
        (status = 200, description = "One page of the NDJSON export", content_type = "application/x-ndjson", body = Object),
        (status = 403, description = "`forbidden` or `step_up_required`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: the user is not a member of this organisation", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn organization(
    State(state): State<AppState>,
    OrgCaller(call): OrgCaller,
    ApiJson(req): ApiJson<ExportRequest>,
) -> Result<Response, ApiError> {
    let (at, limit) = start(req.cursor.as_deref(), req.limit)?;
    let export = state
        .kernel
        .data_rights()
        .export_for(&call, req.user_id.map(UserId::from_uuid), !at.is_start())
        .await?;
    Ok(stream(state, export, at, limit))
}

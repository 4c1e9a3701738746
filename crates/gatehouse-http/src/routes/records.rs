//! The product's records (C3) under `/v1/records`: typed, owned, private, organisation-wide or
//! public, with sealed JSON content.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use gatehouse_core::product::{NewRecord, RecordChange, RecordFilter, RecordView};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::auth::{OrgCaller, OrgScoped};
use crate::json::{ApiJson, Created};
use crate::problem::{ApiError, Problem};
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateRecord {
    /// A record type declared in `[[product.record_types]]`.
    #[serde(rename = "type")]
    #[schema(min_length = 1, max_length = 40)]
    kind: String,
    /// The product's own id for it: unique per organisation and type.
    #[schema(min_length = 1, max_length = 200)]
    external_id: String,
    #[schema(min_length = 1, max_length = 100)]
    namespace: Option<String>,
    /// `private` (the owner and `allowed`), `organization` (members holding the type's read
    /// permission) or `public` (anyone).
    #[schema(pattern = "^(private|organization|public)$")]
    level: String,
    /// Who besides the owner reads a private record: `user:{uuid}` or `key:{uuid}`, at most 100.
    #[serde(default)]
    #[schema(max_items = 100)]
    allowed: Vec<String>,
    /// At most 20, each 1 to 50 of `a-z`, `0-9`, `_`, `-`, `.`, `:`.
    #[serde(default)]
    #[schema(max_items = 20)]
    tags: Vec<String>,
    /// Any JSON, at most 64 KiB serialised; sealed with the organisation's data key.
    content: Option<serde_json::Value>,
    /// The first instant the record is gone (404 everywhere, left out of listings and checks).
    #[serde(default, with = "time::serde::rfc3339::option")]
    expires_at: Option<OffsetDateTime>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Record {
    id: Uuid,
    /// The organisation that owns it: the caller's, or another whose grant let it read it.
    organization: Uuid,
    #[serde(rename = "type")]
    kind: String,
    external_id: String,
    namespace: Option<String>,
    /// `user:{uuid}` or `key:{uuid}`.
    owner: String,
    level: &'static str,
    allowed: Vec<String>,
    tags: Vec<String>,
    /// Present on a single read (and on create and update); listings leave it out.
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<serde_json::Value>,
    /// What let the caller read it: `owner`, `level:public`, `level:organization`,
    /// `allowed_list`, or `grant:{id}` for another organisation's record.
    via: String,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    updated_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    expires_at: Option<OffsetDateTime>,
}

impl From<RecordView> for Record {
    fn from(v: RecordView) -> Self {
        Self {
            id: v.row.id,
            organization: v.row.org_id.as_uuid(),
            kind: v.row.kind,
            external_id: v.row.external_id,
            namespace: v.row.namespace,
            owner: v.row.owner,
            level: v.row.level.as_str(),
            allowed: v.row.allowed,
            tags: v.row.tags,
            content: v.content,
            via: v.via,
            created_at: v.row.created_at,
            updated_at: v.row.updated_at,
            expires_at: v.row.expires_at,
        }
    }
}

/// Creates a record owned by the caller (a person, or an API key acting as an agent). Needs the
/// type's write permission.
#[utoipa::path(post, path = "/v1/records", tag = "records", security(("bearer" = [])),
    params(OrgScoped), request_body = CreateRecord,
    responses(
        (status = 201, description = "Created", body = Record),
        (status = 403, description = "`forbidden`: the caller lacks the type's write permission", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`conflict`: a record of the type with the external id exists and has not expired", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: unknown type or level, a bad allowed entry or tag, oversized content, an expiry in the past", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn create(
    State(state): State<AppState>,
    OrgCaller(call): OrgCaller,
    ApiJson(req): ApiJson<CreateRecord>,
) -> Result<Created<Record>, ApiError> {
    let view = state
        .kernel
        .records()
        .create(
            &call,
            NewRecord {
                kind: req.kind,
                external_id: req.external_id,
                namespace: req.namespace,
                level: req.level,
                allowed: req.allowed,
                tags: req.tags,
                content: req.content,
                expires_at: req.expires_at,
            },
        )
        .await?;
    Ok(Created(view.into()))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    /// Only this type.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    kind: Option<String>,
    namespace: Option<String>,
    /// Only records carrying this tag.
    tag: Option<String>,
    /// Only records of this owner: `user:{uuid}` or `key:{uuid}`.
    owner: Option<String>,
    /// Also other organisations' records that live grants let the caller read (C4), always
    /// after every record of its own.
    #[serde(default)]
    include_granted: bool,
    /// From the previous page's `next_cursor`.
    cursor: Option<String>,
    /// 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct RecordList {
    items: Vec<Record>,
    next_cursor: Option<String>,
}

/// The records the caller may read, without their content: its own, public ones,
/// organisation-wide ones of the types it may read, and private ones that list it, newest first;
/// then, with `include_granted=true`, other organisations' records that live grants let it read,
/// newest first (each with `via: grant:{id}` and its `organization`).
#[utoipa::path(get, path = "/v1/records", tag = "records", security(("bearer" = [])),
    params(OrgScoped, ListQuery),
    responses(
        (status = 200, description = "A page of records", body = RecordList),
        (status = 422, description = "`validation_failed`: a bad cursor, limit or owner", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list(
    State(state): State<AppState>,
    OrgCaller(call): OrgCaller,
    Query(q): Query<ListQuery>,
) -> Result<Json<RecordList>, ApiError> {
    let filter = RecordFilter {
        kind: q.kind,
        namespace: q.namespace,
        tag: q.tag,
        owner: q.owner,
        include_granted: q.include_granted,
    };
    let page = state
        .kernel
        .records()
        .list(&call, filter, q.cursor.as_deref(), q.limit)
        .await?;
    Ok(Json(RecordList {
        items: page.items.into_iter().map(Record::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// One record with its content. A record the caller may not read is 404, as one that does not
/// exist (the refusal is recorded as `record.read_denied`).
#[utoipa::path(get, path = "/v1/records/{id}", tag = "records", security(("bearer" = [])),
    params(OrgScoped, ("id" = Uuid, Path, description = "Record id")),
    responses(
        (status = 200, description = "The record", body = Record),
        (status = 404, description = "No such record the caller may read", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn get(
    State(state): State<AppState>,
    OrgCaller(call): OrgCaller,
    Path(id): Path<Uuid>,
) -> Result<Json<Record>, ApiError> {
    Ok(Json(state.kernel.records().get(&call, id).await?.into()))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateRecord {
    /// `null` clears it.
    #[serde(default, deserialize_with = "double_option::deserialize")]
    #[schema(value_type = Option<String>)]
    namespace: Option<Option<String>>,
    #[schema(pattern = "^(private|organization|public)$")]
    level: Option<String>,
    #[schema(max_items = 100)]
    allowed: Option<Vec<String>>,
    #[schema(max_items = 20)]
    tags: Option<Vec<String>>,
    /// `null` removes the content.
    #[serde(default, deserialize_with = "double_option::deserialize")]
    #[schema(value_type = Option<Object>)]
    content: Option<Option<serde_json::Value>>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "double_option_time::deserialize")]
    #[schema(value_type = Option<String>, format = DateTime)]
    expires_at: Option<Option<OffsetDateTime>>,
}

/// Changes a record: its owner may, and for a record that is not private, a holder of the type's
/// write permission. Fields left out stay as they are.
#[utoipa::path(patch, path = "/v1/records/{id}", tag = "records", security(("bearer" = [])),
    params(OrgScoped, ("id" = Uuid, Path, description = "Record id")), request_body = UpdateRecord,
    responses(
        (status = 200, description = "The changed record", body = Record),
        (status = 403, description = "`forbidden`: readable but not writable by the caller", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such record the caller may read", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn update(
    State(state): State<AppState>,
    OrgCaller(call): OrgCaller,
    Path(id): Path<Uuid>,
    ApiJson(req): ApiJson<UpdateRecord>,
) -> Result<Json<Record>, ApiError> {
    let view = state
        .kernel
        .records()
        .update(
            &call,
            id,
            RecordChange {
                namespace: req.namespace,
                level: req.level,
                allowed: req.allowed,
                tags: req.tags,
                content: req.content,
                expires_at: req.expires_at,
            },
        )
        .await?;
    Ok(Json(view.into()))
}

/// Deletes a record and its sealed content (the caller may write it).
#[utoipa::path(delete, path = "/v1/records/{id}", tag = "records", security(("bearer" = [])),
    params(OrgScoped, ("id" = Uuid, Path, description = "Record id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "`forbidden`: readable but not writable by the caller", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such record the caller may read", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn delete(
    State(state): State<AppState>,
    OrgCaller(call): OrgCaller,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    state.kernel.records().delete(&call, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `Option<Option<T>>` from JSON: absent (`None`, by `default`), `null` (`Some(None)`) or a value.
pub(crate) mod double_option {
    use serde::{Deserialize, Deserializer};

    pub(crate) fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}

/// `Option<Option<OffsetDateTime>>` from JSON: absent, `null`, or an RFC 3339 time.
mod double_option_time {
    use serde::{Deserialize, Deserializer};
    use time::OffsetDateTime;

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<OffsetDateTime>>, D::Error> {
        let v: Option<String> = Option::deserialize(d)?;
        match v {
            None => Ok(Some(None)),
            Some(s) => OffsetDateTime::parse(&s, &time::format_description::well_known::Rfc3339)
                .map(|t| Some(Some(t)))
                .map_err(serde::de::Error::custom),
        }
    }
}

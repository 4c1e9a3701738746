//! Erasure (G2): `POST /v1/me/erase` (oneself), `POST /v1/erasures` (a member's data or
//! records, `data.delete`), `DELETE /v1/organization` (the owner, the whole organisation).
//! Hard deletion, never soft; docs/API.md, "Erasure".

use axum::Json;
use axum::extract::State;
use gatehouse_core::data_rights::{OrganizationErasure, RecordSelection, UserErasure};
use gatehouse_core::{Error, UserId};
use gatehouse_crypto::SecretString;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::auth::{Caller, OrgCaller, OrgScoped};
use crate::json::ApiJson;
use crate::problem::{ApiError, Problem};
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EraseMe {
    /// The account's password, checked now (and a recent second factor when enrolled).
    #[schema(value_type = String, format = Password)]
    password: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct UserErased {
    user: Uuid,
    dry_run: bool,
    /// Whether the account itself went.
    account: bool,
    organizations: Vec<Uuid>,
    records: u64,
    api_keys_revoked: u64,
    sessions: u64,
    mail: u64,
    invitations: u64,
    subject_keys: u64,
}

impl From<UserErasure> for UserErased {
    fn from(e: UserErasure) -> Self {
        Self {
            user: e.user,
            dry_run: e.dry_run,
            account: e.account,
            organizations: e.organizations.iter().map(|o| o.as_uuid()).collect(),
            records: e.records,
            api_keys_revoked: e.api_keys_revoked,
            sessions: e.sessions,
            mail: e.mail,
            invitations: e.invitations,
            subject_keys: e.subject_keys,
        }
    }
}

/// Erases the caller: account, sessions, devices, factors, tokens, mail, their records and
/// memberships everywhere, the organisations only they belong to, their personal fields in
/// every audit log (the events stay, unreadable there). Needs the password, and a recent second
/// factor when one is enrolled.
#[utoipa::path(post, path = "/v1/me/erase", tag = "me", security(("bearer" = [])),
    request_body = EraseMe,
    responses(
        (status = 200, description = "Erased; the caller's tokens stop working", body = UserErased),
        (status = 401, description = "`invalid_credentials`: wrong password", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`step_up_required` (no recent second factor), `wrong_audience` (an impersonation or an API key), or `sso_refused` (a session an organisation's single sign-on began: it stays in that organisation)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`last_owner`: the only owner of an organisation with other members", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn me(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<EraseMe>,
) -> Result<Json<UserErased>, ApiError> {
    let password = SecretString::from(req.password);
    let done = state
        .kernel
        .data_rights()
        .erase_self(&caller.call, &password)
        .await?;
    Ok(Json(done.into()))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreatedRange {
    /// Inclusive; absent for "since the beginning" (needs `confirm`).
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    from: Option<OffsetDateTime>,
    /// Exclusive; absent for "until now and later" (needs `confirm`).
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    until: Option<OffsetDateTime>,
}

/// Exactly one of `user_id`, `records` and `records_created`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ErasureRequest {
    /// A member: their data here (never elsewhere); their account too when this is their only
    /// organisation.
    user_id: Option<Uuid>,
    /// Records by id (1 to 1000), all of them this organisation's.
    records: Option<Vec<Uuid>>,
    /// Records created in a range.
    records_created: Option<CreatedRange>,
    /// Required for a range open at either end.
    #[serde(default)]
    confirm: bool,
    /// Counts what a member's erasure would remove, removing nothing.
    #[serde(default)]
    dry_run: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Erased {
    /// Set for a member's erasure.
    user: Option<UserErased>,
    /// Records erased, for an erasure of records.
    records: Option<u64>,
}

/// Erases a member's data, or records by id or creation time (`data.delete`, with step-up).
/// Hard: nothing is kept to restore.
#[utoipa::path(post, path = "/v1/erasures", tag = "organization", security(("bearer" = [])),
    params(OrgScoped),
    request_body = ErasureRequest,
    responses(
        (status = 200, description = "Erased (or counted, with `dry_run`)", body = Erased),
        (status = 403, description = "`forbidden` or `step_up_required`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: not a member, or a record not of this organisation (nothing erased)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`last_owner`: the member is the organisation's last owner", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: not exactly one selection, an inverted range, or an open one without `confirm`", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn create(
    State(state): State<AppState>,
    OrgCaller(call): OrgCaller,
    ApiJson(req): ApiJson<ErasureRequest>,
) -> Result<Json<Erased>, ApiError> {
    let rights = state.kernel.data_rights();
    match (req.user_id, req.records, req.records_created) {
        (Some(user), None, None) => {
            let done = rights
                .erase_member(&call, UserId::from_uuid(user), req.dry_run)
                .await?;
            Ok(Json(Erased {
                user: Some(done.into()),
                records: None,
            }))
        }
        (None, Some(ids), None) if !req.dry_run => {
            let n = rights
                .erase_records(&call, RecordSelection::Ids(ids))
                .await?;
            Ok(Json(Erased {
                user: None,
                records: Some(n),
            }))
        }
        (None, None, Some(range)) if !req.dry_run => {
            let selection = RecordSelection::Created {
                from: range.from,
                until: range.until,
                confirmed: req.confirm,
            };
            let n = rights.erase_records(&call, selection).await?;
            Ok(Json(Erased {
                user: None,
                records: Some(n),
            }))
        }
        _ => Err(Error::invalid(
            "records",
            "exactly one of user_id, records and records_created (dry_run with user_id only)",
        )
        .into()),
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EraseOrganization {
    /// The organisation's name, exactly: what is about to go.
    confirm: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct OrganizationErased {
    organization: Uuid,
    members: u64,
    sessions: u64,
    key_versions_destroyed: u64,
}

impl From<OrganizationErasure> for OrganizationErased {
    fn from(e: OrganizationErasure) -> Self {
        Self {
            organization: e.organization.as_uuid(),
            members: e.members,
            sessions: e.sessions,
            key_versions_destroyed: e.key_versions_destroyed,
        }
    }
}

/// The owner erases the organisation (`data.delete`, with step-up): its data keys are destroyed
/// first, then every row of it, its audit log included. Members keep their accounts.
#[utoipa::path(delete, path = "/v1/organization", tag = "organization", security(("bearer" = [])),
    params(OrgScoped),
    request_body = EraseOrganization,
    responses(
        (status = 200, description = "Erased", body = OrganizationErased),
        (status = 403, description = "`forbidden` (not the owner) or `step_up_required`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: `confirm` is not the organisation's name", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn organization(
    State(state): State<AppState>,
    OrgCaller(call): OrgCaller,
    ApiJson(req): ApiJson<EraseOrganization>,
) -> Result<Json<OrganizationErased>, ApiError> {
    let done = state
        .kernel
        .data_rights()
        .erase_own_organization(&call, &req.confirm)
        .await?;
    Ok(Json(done.into()))
}

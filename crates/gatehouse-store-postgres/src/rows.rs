//! Row decoding and value conversions shared by several roles. A value that cannot be decoded is
//! `StoreError::Corrupt`, never a panic. Decoders used by one role live in that role's file.

use gatehouse_core::store::{KeyState, MembershipRecord, OrganizationRecord, Role};
use gatehouse_core::{OrgId, StoreError, UserId};
use sqlx::Row;
use sqlx::postgres::PgRow;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::errors::map_err;

/// Key versions and attempt counts are PostgreSQL `integer`s.
pub(crate) fn int(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Versions are `u32` in the domain and PostgreSQL `integer`s here: a version past `i32::MAX` is
/// refused, never wrapped.
pub(crate) fn checked_int(version: u32) -> Result<i32, StoreError> {
    i32::try_from(version)
        .map_err(|_| StoreError::Backend(format!("version {version} out of range")))
}

pub(crate) fn get<'r, T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>>(
    row: &'r PgRow,
    col: &str,
) -> Result<T, StoreError> {
    row.try_get(col).map_err(map_err)
}

pub(crate) fn time_col(row: &PgRow, col: &str) -> Result<OffsetDateTime, StoreError> {
    row.try_get(col).map_err(map_err)
}

pub(crate) fn opt_time_col(row: &PgRow, col: &str) -> Result<Option<OffsetDateTime>, StoreError> {
    row.try_get(col).map_err(map_err)
}

pub(crate) fn uuid_col(row: &PgRow, col: &str) -> Result<Uuid, StoreError> {
    row.try_get(col).map_err(map_err)
}

pub(crate) fn u32_col(row: &PgRow, col: &str) -> Result<u32, StoreError> {
    let v: i32 = row.try_get(col).map_err(map_err)?;
    u32::try_from(v).map_err(|_| StoreError::Corrupt(format!("{col} out of range")))
}

/// Key state of `kek_versions` and `org_keys` rows.
pub(crate) fn state_col(row: &PgRow) -> Result<KeyState, StoreError> {
    let s: String = row.try_get("state").map_err(map_err)?;
    KeyState::parse(&s).ok_or_else(|| StoreError::Corrupt(format!("key state {s:?}")))
}

/// Read by the platform (`organization_by_id`) and inside a scope (`organization`).
pub(crate) fn organization(row: &PgRow) -> Result<OrganizationRecord, StoreError> {
    Ok(OrganizationRecord {
        id: OrgId::from_uuid(uuid_col(row, "id")?),
        name: row.try_get("name").map_err(map_err)?,
        created_at: row.try_get("created_at").map_err(map_err)?,
        keys_shredded_at: row.try_get("keys_shredded_at").map_err(map_err)?,
    })
}

/// Read by a user's own memberships (`memberships_of_user`) and inside a scope (members).
pub(crate) fn membership(row: &PgRow) -> Result<MembershipRecord, StoreError> {
    let role: String = row.try_get("role").map_err(map_err)?;
    Ok(MembershipRecord {
        org_id: OrgId::from_uuid(uuid_col(row, "org_id")?),
        user_id: UserId::from_uuid(uuid_col(row, "user_id")?),
        role: Role::parse(&role).ok_or_else(|| StoreError::Corrupt(format!("role {role:?}")))?,
        created_at: row.try_get("created_at").map_err(map_err)?,
        sessions_ended_at: row.try_get("sessions_ended_at").map_err(map_err)?,
    })
}

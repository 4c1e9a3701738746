//! Row decoding shared by several roles. A value that cannot be decoded is `StoreError::Corrupt`,
//! never a panic. A decoder used by one role lives in that role's file.

use gatehouse_core::clock::{from_unix_micros, unix_micros};
use gatehouse_core::store::{KeyState, MembershipRecord, OrganizationRecord, Role};
use gatehouse_core::{OrgId, StoreError, UserId};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::errors::map_err;

pub(crate) fn micros(t: OffsetDateTime) -> i64 {
    unix_micros(t)
}

pub(crate) fn get<'r, T: sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>>(
    row: &'r SqliteRow,
    col: &str,
) -> Result<T, StoreError> {
    row.try_get(col).map_err(map_err)
}

pub(crate) fn time_col(row: &SqliteRow, col: &str) -> Result<OffsetDateTime, StoreError> {
    let m: i64 = row.try_get(col).map_err(map_err)?;
    from_unix_micros(m).ok_or_else(|| StoreError::Corrupt(format!("{col} out of range")))
}

pub(crate) fn uuid_col(row: &SqliteRow, col: &str) -> Result<Uuid, StoreError> {
    row.try_get(col).map_err(map_err)
}

pub(crate) fn opt_time_col(
    row: &SqliteRow,
    col: &str,
) -> Result<Option<OffsetDateTime>, StoreError> {
    let m: Option<i64> = row.try_get(col).map_err(map_err)?;
    m.map(|m| from_unix_micros(m).ok_or_else(|| StoreError::Corrupt(format!("{col} out of range"))))
        .transpose()
}

pub(crate) fn u32_col(row: &SqliteRow, col: &str) -> Result<u32, StoreError> {
    let v: i64 = row.try_get(col).map_err(map_err)?;
    u32::try_from(v).map_err(|_| StoreError::Corrupt(format!("{col} out of range")))
}

/// Key state of a master-key version (`key_material.rs`) or a data key (`org_keys.rs`).
pub(crate) fn state_col(row: &SqliteRow) -> Result<KeyState, StoreError> {
    let s: String = row.try_get("state").map_err(map_err)?;
    KeyState::parse(&s).ok_or_else(|| StoreError::Corrupt(format!("key state {s:?}")))
}

/// Read by the platform (`organizations.rs`) and by its own scope (`org_keys.rs`).
pub(crate) fn organization(row: &SqliteRow) -> Result<OrganizationRecord, StoreError> {
    Ok(OrganizationRecord {
        id: OrgId::from_uuid(uuid_col(row, "id")?),
        name: row.try_get("name").map_err(map_err)?,
        created_at: time_col(row, "created_at")?,
        keys_shredded_at: opt_time_col(row, "keys_shredded_at")?,
    })
}

/// Read by a user's own listing (`users.rs`) and by the organisation's (`members.rs`).
pub(crate) fn membership(row: &SqliteRow) -> Result<MembershipRecord, StoreError> {
    let role: String = row.try_get("role").map_err(map_err)?;
    Ok(MembershipRecord {
        org_id: OrgId::from_uuid(uuid_col(row, "org_id")?),
        user_id: UserId::from_uuid(uuid_col(row, "user_id")?),
        role: Role::parse(&role).ok_or_else(|| StoreError::Corrupt(format!("role {role:?}")))?,
        created_at: time_col(row, "created_at")?,
        sessions_ended_at: opt_time_col(row, "sessions_ended_at")?,
    })
}

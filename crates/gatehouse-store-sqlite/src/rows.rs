//! Row decoding. A value that cannot be decoded is `StoreError::Corrupt`, never a panic.

use gatehouse_core::clock::{from_unix_micros, unix_micros};
use gatehouse_core::store::{MembershipRecord, OrganizationRecord, Role, UserRecord};
use gatehouse_core::{OrgId, StoreError, UserId};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::errors::map_err;

pub(crate) fn micros(t: OffsetDateTime) -> i64 {
    unix_micros(t)
}

fn time_col(row: &SqliteRow, col: &str) -> Result<OffsetDateTime, StoreError> {
    let m: i64 = row.try_get(col).map_err(map_err)?;
    from_unix_micros(m).ok_or_else(|| StoreError::Corrupt(format!("{col} out of range")))
}

fn uuid_col(row: &SqliteRow, col: &str) -> Result<Uuid, StoreError> {
    row.try_get(col).map_err(map_err)
}

pub(crate) fn user(row: &SqliteRow) -> Result<UserRecord, StoreError> {
    Ok(UserRecord {
        id: UserId::from_uuid(uuid_col(row, "id")?),
        email: row.try_get("email").map_err(map_err)?,
        name: row.try_get("name").map_err(map_err)?,
        password_hash: row.try_get("password_hash").map_err(map_err)?,
        created_at: time_col(row, "created_at")?,
    })
}

pub(crate) fn organization(row: &SqliteRow) -> Result<OrganizationRecord, StoreError> {
    Ok(OrganizationRecord {
        id: OrgId::from_uuid(uuid_col(row, "id")?),
        name: row.try_get("name").map_err(map_err)?,
        created_at: time_col(row, "created_at")?,
    })
}

pub(crate) fn membership(row: &SqliteRow) -> Result<MembershipRecord, StoreError> {
    let role: String = row.try_get("role").map_err(map_err)?;
    Ok(MembershipRecord {
        org_id: OrgId::from_uuid(uuid_col(row, "org_id")?),
        user_id: UserId::from_uuid(uuid_col(row, "user_id")?),
        role: Role::parse(&role).ok_or_else(|| StoreError::Corrupt(format!("role {role:?}")))?,
        created_at: time_col(row, "created_at")?,
    })
}

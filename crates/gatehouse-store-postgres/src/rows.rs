//! Row decoding. A value that cannot be decoded is `StoreError::Corrupt`, never a panic.

use gatehouse_core::store::{
    KekVersionRecord, KeyState, MembershipRecord, OrgKeyRecord, OrganizationRecord, Role,
    SealedRecord, UserRecord,
};
use gatehouse_core::{OrgId, StoreError, UserId};
use sqlx::Row;
use sqlx::postgres::PgRow;
use uuid::Uuid;

use crate::errors::map_err;

pub(crate) fn uuid_col(row: &PgRow, col: &str) -> Result<Uuid, StoreError> {
    row.try_get(col).map_err(map_err)
}

pub(crate) fn user(row: &PgRow) -> Result<UserRecord, StoreError> {
    Ok(UserRecord {
        id: UserId::from_uuid(uuid_col(row, "id")?),
        email: row.try_get("email").map_err(map_err)?,
        name: row.try_get("name").map_err(map_err)?,
        password_hash: row.try_get("password_hash").map_err(map_err)?,
        created_at: row.try_get("created_at").map_err(map_err)?,
        email_verified_at: row.try_get("email_verified_at").map_err(map_err)?,
    })
}

pub(crate) fn organization(row: &PgRow) -> Result<OrganizationRecord, StoreError> {
    Ok(OrganizationRecord {
        id: OrgId::from_uuid(uuid_col(row, "id")?),
        name: row.try_get("name").map_err(map_err)?,
        created_at: row.try_get("created_at").map_err(map_err)?,
        keys_shredded_at: row.try_get("keys_shredded_at").map_err(map_err)?,
    })
}

pub(crate) fn u32_col(row: &PgRow, col: &str) -> Result<u32, StoreError> {
    let v: i32 = row.try_get(col).map_err(map_err)?;
    u32::try_from(v).map_err(|_| StoreError::Corrupt(format!("{col} out of range")))
}

fn state_col(row: &PgRow) -> Result<KeyState, StoreError> {
    let s: String = row.try_get("state").map_err(map_err)?;
    KeyState::parse(&s).ok_or_else(|| StoreError::Corrupt(format!("key state {s:?}")))
}

pub(crate) fn kek_version(row: &PgRow) -> Result<KekVersionRecord, StoreError> {
    Ok(KekVersionRecord {
        version: u32_col(row, "version")?,
        check_value: row.try_get("check_value").map_err(map_err)?,
        state: state_col(row)?,
        created_at: row.try_get("created_at").map_err(map_err)?,
    })
}

pub(crate) fn org_key(row: &PgRow) -> Result<OrgKeyRecord, StoreError> {
    let n: i64 = row.try_get("encryptions").map_err(map_err)?;
    Ok(OrgKeyRecord {
        org_id: OrgId::from_uuid(uuid_col(row, "org_id")?),
        version: u32_col(row, "version")?,
        wrapped: row.try_get("wrapped").map_err(map_err)?,
        kek_version: u32_col(row, "kek_version")?,
        state: state_col(row)?,
        encryptions: u64::try_from(n).map_err(|_| StoreError::Corrupt("encryptions".into()))?,
        created_at: row.try_get("created_at").map_err(map_err)?,
    })
}

pub(crate) fn sealed(row: &PgRow) -> Result<SealedRecord, StoreError> {
    Ok(SealedRecord {
        org_id: OrgId::from_uuid(uuid_col(row, "org_id")?),
        kind: row.try_get("kind").map_err(map_err)?,
        record_id: row.try_get("record_id").map_err(map_err)?,
        field: row.try_get("field").map_err(map_err)?,
        dek_version: u32_col(row, "dek_version")?,
        envelope: row.try_get("envelope").map_err(map_err)?,
        updated_at: row.try_get("updated_at").map_err(map_err)?,
    })
}

pub(crate) fn membership(row: &PgRow) -> Result<MembershipRecord, StoreError> {
    let role: String = row.try_get("role").map_err(map_err)?;
    Ok(MembershipRecord {
        org_id: OrgId::from_uuid(uuid_col(row, "org_id")?),
        user_id: UserId::from_uuid(uuid_col(row, "user_id")?),
        role: Role::parse(&role).ok_or_else(|| StoreError::Corrupt(format!("role {role:?}")))?,
        created_at: row.try_get("created_at").map_err(map_err)?,
    })
}

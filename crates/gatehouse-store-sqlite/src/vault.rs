//! The shared-secrets vault's metadata and the transit floor in SQLite. Tenant functions take the
//! scope's org id and name it in every statement.

use gatehouse_core::page::{Cursor, Page, PageRequest};
use gatehouse_core::store::{SecretRecord, SecretVersionRecord};
use gatehouse_core::{OrgId, StoreError};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::errors::map_err;
use crate::rows::{micros, opt_time_col, time_col, u32_col, uuid_col};

fn get<'r, T: sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>>(
    row: &'r SqliteRow,
    col: &str,
) -> Result<T, StoreError> {
    row.try_get(col).map_err(map_err)
}

fn secret_row(row: &SqliteRow) -> Result<SecretRecord, StoreError> {
    Ok(SecretRecord {
        org_id: OrgId::from_uuid(uuid_col(row, "org_id")?),
        id: uuid_col(row, "id")?,
        name: get(row, "name")?,
        description: get(row, "description")?,
        current_version: u32_col(row, "current_version")?,
        created_by: get(row, "created_by")?,
        created_at: time_col(row, "created_at")?,
        updated_at: time_col(row, "updated_at")?,
        expires_at: opt_time_col(row, "expires_at")?,
        deleted_at: opt_time_col(row, "deleted_at")?,
    })
}

fn version_row(row: &SqliteRow) -> Result<SecretVersionRecord, StoreError> {
    Ok(SecretVersionRecord {
        org_id: OrgId::from_uuid(uuid_col(row, "org_id")?),
        secret_id: uuid_col(row, "secret_id")?,
        version: u32_col(row, "version")?,
        created_by: get(row, "created_by")?,
        created_at: time_col(row, "created_at")?,
    })
}

async fn insert_version(
    c: &mut SqliteConnection,
    org: OrgId,
    secret: Uuid,
    version: u32,
    created_by: &str,
    created_at: OffsetDateTime,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO secret_versions (org_id, secret_id, version, created_by, created_at) \
         VALUES (?, ?, ?, ?, ?)",
    )
    .bind(org.as_uuid())
    .bind(secret)
    .bind(i64::from(version))
    .bind(created_by)
    .bind(micros(created_at))
    .execute(c)
    .await
    .map(|_| ())
    .map_err(map_err)
}

/// A live secret with the same name is a unique violation (`StoreError::Duplicate`).
pub(crate) async fn insert_secret(
    c: &mut SqliteConnection,
    org: OrgId,
    s: &SecretRecord,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO secrets (org_id, id, name, description, current_version, created_by, \
         created_at, updated_at, expires_at, deleted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(org.as_uuid())
    .bind(s.id)
    .bind(&s.name)
    .bind(&s.description)
    .bind(i64::from(s.current_version))
    .bind(&s.created_by)
    .bind(micros(s.created_at))
    .bind(micros(s.updated_at))
    .bind(s.expires_at.map(micros))
    .bind(s.deleted_at.map(micros))
    .execute(&mut *c)
    .await
    .map_err(map_err)?;
    insert_version(c, org, s.id, s.current_version, &s.created_by, s.created_at).await
}

pub(crate) async fn secret(
    c: &mut SqliteConnection,
    org: OrgId,
    id: Uuid,
) -> Result<Option<SecretRecord>, StoreError> {
    let row = sqlx::query("SELECT * FROM secrets WHERE org_id = ? AND id = ?")
        .bind(org.as_uuid())
        .bind(id)
        .fetch_optional(c)
        .await
        .map_err(map_err)?;
    row.as_ref().map(secret_row).transpose()
}

pub(crate) async fn list_secrets(
    c: &mut SqliteConnection,
    org: OrgId,
    page: PageRequest,
) -> Result<Page<SecretRecord>, StoreError> {
    let (before_t, before_id) = match page.after {
        Some(cur) => (cur.created_at_micros, Some(cur.id)),
        None => (i64::MAX, None),
    };
    let rows = sqlx::query(
        "SELECT * FROM secrets WHERE org_id = ?1 AND deleted_at IS NULL \
         AND (created_at < ?2 OR (created_at = ?2 AND (?3 IS NULL OR id < ?3))) \
         ORDER BY created_at DESC, id DESC LIMIT ?4",
    )
    .bind(org.as_uuid())
    .bind(before_t)
    .bind(before_id)
    .bind(i64::from(page.limit.get()) + 1)
    .fetch_all(c)
    .await
    .map_err(map_err)?;
    let records = rows.iter().map(secret_row).collect::<Result<Vec<_>, _>>()?;
    Ok(Page::from_overfetch(records, page.limit, |s| {
        Cursor::after(s.created_at, s.id)
    }))
}

/// Moves the live secret from `v.version - 1` to `v.version`, then records the version; nothing
/// when the secret is deleted, missing, or not at the previous version.
pub(crate) async fn add_secret_version(
    c: &mut SqliteConnection,
    org: OrgId,
    v: &SecretVersionRecord,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE secrets SET current_version = ?1, updated_at = ?2 \
         WHERE org_id = ?3 AND id = ?4 AND current_version = ?1 - 1 AND deleted_at IS NULL",
    )
    .bind(i64::from(v.version))
    .bind(micros(v.created_at))
    .bind(org.as_uuid())
    .bind(v.secret_id)
    .execute(&mut *c)
    .await
    .map_err(map_err)?;
    if done.rows_affected() != 1 {
        return Ok(false);
    }
    insert_version(c, org, v.secret_id, v.version, &v.created_by, v.created_at).await?;
    Ok(true)
}

pub(crate) async fn secret_versions(
    c: &mut SqliteConnection,
    org: OrgId,
    secret: Uuid,
) -> Result<Vec<SecretVersionRecord>, StoreError> {
    let rows = sqlx::query(
        "SELECT * FROM secret_versions WHERE org_id = ? AND secret_id = ? ORDER BY version",
    )
    .bind(org.as_uuid())
    .bind(secret)
    .fetch_all(c)
    .await
    .map_err(map_err)?;
    rows.iter().map(version_row).collect()
}

pub(crate) async fn delete_secret(
    c: &mut SqliteConnection,
    org: OrgId,
    id: Uuid,
    at: OffsetDateTime,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE secrets SET deleted_at = ? WHERE org_id = ? AND id = ? AND deleted_at IS NULL",
    )
    .bind(micros(at))
    .bind(org.as_uuid())
    .bind(id)
    .execute(c)
    .await
    .map_err(map_err)?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn transit_floor(
    c: &mut SqliteConnection,
    org: OrgId,
) -> Result<Option<u32>, StoreError> {
    let row = sqlx::query("SELECT min_version FROM transit_settings WHERE org_id = ?")
        .bind(org.as_uuid())
        .fetch_optional(c)
        .await
        .map_err(map_err)?;
    row.as_ref().map(|r| u32_col(r, "min_version")).transpose()
}

pub(crate) async fn set_transit_floor(
    c: &mut SqliteConnection,
    org: OrgId,
    version: u32,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO transit_settings (org_id, min_version) VALUES (?, ?) \
         ON CONFLICT (org_id) DO UPDATE SET min_version = MAX(transit_settings.min_version, excluded.min_version)",
    )
    .bind(org.as_uuid())
    .bind(i64::from(version))
    .execute(c)
    .await
    .map(|_| ())
    .map_err(map_err)
}

//! The shared-secrets vault's metadata and the transit floor in PostgreSQL, under row-level
//! security. Tenant functions take the scope's org id and name it in every statement.

use gatehouse_core::page::{Cursor, Page, PageRequest};
use gatehouse_core::store::{SecretRecord, SecretVersionRecord};
use gatehouse_core::{OrgId, StoreError};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::errors::map_err;
use crate::rows::{u32_col, uuid_col};

/// Versions are `u32` in the domain and PostgreSQL `integer`s here: a version past `i32::MAX` is
/// refused, never wrapped.
fn int(version: u32) -> Result<i32, StoreError> {
    i32::try_from(version)
        .map_err(|_| StoreError::Backend(format!("version {version} out of range")))
}

fn get<'r, T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>>(
    row: &'r PgRow,
    col: &str,
) -> Result<T, StoreError> {
    row.try_get(col).map_err(map_err)
}

fn secret_row(row: &PgRow) -> Result<SecretRecord, StoreError> {
    Ok(SecretRecord {
        org_id: OrgId::from_uuid(uuid_col(row, "org_id")?),
        id: uuid_col(row, "id")?,
        name: get(row, "name")?,
        description: get(row, "description")?,
        current_version: u32_col(row, "current_version")?,
        created_by: get(row, "created_by")?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
        expires_at: get(row, "expires_at")?,
        deleted_at: get(row, "deleted_at")?,
    })
}

fn version_row(row: &PgRow) -> Result<SecretVersionRecord, StoreError> {
    Ok(SecretVersionRecord {
        org_id: OrgId::from_uuid(uuid_col(row, "org_id")?),
        secret_id: uuid_col(row, "secret_id")?,
        version: u32_col(row, "version")?,
        created_by: get(row, "created_by")?,
        created_at: get(row, "created_at")?,
    })
}

async fn insert_version(
    c: &mut PgConnection,
    org: OrgId,
    secret: Uuid,
    version: i32,
    created_by: &str,
    created_at: OffsetDateTime,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO secret_versions (org_id, secret_id, version, created_by, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(org.as_uuid())
    .bind(secret)
    .bind(version)
    .bind(created_by)
    .bind(created_at)
    .execute(c)
    .await
    .map(|_| ())
    .map_err(map_err)
}

/// A live secret with the same name is a unique violation (`StoreError::Duplicate`).
pub(crate) async fn insert_secret(
    c: &mut PgConnection,
    org: OrgId,
    s: &SecretRecord,
) -> Result<(), StoreError> {
    let version = int(s.current_version)?;
    sqlx::query(
        "INSERT INTO secrets (org_id, id, name, description, current_version, created_by, \
         created_at, updated_at, expires_at, deleted_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(org.as_uuid())
    .bind(s.id)
    .bind(&s.name)
    .bind(&s.description)
    .bind(version)
    .bind(&s.created_by)
    .bind(s.created_at)
    .bind(s.updated_at)
    .bind(s.expires_at)
    .bind(s.deleted_at)
    .execute(&mut *c)
    .await
    .map_err(map_err)?;
    insert_version(c, org, s.id, version, &s.created_by, s.created_at).await
}

pub(crate) async fn secret(
    c: &mut PgConnection,
    org: OrgId,
    id: Uuid,
) -> Result<Option<SecretRecord>, StoreError> {
    let row = sqlx::query("SELECT * FROM secrets WHERE org_id = $1 AND id = $2")
        .bind(org.as_uuid())
        .bind(id)
        .fetch_optional(c)
        .await
        .map_err(map_err)?;
    row.as_ref().map(secret_row).transpose()
}

pub(crate) async fn list_secrets(
    c: &mut PgConnection,
    org: OrgId,
    page: PageRequest,
) -> Result<Page<SecretRecord>, StoreError> {
    let (before_t, before_id) = match page.after {
        Some(cur) => (
            gatehouse_core::clock::from_unix_micros(cur.created_at_micros),
            Some(cur.id),
        ),
        None => (None, None),
    };
    let rows = sqlx::query(
        "SELECT * FROM secrets WHERE org_id = $1 AND deleted_at IS NULL \
         AND ($2::timestamptz IS NULL OR created_at < $2 \
              OR (created_at = $2 AND ($3::uuid IS NULL OR id < $3))) \
         ORDER BY created_at DESC, id DESC LIMIT $4",
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
    c: &mut PgConnection,
    org: OrgId,
    v: &SecretVersionRecord,
) -> Result<bool, StoreError> {
    let version = int(v.version)?;
    let done = sqlx::query(
        "UPDATE secrets SET current_version = $1, updated_at = $2 \
         WHERE org_id = $3 AND id = $4 AND current_version = $1 - 1 AND deleted_at IS NULL",
    )
    .bind(version)
    .bind(v.created_at)
    .bind(org.as_uuid())
    .bind(v.secret_id)
    .execute(&mut *c)
    .await
    .map_err(map_err)?;
    if done.rows_affected() != 1 {
        return Ok(false);
    }
    insert_version(c, org, v.secret_id, version, &v.created_by, v.created_at).await?;
    Ok(true)
}

pub(crate) async fn secret_versions(
    c: &mut PgConnection,
    org: OrgId,
    secret: Uuid,
) -> Result<Vec<SecretVersionRecord>, StoreError> {
    let rows = sqlx::query(
        "SELECT * FROM secret_versions WHERE org_id = $1 AND secret_id = $2 ORDER BY version",
    )
    .bind(org.as_uuid())
    .bind(secret)
    .fetch_all(c)
    .await
    .map_err(map_err)?;
    rows.iter().map(version_row).collect()
}

pub(crate) async fn delete_secret(
    c: &mut PgConnection,
    org: OrgId,
    id: Uuid,
    at: OffsetDateTime,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE secrets SET deleted_at = $1 WHERE org_id = $2 AND id = $3 AND deleted_at IS NULL",
    )
    .bind(at)
    .bind(org.as_uuid())
    .bind(id)
    .execute(c)
    .await
    .map_err(map_err)?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn transit_floor(
    c: &mut PgConnection,
    org: OrgId,
) -> Result<Option<u32>, StoreError> {
    let row = sqlx::query("SELECT min_version FROM transit_settings WHERE org_id = $1")
        .bind(org.as_uuid())
        .fetch_optional(c)
        .await
        .map_err(map_err)?;
    row.as_ref().map(|r| u32_col(r, "min_version")).transpose()
}

pub(crate) async fn set_transit_floor(
    c: &mut PgConnection,
    org: OrgId,
    version: u32,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO transit_settings (org_id, min_version) VALUES ($1, $2) \
         ON CONFLICT (org_id) DO UPDATE SET min_version = GREATEST(transit_settings.min_version, excluded.min_version)",
    )
    .bind(org.as_uuid())
    .bind(int(version)?)
    .execute(c)
    .await
    .map(|_| ())
    .map_err(map_err)
}

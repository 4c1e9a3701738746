//! The shared-secrets vault's metadata in SQLite, inside one organisation's scope: every
//! statement names the scope's `org_id`.

use async_trait::async_trait;
use gatehouse_core::page::{Cursor, Page, PageRequest};
use gatehouse_core::store::{SecretRecord, SecretStore, SecretVersionRecord, ensure_in_scope};
use gatehouse_core::{OrgId, StoreError};
use sqlx::SqliteConnection;
use sqlx::sqlite::SqliteRow;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::errors::map_err;
use crate::rows::{get, micros, opt_time_col, time_col, u32_col, uuid_col};
use crate::tx::SqliteTenantTx;

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

/// Records a version row; shared by `insert_secret` (the first version) and `add_secret_version`.
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

#[async_trait]
impl SecretStore for SqliteTenantTx {
    /// A live secret with the same name is a unique violation (`StoreError::Duplicate`).
    async fn insert_secret(&mut self, s: &SecretRecord) -> Result<(), StoreError> {
        ensure_in_scope(&self.scope, s.org_id)?;
        let org = self.scope.org_id();
        let c: &mut SqliteConnection = &mut self.tx;
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

    async fn secret(&mut self, id: Uuid) -> Result<Option<SecretRecord>, StoreError> {
        let org = self.scope.org_id();
        let c: &mut SqliteConnection = &mut self.tx;
        let row = sqlx::query("SELECT * FROM secrets WHERE org_id = ? AND id = ?")
            .bind(org.as_uuid())
            .bind(id)
            .fetch_optional(c)
            .await
            .map_err(map_err)?;
        row.as_ref().map(secret_row).transpose()
    }

    async fn list_secrets(
        &mut self,
        now: OffsetDateTime,
        page: PageRequest,
    ) -> Result<Page<SecretRecord>, StoreError> {
        let org = self.scope.org_id();
        let c: &mut SqliteConnection = &mut self.tx;
        let (before_t, before_id) = match page.after {
            Some(cur) => (cur.created_at_micros, Some(cur.id)),
            None => (i64::MAX, None),
        };
        let rows = sqlx::query(
            "SELECT * FROM secrets WHERE org_id = ?1 AND deleted_at IS NULL \
             AND (expires_at IS NULL OR expires_at > ?5) \
             AND (created_at < ?2 OR (created_at = ?2 AND (?3 IS NULL OR id < ?3))) \
             ORDER BY created_at DESC, id DESC LIMIT ?4",
        )
        .bind(org.as_uuid())
        .bind(before_t)
        .bind(before_id)
        .bind(i64::from(page.limit.get()) + 1)
        .bind(micros(now))
        .fetch_all(c)
        .await
        .map_err(map_err)?;
        let records = rows.iter().map(secret_row).collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_overfetch(records, page.limit, |s| {
            Cursor::after(s.created_at, s.id)
        }))
    }

    /// Moves the live secret from `v.version - 1` to `v.version`, then records the version;
    /// nothing when the secret is deleted, missing, or not at the previous version.
    async fn add_secret_version(&mut self, v: &SecretVersionRecord) -> Result<bool, StoreError> {
        ensure_in_scope(&self.scope, v.org_id)?;
        let org = self.scope.org_id();
        let c: &mut SqliteConnection = &mut self.tx;
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

    async fn secret_versions(
        &mut self,
        secret: Uuid,
    ) -> Result<Vec<SecretVersionRecord>, StoreError> {
        let org = self.scope.org_id();
        let c: &mut SqliteConnection = &mut self.tx;
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

    async fn purge_secrets(
        &mut self,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<Uuid>, StoreError> {
        let org = self.scope.org_id();
        let c: &mut SqliteConnection = &mut self.tx;
        // Versions go with their secret (ON DELETE CASCADE).
        sqlx::query_scalar(
            "DELETE FROM secrets WHERE org_id = ?1 AND id IN (\
               SELECT id FROM secrets WHERE org_id = ?1 \
                 AND (deleted_at IS NOT NULL OR (expires_at IS NOT NULL AND expires_at <= ?2)) \
               LIMIT ?3) \
             RETURNING id",
        )
        .bind(org.as_uuid())
        .bind(micros(now))
        .bind(i64::from(limit))
        .fetch_all(c)
        .await
        .map_err(map_err)
    }

    async fn delete_secret(&mut self, id: Uuid, at: OffsetDateTime) -> Result<bool, StoreError> {
        let org = self.scope.org_id();
        let c: &mut SqliteConnection = &mut self.tx;
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
}

//! The shared-secrets vault's metadata inside one organisation's scope, under row-level security:
//! every statement names the scope's org id.

use async_trait::async_trait;
use gatehouse_core::page::{Cursor, Page, PageRequest};
use gatehouse_core::store::{SecretRecord, SecretStore, SecretVersionRecord, ensure_in_scope};
use gatehouse_core::{OrgId, StoreError};
use sqlx::PgConnection;
use sqlx::postgres::PgRow;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::errors::map_err;
use crate::rows::{checked_int, get, u32_col, uuid_col};
use crate::tx::PgTenantTx;

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

/// Records a version row; shared by a new secret (its first version) and a new version.
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

#[async_trait]
impl SecretStore for PgTenantTx {
    /// A live secret with the same name is a unique violation (`StoreError::Duplicate`).
    async fn insert_secret(&mut self, s: &SecretRecord) -> Result<(), StoreError> {
        ensure_in_scope(&self.scope, s.org_id)?;
        let org = self.scope.org_id();
        let c: &mut PgConnection = &mut self.tx;
        let version = checked_int(s.current_version)?;
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

    async fn secret(&mut self, id: Uuid) -> Result<Option<SecretRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM secrets WHERE org_id = $1 AND id = $2")
            .bind(self.scope.org_id().as_uuid())
            .bind(id)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(map_err)?;
        row.as_ref().map(secret_row).transpose()
    }

    async fn list_secrets(
        &mut self,
        now: OffsetDateTime,
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
             AND (expires_at IS NULL OR expires_at > $5) \
             AND ($2::timestamptz IS NULL OR created_at < $2 \
                  OR (created_at = $2 AND ($3::uuid IS NULL OR id < $3))) \
             ORDER BY created_at DESC, id DESC LIMIT $4",
        )
        .bind(self.scope.org_id().as_uuid())
        .bind(before_t)
        .bind(before_id)
        .bind(i64::from(page.limit.get()) + 1)
        .bind(now)
        .fetch_all(&mut *self.tx)
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
        let c: &mut PgConnection = &mut self.tx;
        let version = checked_int(v.version)?;
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

    async fn secret_versions(
        &mut self,
        secret: Uuid,
    ) -> Result<Vec<SecretVersionRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM secret_versions WHERE org_id = $1 AND secret_id = $2 ORDER BY version",
        )
        .bind(self.scope.org_id().as_uuid())
        .bind(secret)
        .fetch_all(&mut *self.tx)
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
        let c: &mut PgConnection = &mut self.tx;
        // Versions go with their secret (ON DELETE CASCADE). A materialised CTE selects the
        // batch once (see `purge_expired_records`).
        sqlx::query_scalar(
            "WITH due AS MATERIALIZED (\
               SELECT id FROM secrets WHERE org_id = $1 \
                 AND (deleted_at IS NOT NULL OR (expires_at IS NOT NULL AND expires_at <= $2)) \
               LIMIT $3 FOR UPDATE SKIP LOCKED) \
             DELETE FROM secrets s USING due WHERE s.org_id = $1 AND s.id = due.id \
             RETURNING s.id",
        )
        .bind(org.as_uuid())
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(c)
        .await
        .map_err(map_err)
    }

    async fn delete_secret(&mut self, id: Uuid, at: OffsetDateTime) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE secrets SET deleted_at = $1 WHERE org_id = $2 AND id = $3 AND deleted_at IS NULL",
        )
        .bind(at)
        .bind(self.scope.org_id().as_uuid())
        .bind(id)
        .execute(&mut *self.tx)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }
}

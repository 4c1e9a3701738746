//! API keys: the keys themselves are tenant rows under row-level security (every statement names
//! the scope's org id); the digest index that finds a key's organisation before any scope is
//! entered is a platform row.

use async_trait::async_trait;
use gatehouse_core::page::{Cursor, Page, PageRequest};
use gatehouse_core::store::{ApiKeyIndexStore, ApiKeyRecord, ApiKeyStore, ensure_in_scope};
use gatehouse_core::{OrgId, StoreError};
use sqlx::PgConnection;
use sqlx::postgres::PgRow;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::declare::{Named, declare};
use crate::errors::map_err;
use crate::rows::{get, opt_time_col, time_col};
use crate::tx::{PgTenantTx, PgTx};

fn api_key_row(row: &PgRow) -> Result<ApiKeyRecord, StoreError> {
    let perms: String = get(row, "permissions")?;
    let rate: Option<i32> = get(row, "rate_limit")?;
    Ok(ApiKeyRecord {
        id: get(row, "id")?,
        org_id: OrgId::from_uuid(get(row, "org_id")?),
        name: get(row, "name")?,
        prefix: get(row, "prefix")?,
        last4: get(row, "last4")?,
        digest: get(row, "digest")?,
        permissions: perms
            .split(',')
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect(),
        namespace: get(row, "namespace")?,
        rate_limit: rate.map(|r| u32::try_from(r).unwrap_or(u32::MAX)),
        created_by: get(row, "created_by")?,
        created_at: time_col(row, "created_at")?,
        expires_at: opt_time_col(row, "expires_at")?,
        revoked_at: opt_time_col(row, "revoked_at")?,
        last_used_at: opt_time_col(row, "last_used_at")?,
    })
}

#[async_trait]
impl ApiKeyIndexStore for PgTx {
    async fn api_key_owner(&mut self, digest: &[u8]) -> Result<Option<(OrgId, Uuid)>, StoreError> {
        declare(&mut self.tx, Named::Digest(digest)).await?;
        let row = sqlx::query("SELECT org_id, key_id FROM api_key_index WHERE digest = $1")
            .bind(digest)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(map_err)?;
        row.map(|r| Ok((OrgId::from_uuid(get(&r, "org_id")?), get(&r, "key_id")?)))
            .transpose()
    }
}

#[async_trait]
impl ApiKeyStore for PgTenantTx {
    async fn insert_api_key(&mut self, k: &ApiKeyRecord) -> Result<(), StoreError> {
        ensure_in_scope(&self.scope, k.org_id)?;
        let org = self.scope.org_id();
        let c: &mut PgConnection = &mut self.tx;
        sqlx::query(
            "INSERT INTO api_keys (id, org_id, name, prefix, last4, digest, permissions, namespace, \
             rate_limit, created_by, created_at, expires_at, revoked_at, last_used_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(k.id)
        .bind(org.as_uuid())
        .bind(&k.name)
        .bind(&k.prefix)
        .bind(&k.last4)
        .bind(&k.digest)
        .bind(k.permissions.join(","))
        .bind(&k.namespace)
        .bind(k.rate_limit.map(|r| i32::try_from(r).unwrap_or(i32::MAX)))
        .bind(&k.created_by)
        .bind(k.created_at)
        .bind(k.expires_at)
        .bind(k.revoked_at)
        .bind(k.last_used_at)
        .execute(&mut *c)
        .await
        .map_err(map_err)?;
        sqlx::query("INSERT INTO api_key_index (digest, org_id, key_id) VALUES ($1, $2, $3)")
            .bind(&k.digest)
            .bind(org.as_uuid())
            .bind(k.id)
            .execute(&mut *c)
            .await
            .map(|_| ())
            .map_err(map_err)
    }

    async fn api_key(&mut self, id: Uuid) -> Result<Option<ApiKeyRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM api_keys WHERE org_id = $1 AND id = $2")
            .bind(self.scope.org_id().as_uuid())
            .bind(id)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(map_err)?;
        row.as_ref().map(api_key_row).transpose()
    }

    async fn list_api_keys(&mut self, page: PageRequest) -> Result<Page<ApiKeyRecord>, StoreError> {
        let (before_t, before_id) = match page.after {
            Some(cur) => (
                gatehouse_core::clock::from_unix_micros(cur.created_at_micros),
                Some(cur.id),
            ),
            None => (None, None),
        };
        let rows = sqlx::query(
            "SELECT * FROM api_keys WHERE org_id = $1 \
             AND ($2::timestamptz IS NULL OR created_at < $2 \
                  OR (created_at = $2 AND ($3::uuid IS NULL OR id < $3))) \
             ORDER BY created_at DESC, id DESC LIMIT $4",
        )
        .bind(self.scope.org_id().as_uuid())
        .bind(before_t)
        .bind(before_id)
        .bind(i64::from(page.limit.get()) + 1)
        .fetch_all(&mut *self.tx)
        .await
        .map_err(map_err)?;
        let records = rows
            .iter()
            .map(api_key_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_overfetch(records, page.limit, |k| {
            Cursor::after(k.created_at, k.id)
        }))
    }

    async fn set_api_key_expiry(
        &mut self,
        id: Uuid,
        expires_at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE api_keys SET expires_at = $1 WHERE org_id = $2 AND id = $3")
            .bind(expires_at)
            .bind(self.scope.org_id().as_uuid())
            .bind(id)
            .execute(&mut *self.tx)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn revoke_api_key(&mut self, id: Uuid, at: OffsetDateTime) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at = $1 WHERE org_id = $2 AND id = $3 AND revoked_at IS NULL",
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

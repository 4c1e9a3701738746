//! Connectors and organisations' OAuth providers (issue 24), inside one organisation's scope under
//! row-level security: every statement names the scope's org id. The refresh job's search reads
//! ids across organisations under its declaration (`gatehouse.job = 'connectors'`).

use async_trait::async_trait;
use gatehouse_core::page::{Cursor, Page, PageRequest};
use gatehouse_core::store::{
    ConnectorQueue, ConnectorRow, ConnectorStatus, ConnectorStore, OAuthProviderRow,
    ensure_in_scope,
};
use gatehouse_core::{OrgId, StoreError};
use sqlx::postgres::PgRow;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::PostgresStore;
use crate::declare::{Named, declare};
use crate::errors::map_err;
use crate::rows::{get, u32_col, uuid_col};
use crate::tx::PgTenantTx;

fn provider_row(row: &PgRow) -> Result<OAuthProviderRow, StoreError> {
    Ok(OAuthProviderRow {
        org_id: OrgId::from_uuid(uuid_col(row, "org_id")?),
        id: uuid_col(row, "id")?,
        name: get(row, "name")?,
        issuer: get(row, "issuer")?,
        authorization_url: get(row, "authorization_url")?,
        token_url: get(row, "token_url")?,
        revocation_url: get(row, "revocation_url")?,
        userinfo_url: get(row, "userinfo_url")?,
        jwks_url: get(row, "jwks_url")?,
        client_id: get(row, "client_id")?,
        client_auth: get(row, "client_auth")?,
        scopes: get(row, "scopes")?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
    })
}

fn connector_row(row: &PgRow) -> Result<ConnectorRow, StoreError> {
    let status: String = get(row, "status")?;
    Ok(ConnectorRow {
        org_id: OrgId::from_uuid(uuid_col(row, "org_id")?),
        id: uuid_col(row, "id")?,
        user_id: uuid_col(row, "user_id")?,
        provider: get(row, "provider")?,
        status: ConnectorStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("connector status {status:?}")))?,
        scopes: get(row, "scopes")?,
        expires_at: get(row, "expires_at")?,
        refresh_due_at: get(row, "refresh_due_at")?,
        failures: u32_col(row, "failures")?,
        last_error: get(row, "last_error")?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
    })
}

#[async_trait]
impl ConnectorStore for PgTenantTx {
    async fn insert_oauth_provider(&mut self, p: &OAuthProviderRow) -> Result<(), StoreError> {
        ensure_in_scope(&self.scope, p.org_id)?;
        sqlx::query(
            "INSERT INTO oauth_providers (org_id, id, name, issuer, authorization_url, token_url, \
             revocation_url, userinfo_url, jwks_url, client_id, client_auth, scopes, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(p.org_id.as_uuid())
        .bind(p.id)
        .bind(&p.name)
        .bind(&p.issuer)
        .bind(&p.authorization_url)
        .bind(&p.token_url)
        .bind(&p.revocation_url)
        .bind(&p.userinfo_url)
        .bind(&p.jwks_url)
        .bind(&p.client_id)
        .bind(&p.client_auth)
        .bind(&p.scopes)
        .bind(p.created_at)
        .bind(p.updated_at)
        .execute(&mut *self.tx)
        .await
        .map(|_| ())
        .map_err(map_err)
    }

    async fn oauth_providers(&mut self) -> Result<Vec<OAuthProviderRow>, StoreError> {
        let org = self.scope.org_id();
        let rows = sqlx::query("SELECT * FROM oauth_providers WHERE org_id = $1 ORDER BY name")
            .bind(org.as_uuid())
            .fetch_all(&mut *self.tx)
            .await
            .map_err(map_err)?;
        rows.iter().map(provider_row).collect()
    }

    async fn oauth_provider(&mut self, name: &str) -> Result<Option<OAuthProviderRow>, StoreError> {
        let org = self.scope.org_id();
        let row = sqlx::query("SELECT * FROM oauth_providers WHERE org_id = $1 AND name = $2")
            .bind(org.as_uuid())
            .bind(name)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(map_err)?;
        row.as_ref().map(provider_row).transpose()
    }

    async fn delete_oauth_provider(&mut self, name: &str) -> Result<bool, StoreError> {
        let org = self.scope.org_id();
        let done = sqlx::query("DELETE FROM oauth_providers WHERE org_id = $1 AND name = $2")
            .bind(org.as_uuid())
            .bind(name)
            .execute(&mut *self.tx)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn oauth_provider_in_use(&mut self, keys: &[&str]) -> Result<bool, StoreError> {
        let org = self.scope.org_id();
        let keys: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM connectors WHERE org_id = $1 AND provider = ANY($2))",
        )
        .bind(org.as_uuid())
        .bind(&keys)
        .fetch_one(&mut *self.tx)
        .await
        .map_err(map_err)
    }

    async fn insert_connector(&mut self, r: &ConnectorRow) -> Result<(), StoreError> {
        ensure_in_scope(&self.scope, r.org_id)?;
        sqlx::query(
            "INSERT INTO connectors (org_id, id, user_id, provider, status, scopes, expires_at, \
             refresh_due_at, failures, last_error, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(r.org_id.as_uuid())
        .bind(r.id)
        .bind(r.user_id)
        .bind(&r.provider)
        .bind(r.status.as_str())
        .bind(&r.scopes)
        .bind(r.expires_at)
        .bind(r.refresh_due_at)
        .bind(i32::try_from(r.failures).unwrap_or(i32::MAX))
        .bind(&r.last_error)
        .bind(r.created_at)
        .bind(r.updated_at)
        .execute(&mut *self.tx)
        .await
        .map(|_| ())
        .map_err(map_err)
    }

    async fn lock_connector(&mut self, id: Uuid) -> Result<Option<ConnectorRow>, StoreError> {
        let org = self.scope.org_id();
        let row = sqlx::query("SELECT * FROM connectors WHERE org_id = $1 AND id = $2 FOR UPDATE")
            .bind(org.as_uuid())
            .bind(id)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(map_err)?;
        row.as_ref().map(connector_row).transpose()
    }

    async fn connector(&mut self, id: Uuid) -> Result<Option<ConnectorRow>, StoreError> {
        let org = self.scope.org_id();
        let row = sqlx::query("SELECT * FROM connectors WHERE org_id = $1 AND id = $2")
            .bind(org.as_uuid())
            .bind(id)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(map_err)?;
        row.as_ref().map(connector_row).transpose()
    }

    async fn connectors(
        &mut self,
        user: Option<Uuid>,
        page: PageRequest,
    ) -> Result<Page<ConnectorRow>, StoreError> {
        let org = self.scope.org_id();
        let (before_t, before_id) = match page.after {
            Some(cur) => (
                gatehouse_core::clock::from_unix_micros(cur.created_at_micros),
                Some(cur.id),
            ),
            None => (None, None),
        };
        let rows = sqlx::query(
            "SELECT * FROM connectors WHERE org_id = $1 AND ($5::uuid IS NULL OR user_id = $5) \
             AND ($2::timestamptz IS NULL OR created_at < $2 \
                  OR (created_at = $2 AND ($3::uuid IS NULL OR id < $3))) \
             ORDER BY created_at DESC, id DESC LIMIT $4",
        )
        .bind(org.as_uuid())
        .bind(before_t)
        .bind(before_id)
        .bind(i64::from(page.limit.get()) + 1)
        .bind(user)
        .fetch_all(&mut *self.tx)
        .await
        .map_err(map_err)?;
        let found = rows
            .iter()
            .map(connector_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_overfetch(found, page.limit, |r| {
            Cursor::after(r.created_at, r.id)
        }))
    }

    async fn update_connector(&mut self, r: &ConnectorRow) -> Result<bool, StoreError> {
        ensure_in_scope(&self.scope, r.org_id)?;
        let done = sqlx::query(
            "UPDATE connectors SET status = $1, scopes = $2, expires_at = $3, refresh_due_at = $4, \
             failures = $5, last_error = $6, updated_at = $7 WHERE org_id = $8 AND id = $9",
        )
        .bind(r.status.as_str())
        .bind(&r.scopes)
        .bind(r.expires_at)
        .bind(r.refresh_due_at)
        .bind(i32::try_from(r.failures).unwrap_or(i32::MAX))
        .bind(&r.last_error)
        .bind(r.updated_at)
        .bind(r.org_id.as_uuid())
        .bind(r.id)
        .execute(&mut *self.tx)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_connector(&mut self, id: Uuid) -> Result<bool, StoreError> {
        let org = self.scope.org_id();
        let done = sqlx::query("DELETE FROM connectors WHERE org_id = $1 AND id = $2")
            .bind(org.as_uuid())
            .bind(id)
            .execute(&mut *self.tx)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }
}

#[async_trait]
impl ConnectorQueue for PostgresStore {
    async fn connectors_due(
        &self,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<(OrgId, Uuid)>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        declare(&mut tx, Named::ConnectorJob).await?;
        let rows: Vec<(Uuid, Uuid)> = sqlx::query_as(
            "SELECT org_id, id FROM connectors WHERE status = 'active' \
             AND refresh_due_at IS NOT NULL AND refresh_due_at <= $1 \
             ORDER BY refresh_due_at LIMIT $2",
        )
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(rows
            .into_iter()
            .map(|(o, i)| (OrgId::from_uuid(o), i))
            .collect())
    }
}

//! Connectors and organisations' OAuth providers in SQLite (issue 24). Every statement names the
//! scope's organisation; the refresh job's search reads ids across organisations.

use async_trait::async_trait;
use gatehouse_core::page::{Cursor, Page, PageRequest};
use gatehouse_core::store::{
    ConnectorQueue, ConnectorRow, ConnectorStatus, ConnectorStore, OAuthProviderRow,
    ensure_in_scope,
};
use gatehouse_core::{OrgId, StoreError};
use sqlx::SqliteConnection;
use sqlx::sqlite::SqliteRow;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::SqliteStore;
use crate::errors::map_err;
use crate::rows::{get, micros, opt_time_col, time_col, u32_col, uuid_col};
use crate::tx::SqliteTenantTx;

fn provider_row(row: &SqliteRow) -> Result<OAuthProviderRow, StoreError> {
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
        created_at: time_col(row, "created_at")?,
        updated_at: time_col(row, "updated_at")?,
    })
}

fn connector_row(row: &SqliteRow) -> Result<ConnectorRow, StoreError> {
    let status: String = get(row, "status")?;
    Ok(ConnectorRow {
        org_id: OrgId::from_uuid(uuid_col(row, "org_id")?),
        id: uuid_col(row, "id")?,
        user_id: uuid_col(row, "user_id")?,
        provider: get(row, "provider")?,
        status: ConnectorStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("connector status {status:?}")))?,
        scopes: get(row, "scopes")?,
        expires_at: opt_time_col(row, "expires_at")?,
        refresh_due_at: opt_time_col(row, "refresh_due_at")?,
        failures: u32_col(row, "failures")?,
        last_error: get(row, "last_error")?,
        created_at: time_col(row, "created_at")?,
        updated_at: time_col(row, "updated_at")?,
    })
}

#[async_trait]
impl ConnectorStore for SqliteTenantTx {
    async fn insert_oauth_provider(&mut self, p: &OAuthProviderRow) -> Result<(), StoreError> {
        ensure_in_scope(&self.scope, p.org_id)?;
        let c: &mut SqliteConnection = &mut self.tx;
        sqlx::query(
            "INSERT INTO oauth_providers (org_id, id, name, issuer, authorization_url, token_url, \
             revocation_url, userinfo_url, jwks_url, client_id, client_auth, scopes, created_at, \
             updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        .bind(micros(p.created_at))
        .bind(micros(p.updated_at))
        .execute(c)
        .await
        .map(|_| ())
        .map_err(map_err)
    }

    async fn oauth_providers(&mut self) -> Result<Vec<OAuthProviderRow>, StoreError> {
        let org = self.scope.org_id();
        let c: &mut SqliteConnection = &mut self.tx;
        let rows = sqlx::query("SELECT * FROM oauth_providers WHERE org_id = ? ORDER BY name")
            .bind(org.as_uuid())
            .fetch_all(c)
            .await
            .map_err(map_err)?;
        rows.iter().map(provider_row).collect()
    }

    async fn oauth_provider(&mut self, name: &str) -> Result<Option<OAuthProviderRow>, StoreError> {
        let org = self.scope.org_id();
        let c: &mut SqliteConnection = &mut self.tx;
        let row = sqlx::query("SELECT * FROM oauth_providers WHERE org_id = ? AND name = ?")
            .bind(org.as_uuid())
            .bind(name)
            .fetch_optional(c)
            .await
            .map_err(map_err)?;
        row.as_ref().map(provider_row).transpose()
    }

    async fn delete_oauth_provider(&mut self, name: &str) -> Result<bool, StoreError> {
        let org = self.scope.org_id();
        let c: &mut SqliteConnection = &mut self.tx;
        let done = sqlx::query("DELETE FROM oauth_providers WHERE org_id = ? AND name = ?")
            .bind(org.as_uuid())
            .bind(name)
            .execute(c)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn oauth_provider_in_use(&mut self, keys: &[&str]) -> Result<bool, StoreError> {
        let org = self.scope.org_id();
        for key in keys {
            let c: &mut SqliteConnection = &mut self.tx;
            let found: Option<i64> = sqlx::query_scalar(
                "SELECT 1 FROM connectors WHERE org_id = ? AND provider = ? LIMIT 1",
            )
            .bind(org.as_uuid())
            .bind(*key)
            .fetch_optional(c)
            .await
            .map_err(map_err)?;
            if found.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn insert_connector(&mut self, r: &ConnectorRow) -> Result<(), StoreError> {
        ensure_in_scope(&self.scope, r.org_id)?;
        let c: &mut SqliteConnection = &mut self.tx;
        sqlx::query(
            "INSERT INTO connectors (org_id, id, user_id, provider, status, scopes, expires_at, \
             refresh_due_at, failures, last_error, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(r.org_id.as_uuid())
        .bind(r.id)
        .bind(r.user_id)
        .bind(&r.provider)
        .bind(r.status.as_str())
        .bind(&r.scopes)
        .bind(r.expires_at.map(micros))
        .bind(r.refresh_due_at.map(micros))
        .bind(i64::from(r.failures))
        .bind(&r.last_error)
        .bind(micros(r.created_at))
        .bind(micros(r.updated_at))
        .execute(c)
        .await
        .map(|_| ())
        .map_err(map_err)
    }

    async fn lock_connector(&mut self, id: Uuid) -> Result<Option<ConnectorRow>, StoreError> {
        // A write transaction here holds the database's one writer already.
        self.connector(id).await
    }

    async fn connector(&mut self, id: Uuid) -> Result<Option<ConnectorRow>, StoreError> {
        let org = self.scope.org_id();
        let c: &mut SqliteConnection = &mut self.tx;
        let row = sqlx::query("SELECT * FROM connectors WHERE org_id = ? AND id = ?")
            .bind(org.as_uuid())
            .bind(id)
            .fetch_optional(c)
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
        let c: &mut SqliteConnection = &mut self.tx;
        let (before_t, before_id) = match page.after {
            Some(cur) => (cur.created_at_micros, Some(cur.id)),
            None => (i64::MAX, None),
        };
        let rows = sqlx::query(
            "SELECT * FROM connectors WHERE org_id = ?1 AND (?5 IS NULL OR user_id = ?5) \
             AND (created_at < ?2 OR (created_at = ?2 AND (?3 IS NULL OR id < ?3))) \
             ORDER BY created_at DESC, id DESC LIMIT ?4",
        )
        .bind(org.as_uuid())
        .bind(before_t)
        .bind(before_id)
        .bind(i64::from(page.limit.get()) + 1)
        .bind(user)
        .fetch_all(c)
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
        let c: &mut SqliteConnection = &mut self.tx;
        let done = sqlx::query(
            "UPDATE connectors SET status = ?, scopes = ?, expires_at = ?, refresh_due_at = ?, \
             failures = ?, last_error = ?, updated_at = ? WHERE org_id = ? AND id = ?",
        )
        .bind(r.status.as_str())
        .bind(&r.scopes)
        .bind(r.expires_at.map(micros))
        .bind(r.refresh_due_at.map(micros))
        .bind(i64::from(r.failures))
        .bind(&r.last_error)
        .bind(micros(r.updated_at))
        .bind(r.org_id.as_uuid())
        .bind(r.id)
        .execute(c)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_connector(&mut self, id: Uuid) -> Result<bool, StoreError> {
        let org = self.scope.org_id();
        let c: &mut SqliteConnection = &mut self.tx;
        let done = sqlx::query("DELETE FROM connectors WHERE org_id = ? AND id = ?")
            .bind(org.as_uuid())
            .bind(id)
            .execute(c)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }
}

#[async_trait]
impl ConnectorQueue for SqliteStore {
    async fn connectors_due(
        &self,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<(OrgId, Uuid)>, StoreError> {
        let mut tx = self
            .pool
            .begin_with("BEGIN DEFERRED")
            .await
            .map_err(map_err)?;
        let c: &mut SqliteConnection = &mut tx;
        let rows: Vec<(Uuid, Uuid)> = sqlx::query_as(
            "SELECT org_id, id FROM connectors WHERE status = 'active' \
             AND refresh_due_at IS NOT NULL AND refresh_due_at <= ? \
             ORDER BY refresh_due_at LIMIT ?",
        )
        .bind(micros(now))
        .bind(i64::from(limit))
        .fetch_all(c)
        .await
        .map_err(map_err)?;
        Ok(rows
            .into_iter()
            .map(|(o, i)| (OrgId::from_uuid(o), i))
            .collect())
    }
}

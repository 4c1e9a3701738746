//! The app registry in PostgreSQL (core's `store/apps.rs`): a platform table without row-level
//! security, as it holds no organisation and no personal data.

use async_trait::async_trait;
use gatehouse_core::StoreError;
use gatehouse_core::store::{AppRecord, AppStore};
use sqlx::Row;
use sqlx::postgres::PgRow;
use uuid::Uuid;

use crate::errors::map_err;
use crate::tx::PgTx;

fn app(row: &PgRow) -> Result<AppRecord, StoreError> {
    Ok(AppRecord {
        id: row.try_get("id").map_err(map_err)?,
        name: row.try_get("name").map_err(map_err)?,
        audience: row.try_get("audience").map_err(map_err)?,
        created_at: row.try_get("created_at").map_err(map_err)?,
    })
}

#[async_trait]
impl AppStore for PgTx {
    async fn insert_app(&mut self, a: &AppRecord) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO apps (id, name, audience, created_at) VALUES ($1, $2, $3, $4)")
            .bind(a.id)
            .bind(&a.name)
            .bind(&a.audience)
            .bind(a.created_at)
            .execute(&mut *self.tx)
            .await
            .map(|_| ())
            .map_err(map_err)
    }

    async fn apps(&mut self) -> Result<Vec<AppRecord>, StoreError> {
        let found = sqlx::query("SELECT * FROM apps ORDER BY created_at, id")
            .fetch_all(&mut *self.tx)
            .await
            .map_err(map_err)?;
        found.iter().map(app).collect()
    }

    async fn app_by_audience(&mut self, audience: &str) -> Result<Option<AppRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM apps WHERE audience = $1")
            .bind(audience)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(map_err)?;
        row.as_ref().map(app).transpose()
    }

    async fn delete_app(&mut self, id: Uuid) -> Result<Option<AppRecord>, StoreError> {
        let row = sqlx::query("DELETE FROM apps WHERE id = $1 RETURNING *")
            .bind(id)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(map_err)?;
        row.as_ref().map(app).transpose()
    }
}

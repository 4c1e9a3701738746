//! The app registry in SQLite (core's `store/apps.rs`).

use async_trait::async_trait;
use gatehouse_core::StoreError;
use gatehouse_core::store::{AppRecord, AppStore};
use sqlx::sqlite::SqliteRow;
use uuid::Uuid;

use crate::errors::map_err;
use crate::rows::{get, micros, time_col, uuid_col};
use crate::tx::SqliteTx;

fn app(row: &SqliteRow) -> Result<AppRecord, StoreError> {
    Ok(AppRecord {
        id: uuid_col(row, "id")?,
        name: get(row, "name")?,
        audience: get(row, "audience")?,
        created_at: time_col(row, "created_at")?,
    })
}

#[async_trait]
impl AppStore for SqliteTx {
    async fn insert_app(&mut self, a: &AppRecord) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO apps (id, name, audience, created_at) VALUES (?, ?, ?, ?)")
            .bind(a.id)
            .bind(&a.name)
            .bind(&a.audience)
            .bind(micros(a.created_at))
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
        let row = sqlx::query("SELECT * FROM apps WHERE audience = ?")
            .bind(audience)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(map_err)?;
        row.as_ref().map(app).transpose()
    }

    async fn delete_app(&mut self, id: Uuid) -> Result<Option<AppRecord>, StoreError> {
        let row = sqlx::query("DELETE FROM apps WHERE id = ? RETURNING *")
            .bind(id)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(map_err)?;
        row.as_ref().map(app).transpose()
    }
}

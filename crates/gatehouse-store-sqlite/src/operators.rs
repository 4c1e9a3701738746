//! Platform operators in SQLite: platform rows, no statement names an organisation.

use async_trait::async_trait;
use gatehouse_core::StoreError;
use gatehouse_core::store::{OperatorRecord, OperatorStore};
use sqlx::SqliteConnection;
use sqlx::sqlite::SqliteRow;
use uuid::Uuid;

use crate::errors::{map_err, map_user_insert_err};
use crate::rows::{get, micros, time_col};
use crate::tx::SqliteTx;

fn operator(row: &SqliteRow) -> Result<OperatorRecord, StoreError> {
    Ok(OperatorRecord {
        id: get(row, "id")?,
        email: get(row, "email")?,
        name: get(row, "name")?,
        password_hash: get(row, "password_hash")?,
        created_at: time_col(row, "created_at")?,
    })
}

#[async_trait]
impl OperatorStore for SqliteTx {
    async fn insert_operator(&mut self, o: &OperatorRecord) -> Result<(), StoreError> {
        let c: &mut SqliteConnection = &mut self.tx;
        sqlx::query(
            "INSERT INTO operators (id, email, name, password_hash, created_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(o.id)
        .bind(&o.email)
        .bind(&o.name)
        .bind(&o.password_hash)
        .bind(micros(o.created_at))
        .execute(c)
        .await
        .map(|_| ())
        .map_err(map_user_insert_err)
    }

    async fn operator_by_email(
        &mut self,
        email: &str,
    ) -> Result<Option<OperatorRecord>, StoreError> {
        let c: &mut SqliteConnection = &mut self.tx;
        let row = sqlx::query("SELECT * FROM operators WHERE email = ?")
            .bind(email)
            .fetch_optional(c)
            .await
            .map_err(map_err)?;
        row.as_ref().map(operator).transpose()
    }

    async fn operator_by_id(&mut self, id: Uuid) -> Result<Option<OperatorRecord>, StoreError> {
        let c: &mut SqliteConnection = &mut self.tx;
        let row = sqlx::query("SELECT * FROM operators WHERE id = ?")
            .bind(id)
            .fetch_optional(c)
            .await
            .map_err(map_err)?;
        row.as_ref().map(operator).transpose()
    }

    async fn set_operator_password_hash(&mut self, id: Uuid, hash: &str) -> Result<(), StoreError> {
        let c: &mut SqliteConnection = &mut self.tx;
        sqlx::query("UPDATE operators SET password_hash = ? WHERE id = ?")
            .bind(hash)
            .bind(id)
            .execute(c)
            .await
            .map(|_| ())
            .map_err(map_err)
    }
}

//! Platform operators (platform rows, no row-level security).

use async_trait::async_trait;
use gatehouse_core::StoreError;
use gatehouse_core::store::{OperatorRecord, OperatorStore};
use sqlx::postgres::PgRow;
use uuid::Uuid;

use crate::errors::map_err;
use crate::rows::{get, time_col};
use crate::tx::PgTx;

fn operator(row: &PgRow) -> Result<OperatorRecord, StoreError> {
    Ok(OperatorRecord {
        id: get(row, "id")?,
        email: get(row, "email")?,
        name: get(row, "name")?,
        password_hash: get(row, "password_hash")?,
        created_at: time_col(row, "created_at")?,
    })
}

#[async_trait]
impl OperatorStore for PgTx {
    async fn insert_operator(&mut self, o: &OperatorRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO operators (id, email, name, password_hash, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(o.id)
        .bind(&o.email)
        .bind(&o.name)
        .bind(&o.password_hash)
        .bind(o.created_at)
        .execute(&mut *self.tx)
        .await
        .map(|_| ())
        .map_err(map_err)
    }

    async fn operator_by_email(
        &mut self,
        email: &str,
    ) -> Result<Option<OperatorRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM operators WHERE email = $1")
            .bind(email)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(map_err)?;
        row.as_ref().map(operator).transpose()
    }

    async fn operator_by_id(&mut self, id: Uuid) -> Result<Option<OperatorRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM operators WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(map_err)?;
        row.as_ref().map(operator).transpose()
    }

    async fn set_operator_password_hash(&mut self, id: Uuid, hash: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE operators SET password_hash = $1 WHERE id = $2")
            .bind(hash)
            .bind(id)
            .execute(&mut *self.tx)
            .await
            .map(|_| ())
            .map_err(map_err)
    }
}

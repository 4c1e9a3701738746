//! Platform operators (platform rows under row-level security: a statement sees the operator it
//! names by id or address).

use async_trait::async_trait;
use gatehouse_core::StoreError;
use gatehouse_core::store::{OperatorFactor, OperatorRecord, OperatorStore};
use sqlx::postgres::PgRow;
use uuid::Uuid;

use crate::declare::{Named, declare};
use crate::errors::map_err;
use crate::rows::{get, opt_time_col, time_col};
use crate::tx::PgTx;

fn operator(row: &PgRow) -> Result<OperatorRecord, StoreError> {
    Ok(OperatorRecord {
        id: get(row, "id")?,
        email: get(row, "email")?,
        name: get(row, "name")?,
        password_hash: get(row, "password_hash")?,
        created_at: time_col(row, "created_at")?,
        totp: factor(row)?,
    })
}

fn factor(row: &PgRow) -> Result<Option<OperatorFactor>, StoreError> {
    let envelope: Option<Vec<u8>> = get(row, "totp_envelope")?;
    let confirmed_at = opt_time_col(row, "totp_confirmed_at")?;
    let last: i64 = get(row, "totp_last_step")?;
    Ok(match (envelope, confirmed_at) {
        (Some(envelope), Some(confirmed_at)) => Some(OperatorFactor {
            envelope,
            confirmed_at,
            last_step: u64::try_from(last)
                .map_err(|_| StoreError::Corrupt("totp_last_step".into()))?,
        }),
        (None, None) => None,
        _ => return Err(StoreError::Corrupt("operators.totp_*".into())),
    })
}

/// TOTP steps are `u64` in the domain and a signed 64-bit integer here: a step past `i64::MAX`
/// is refused, never wrapped.
fn step(s: u64) -> Result<i64, StoreError> {
    i64::try_from(s).map_err(|_| StoreError::Backend(format!("totp step {s} out of range")))
}

#[async_trait]
impl OperatorStore for PgTx {
    async fn insert_operator(&mut self, o: &OperatorRecord) -> Result<(), StoreError> {
        declare(&mut self.tx, Named::Subject(o.id)).await?;
        sqlx::query(
            "INSERT INTO operators (id, email, name, password_hash, created_at, totp_envelope, \
             totp_confirmed_at, totp_last_step) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(o.id)
        .bind(&o.email)
        .bind(&o.name)
        .bind(&o.password_hash)
        .bind(o.created_at)
        .bind(o.totp.as_ref().map(|f| f.envelope.clone()))
        .bind(o.totp.as_ref().map(|f| f.confirmed_at))
        .bind(step(o.totp.as_ref().map_or(0, |f| f.last_step))?)
        .execute(&mut *self.tx)
        .await
        .map(|_| ())
        .map_err(map_err)
    }

    async fn operator_by_email(
        &mut self,
        email: &str,
    ) -> Result<Option<OperatorRecord>, StoreError> {
        declare(&mut self.tx, Named::Email(email)).await?;
        let row = sqlx::query("SELECT * FROM operators WHERE email = $1")
            .bind(email)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(map_err)?;
        row.as_ref().map(operator).transpose()
    }

    async fn operator_by_id(&mut self, id: Uuid) -> Result<Option<OperatorRecord>, StoreError> {
        declare(&mut self.tx, Named::Subject(id)).await?;
        let row = sqlx::query("SELECT * FROM operators WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(map_err)?;
        row.as_ref().map(operator).transpose()
    }

    async fn set_operator_password_hash(&mut self, id: Uuid, hash: &str) -> Result<(), StoreError> {
        declare(&mut self.tx, Named::Subject(id)).await?;
        sqlx::query("UPDATE operators SET password_hash = $1 WHERE id = $2")
            .bind(hash)
            .bind(id)
            .execute(&mut *self.tx)
            .await
            .map(|_| ())
            .map_err(map_err)
    }

    async fn set_operator_totp(
        &mut self,
        id: Uuid,
        f: Option<&OperatorFactor>,
    ) -> Result<bool, StoreError> {
        declare(&mut self.tx, Named::Subject(id)).await?;
        let done = sqlx::query(
            "UPDATE operators SET totp_envelope = $1, totp_confirmed_at = $2, totp_last_step = $3 \
             WHERE id = $4",
        )
        .bind(f.map(|f| f.envelope.clone()))
        .bind(f.map(|f| f.confirmed_at))
        .bind(step(f.map_or(0, |f| f.last_step))?)
        .bind(id)
        .execute(&mut *self.tx)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn use_operator_totp_step(&mut self, id: Uuid, s: u64) -> Result<bool, StoreError> {
        declare(&mut self.tx, Named::Subject(id)).await?;
        let done = sqlx::query(
            "UPDATE operators SET totp_last_step = $1 \
             WHERE id = $2 AND totp_envelope IS NOT NULL AND totp_last_step < $1",
        )
        .bind(step(s)?)
        .bind(id)
        .execute(&mut *self.tx)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }
}

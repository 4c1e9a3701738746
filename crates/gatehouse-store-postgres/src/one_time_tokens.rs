//! One-time tokens (email verification, password reset, ...). Platform rows under row-level
//! security: a statement sees the token whose digest it declares, or its subject's tokens.

use async_trait::async_trait;
use gatehouse_core::StoreError;
use gatehouse_core::store::{OneTimeTokenRecord, OneTimeTokenStore, TokenPurpose};
use sqlx::postgres::PgRow;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::declare::{Named, declare};
use crate::errors::map_err;
use crate::rows::{get, uuid_col};
use crate::tx::PgTx;

fn one_time_token(row: &PgRow) -> Result<OneTimeTokenRecord, StoreError> {
    let purpose: String = get(row, "purpose")?;
    Ok(OneTimeTokenRecord {
        digest: get(row, "digest")?,
        purpose: TokenPurpose::parse(&purpose)
            .ok_or_else(|| StoreError::Corrupt(format!("token purpose {purpose:?}")))?,
        subject_id: uuid_col(row, "subject_id")?,
        detail: get(row, "detail")?,
        created_at: get(row, "created_at")?,
        expires_at: get(row, "expires_at")?,
        used_at: get(row, "used_at")?,
    })
}

#[async_trait]
impl OneTimeTokenStore for PgTx {
    async fn insert_one_time_token(&mut self, t: &OneTimeTokenRecord) -> Result<(), StoreError> {
        declare(&mut self.tx, Named::Digest(&t.digest)).await?;
        sqlx::query(
            "INSERT INTO one_time_tokens (digest, purpose, subject_id, detail, created_at, expires_at, \
             used_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&t.digest)
        .bind(t.purpose.as_str())
        .bind(t.subject_id)
        .bind(&t.detail)
        .bind(t.created_at)
        .bind(t.expires_at)
        .bind(t.used_at)
        .execute(&mut *self.tx)
        .await
        .map(|_| ())
        .map_err(map_err)
    }

    async fn one_time_token(
        &mut self,
        digest: &[u8],
    ) -> Result<Option<OneTimeTokenRecord>, StoreError> {
        declare(&mut self.tx, Named::Digest(digest)).await?;
        let row = sqlx::query("SELECT * FROM one_time_tokens WHERE digest = $1")
            .bind(digest)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(map_err)?;
        row.as_ref().map(one_time_token).transpose()
    }

    async fn consume_one_time_token(
        &mut self,
        digest: &[u8],
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        declare(&mut self.tx, Named::Digest(digest)).await?;
        let done = sqlx::query(
            "UPDATE one_time_tokens SET used_at = $1 WHERE digest = $2 AND used_at IS NULL",
        )
        .bind(at)
        .bind(digest)
        .execute(&mut *self.tx)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_tokens_of(&mut self, subject: Uuid) -> Result<u64, StoreError> {
        declare(&mut self.tx, Named::Subject(subject)).await?;
        let done = sqlx::query("DELETE FROM one_time_tokens WHERE subject_id = $1")
            .bind(subject)
            .execute(&mut *self.tx)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected())
    }

    async fn consume_tokens_of(
        &mut self,
        subject: Uuid,
        purpose: TokenPurpose,
        at: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        declare(&mut self.tx, Named::Subject(subject)).await?;
        let done = sqlx::query(
            "UPDATE one_time_tokens SET used_at = $1 \
             WHERE subject_id = $2 AND purpose = $3 AND used_at IS NULL",
        )
        .bind(at)
        .bind(subject)
        .bind(purpose.as_str())
        .execute(&mut *self.tx)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected())
    }
}

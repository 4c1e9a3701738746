//! One-time tokens in SQLite (email verification, password reset, ...). Platform rows, no
//! statement names an organisation.

use async_trait::async_trait;
use gatehouse_core::StoreError;
use gatehouse_core::store::{OneTimeTokenRecord, OneTimeTokenStore, TokenPurpose};
use sqlx::SqliteConnection;
use sqlx::sqlite::SqliteRow;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::errors::map_err;
use crate::rows::{get, micros, opt_time_col, time_col, uuid_col};
use crate::tx::SqliteTx;

fn one_time_token(row: &SqliteRow) -> Result<OneTimeTokenRecord, StoreError> {
    let purpose: String = get(row, "purpose")?;
    Ok(OneTimeTokenRecord {
        digest: get(row, "digest")?,
        purpose: TokenPurpose::parse(&purpose)
            .ok_or_else(|| StoreError::Corrupt(format!("token purpose {purpose:?}")))?,
        subject_id: uuid_col(row, "subject_id")?,
        detail: get(row, "detail")?,
        created_at: time_col(row, "created_at")?,
        expires_at: time_col(row, "expires_at")?,
        used_at: opt_time_col(row, "used_at")?,
    })
}

#[async_trait]
impl OneTimeTokenStore for SqliteTx {
    async fn insert_one_time_token(&mut self, t: &OneTimeTokenRecord) -> Result<(), StoreError> {
        let c: &mut SqliteConnection = &mut self.tx;
        sqlx::query(
            "INSERT INTO one_time_tokens (digest, purpose, subject_id, detail, created_at, expires_at, \
             used_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&t.digest)
        .bind(t.purpose.as_str())
        .bind(t.subject_id)
        .bind(&t.detail)
        .bind(micros(t.created_at))
        .bind(micros(t.expires_at))
        .bind(t.used_at.map(micros))
        .execute(c)
        .await
        .map(|_| ())
        .map_err(map_err)
    }

    async fn one_time_token(
        &mut self,
        digest: &[u8],
    ) -> Result<Option<OneTimeTokenRecord>, StoreError> {
        let c: &mut SqliteConnection = &mut self.tx;
        let row = sqlx::query("SELECT * FROM one_time_tokens WHERE digest = ?")
            .bind(digest)
            .fetch_optional(c)
            .await
            .map_err(map_err)?;
        row.as_ref().map(one_time_token).transpose()
    }

    async fn consume_one_time_token(
        &mut self,
        digest: &[u8],
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let c: &mut SqliteConnection = &mut self.tx;
        let done = sqlx::query(
            "UPDATE one_time_tokens SET used_at = ? WHERE digest = ? AND used_at IS NULL",
        )
        .bind(micros(at))
        .bind(digest)
        .execute(c)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_tokens_of(&mut self, subject: Uuid) -> Result<u64, StoreError> {
        let c: &mut SqliteConnection = &mut self.tx;
        let done = sqlx::query("DELETE FROM one_time_tokens WHERE subject_id = ?")
            .bind(subject)
            .execute(c)
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
        let c: &mut SqliteConnection = &mut self.tx;
        let done = sqlx::query(
            "UPDATE one_time_tokens SET used_at = ? \
             WHERE subject_id = ? AND purpose = ? AND used_at IS NULL",
        )
        .bind(micros(at))
        .bind(subject)
        .bind(purpose.as_str())
        .execute(c)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected())
    }
}

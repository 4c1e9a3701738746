//! Second factors: TOTP factors and recovery codes. Platform rows under row-level security: every
//! statement declares the person whose factor it is, and no statement names an organisation.

use async_trait::async_trait;
use gatehouse_core::store::{SecondFactorStore, TotpFactorRecord};
use gatehouse_core::{StoreError, UserId};
use sqlx::PgConnection;
use sqlx::postgres::PgRow;
use time::OffsetDateTime;

use crate::declare::{Named, declare};
use crate::errors::map_err;
use crate::rows::{get, uuid_col};
use crate::tx::PgTx;

/// TOTP steps are `u64` in the domain and bigint (i64) here: a step past `i64::MAX` is refused,
/// never wrapped.
fn step(s: u64) -> Result<i64, StoreError> {
    i64::try_from(s).map_err(|_| StoreError::Backend(format!("totp step {s} out of range")))
}

fn totp_factor(row: &PgRow) -> Result<TotpFactorRecord, StoreError> {
    let last: i64 = get(row, "last_step")?;
    Ok(TotpFactorRecord {
        user_id: UserId::from_uuid(uuid_col(row, "user_id")?),
        envelope: get(row, "envelope")?,
        created_at: get(row, "created_at")?,
        confirmed_at: get(row, "confirmed_at")?,
        last_step: u64::try_from(last).map_err(|_| StoreError::Corrupt("last_step".into()))?,
    })
}

#[async_trait]
impl SecondFactorStore for PgTx {
    async fn totp_factor(&mut self, user: UserId) -> Result<Option<TotpFactorRecord>, StoreError> {
        declare(&mut self.tx, Named::Subject(user.as_uuid())).await?;
        let row = sqlx::query("SELECT * FROM totp_factors WHERE user_id = $1")
            .bind(user.as_uuid())
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(map_err)?;
        row.as_ref().map(totp_factor).transpose()
    }

    async fn put_pending_totp(&mut self, f: &TotpFactorRecord) -> Result<(), StoreError> {
        declare(&mut self.tx, Named::Subject(f.user_id.as_uuid())).await?;
        if f.confirmed_at.is_some() {
            return Err(StoreError::Backend(
                "refused: a pending TOTP factor cannot already be confirmed".into(),
            ));
        }
        // An unconfirmed factor is replaced; a confirmed one is left alone and reported.
        let done = sqlx::query(
            "INSERT INTO totp_factors (user_id, envelope, created_at, confirmed_at, last_step) \
             VALUES ($1, $2, $3, NULL, $4) ON CONFLICT (user_id) DO UPDATE SET \
             envelope = excluded.envelope, created_at = excluded.created_at, \
             last_step = excluded.last_step WHERE totp_factors.confirmed_at IS NULL",
        )
        .bind(f.user_id.as_uuid())
        .bind(&f.envelope)
        .bind(f.created_at)
        .bind(step(f.last_step)?)
        .execute(&mut *self.tx)
        .await
        .map_err(map_err)?;
        if done.rows_affected() == 1 {
            Ok(())
        } else {
            Err(StoreError::Duplicate)
        }
    }

    async fn confirm_totp(
        &mut self,
        user: UserId,
        seed: &[u8],
        s: u64,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        declare(&mut self.tx, Named::Subject(user.as_uuid())).await?;
        let done = sqlx::query(
            "UPDATE totp_factors SET confirmed_at = $1, last_step = $2 \
             WHERE user_id = $3 AND confirmed_at IS NULL AND envelope = $4",
        )
        .bind(at)
        .bind(step(s)?)
        .bind(user.as_uuid())
        .bind(seed)
        .execute(&mut *self.tx)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn use_totp_step(&mut self, user: UserId, s: u64) -> Result<bool, StoreError> {
        declare(&mut self.tx, Named::Subject(user.as_uuid())).await?;
        let s = step(s)?;
        // One conditional statement: of two uses of the same step, only one can match.
        let done = sqlx::query(
            "UPDATE totp_factors SET last_step = $1 \
             WHERE user_id = $2 AND confirmed_at IS NOT NULL AND last_step < $1",
        )
        .bind(s)
        .bind(user.as_uuid())
        .execute(&mut *self.tx)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_totp(&mut self, user: UserId) -> Result<bool, StoreError> {
        declare(&mut self.tx, Named::Subject(user.as_uuid())).await?;
        let c: &mut PgConnection = &mut self.tx;
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
            .bind(user.as_uuid())
            .execute(&mut *c)
            .await
            .map_err(map_err)?;
        let done = sqlx::query("DELETE FROM totp_factors WHERE user_id = $1")
            .bind(user.as_uuid())
            .execute(&mut *c)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn replace_recovery_codes(
        &mut self,
        user: UserId,
        digests: &[Vec<u8>],
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        declare(&mut self.tx, Named::Subject(user.as_uuid())).await?;
        let c: &mut PgConnection = &mut self.tx;
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
            .bind(user.as_uuid())
            .execute(&mut *c)
            .await
            .map_err(map_err)?;
        for digest in digests {
            sqlx::query(
                "INSERT INTO recovery_codes (digest, user_id, created_at) VALUES ($1, $2, $3)",
            )
            .bind(digest)
            .bind(user.as_uuid())
            .bind(at)
            .execute(&mut *c)
            .await
            .map_err(map_err)?;
        }
        Ok(())
    }

    async fn use_recovery_code(
        &mut self,
        user: UserId,
        digest: &[u8],
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        declare(&mut self.tx, Named::Subject(user.as_uuid())).await?;
        let done = sqlx::query(
            "UPDATE recovery_codes SET used_at = $1 WHERE digest = $2 AND user_id = $3 AND used_at IS NULL",
        )
        .bind(at)
        .bind(digest)
        .bind(user.as_uuid())
        .execute(&mut *self.tx)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn recovery_codes_left(&mut self, user: UserId) -> Result<u32, StoreError> {
        declare(&mut self.tx, Named::Subject(user.as_uuid())).await?;
        let (n,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL",
        )
        .bind(user.as_uuid())
        .fetch_one(&mut *self.tx)
        .await
        .map_err(map_err)?;
        u32::try_from(n).map_err(|_| StoreError::Corrupt("recovery code count".into()))
    }

    async fn unused_recovery_codes(&mut self, user: UserId) -> Result<Vec<Vec<u8>>, StoreError> {
        declare(&mut self.tx, Named::Subject(user.as_uuid())).await?;
        sqlx::query_scalar(
            "SELECT digest FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL ORDER BY digest",
        )
        .bind(user.as_uuid())
        .fetch_all(&mut *self.tx)
        .await
        .map_err(map_err)
    }
}

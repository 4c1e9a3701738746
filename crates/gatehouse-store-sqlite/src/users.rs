//! Users in SQLite: platform rows, no statement names an organisation.

use async_trait::async_trait;
use gatehouse_core::store::{MembershipRecord, PasswordHashSample, UserRecord, UserStore};
use gatehouse_core::{StoreError, UserId};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};
use time::OffsetDateTime;

use crate::errors::{map_err, map_user_insert_err};
use crate::rows::{self, micros, opt_time_col, time_col, uuid_col};
use crate::tx::SqliteTx;

fn user(row: &SqliteRow) -> Result<UserRecord, StoreError> {
    Ok(UserRecord {
        id: UserId::from_uuid(uuid_col(row, "id")?),
        email: row.try_get("email").map_err(map_err)?,
        name: row.try_get("name").map_err(map_err)?,
        password_hash: row.try_get("password_hash").map_err(map_err)?,
        created_at: time_col(row, "created_at")?,
        email_verified_at: opt_time_col(row, "email_verified_at")?,
        disabled_at: opt_time_col(row, "disabled_at")?,
    })
}

#[async_trait]
impl UserStore for SqliteTx {
    async fn insert_user(&mut self, u: &UserRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO users (id, email, name, password_hash, created_at, email_verified_at, \
             disabled_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(u.id.as_uuid())
        .bind(&u.email)
        .bind(&u.name)
        .bind(&u.password_hash)
        .bind(micros(u.created_at))
        .bind(u.email_verified_at.map(micros))
        .bind(u.disabled_at.map(micros))
        .execute(&mut *self.tx)
        .await
        .map(|_| ())
        .map_err(map_user_insert_err)
    }

    async fn user_by_email(&mut self, email: &str) -> Result<Option<UserRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM users WHERE email = ?")
            .bind(email)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(map_err)?;
        row.as_ref().map(user).transpose()
    }

    async fn user_by_id(&mut self, id: UserId) -> Result<Option<UserRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM users WHERE id = ?")
            .bind(id.as_uuid())
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(map_err)?;
        row.as_ref().map(user).transpose()
    }

    async fn delete_user(&mut self, id: UserId) -> Result<bool, StoreError> {
        let c: &mut SqliteConnection = &mut self.tx;
        let done = sqlx::query("DELETE FROM users WHERE id = ?")
            .bind(id.as_uuid())
            .execute(c)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_password_hash(&mut self, user: UserId, hash: &str) -> Result<(), StoreError> {
        let c: &mut SqliteConnection = &mut self.tx;
        sqlx::query("UPDATE users SET password_hash = ? WHERE id = ?")
            .bind(hash)
            .bind(user.as_uuid())
            .execute(c)
            .await
            .map(|_| ())
            .map_err(map_err)
    }

    async fn set_email_verified(
        &mut self,
        user: UserId,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let c: &mut SqliteConnection = &mut self.tx;
        let done = sqlx::query(
            "UPDATE users SET email_verified_at = ? WHERE id = ? AND email_verified_at IS NULL",
        )
        .bind(micros(at))
        .bind(user.as_uuid())
        .execute(c)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_user_disabled(
        &mut self,
        user: UserId,
        at: Option<OffsetDateTime>,
    ) -> Result<bool, StoreError> {
        let c: &mut SqliteConnection = &mut self.tx;
        // Only a change counts: disabling keeps the first time, enabling an enabled account is
        // no change.
        let done = sqlx::query(
            "UPDATE users SET disabled_at = ?1 WHERE id = ?2 \
             AND ((?1 IS NULL) <> (disabled_at IS NULL))",
        )
        .bind(at.map(micros))
        .bind(user.as_uuid())
        .execute(c)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn memberships_of_user(
        &mut self,
        user: UserId,
    ) -> Result<Vec<MembershipRecord>, StoreError> {
        let c: &mut SqliteConnection = &mut self.tx;
        let found =
            sqlx::query("SELECT * FROM memberships WHERE user_id = ? ORDER BY created_at, org_id")
                .bind(user.as_uuid())
                .fetch_all(c)
                .await
                .map_err(map_err)?;
        found.iter().map(rows::membership).collect()
    }

    async fn password_hash_census(
        &mut self,
        current: &str,
        max_accounts: u32,
        max_listed: u32,
    ) -> Result<PasswordHashSample, StoreError> {
        let c: &mut SqliteConnection = &mut self.tx;
        let (counted,): (i64,) =
            sqlx::query_as("SELECT count(*) FROM (SELECT 1 FROM users ORDER BY id LIMIT ?)")
                .bind(i64::from(max_accounts) + 1)
                .fetch_one(&mut *c)
                .await
                .map_err(map_err)?;
        let listed: Vec<(String,)> = sqlx::query_as(
            "SELECT password_hash FROM (SELECT password_hash FROM users ORDER BY id LIMIT ?1) \
             WHERE substr(password_hash, 1, length(?2) + 1) <> ?2 || '$' \
             LIMIT ?3",
        )
        .bind(i64::from(max_accounts))
        .bind(current)
        .bind(i64::from(max_listed) + 1)
        .fetch_all(c)
        .await
        .map_err(map_err)?;
        Ok(PasswordHashSample::from_reads(
            u64::try_from(counted).unwrap_or(0),
            max_accounts,
            listed.into_iter().map(|(h,)| h).collect(),
            max_listed,
        ))
    }
}

//! Users (platform rows under row-level security: a statement sees the account it names by id or
//! address), and the memberships a user may read across organisations.

use async_trait::async_trait;
use gatehouse_core::store::{MembershipRecord, PasswordHashSample, UserRecord, UserStore};
use gatehouse_core::{StoreError, UserId};
use sqlx::Row;
use sqlx::postgres::PgRow;
use time::OffsetDateTime;

use crate::declare::{Named, declare};
use crate::errors::map_err;
use crate::rows::{self, uuid_col};
use crate::tx::PgTx;

fn user(row: &PgRow) -> Result<UserRecord, StoreError> {
    Ok(UserRecord {
        id: UserId::from_uuid(uuid_col(row, "id")?),
        email: row.try_get("email").map_err(map_err)?,
        name: row.try_get("name").map_err(map_err)?,
        password_hash: row.try_get("password_hash").map_err(map_err)?,
        created_at: row.try_get("created_at").map_err(map_err)?,
        email_verified_at: row.try_get("email_verified_at").map_err(map_err)?,
        disabled_at: row.try_get("disabled_at").map_err(map_err)?,
    })
}

#[async_trait]
impl UserStore for PgTx {
    async fn insert_user(&mut self, u: &UserRecord) -> Result<(), StoreError> {
        declare(&mut self.tx, Named::Subject(u.id.as_uuid())).await?;
        sqlx::query(
            "INSERT INTO users (id, email, name, password_hash, created_at, email_verified_at, \
             disabled_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(u.id.as_uuid())
        .bind(&u.email)
        .bind(&u.name)
        .bind(&u.password_hash)
        .bind(u.created_at)
        .bind(u.email_verified_at)
        .bind(u.disabled_at)
        .execute(&mut *self.tx)
        .await
        .map(|_| ())
        .map_err(map_err)
    }

    async fn user_by_email(&mut self, email: &str) -> Result<Option<UserRecord>, StoreError> {
        declare(&mut self.tx, Named::Email(email)).await?;
        let row = sqlx::query("SELECT * FROM users WHERE email = $1")
            .bind(email)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(map_err)?;
        row.as_ref().map(user).transpose()
    }

    async fn user_by_id(&mut self, id: UserId) -> Result<Option<UserRecord>, StoreError> {
        declare(&mut self.tx, Named::Subject(id.as_uuid())).await?;
        let row = sqlx::query("SELECT * FROM users WHERE id = $1")
            .bind(id.as_uuid())
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(map_err)?;
        row.as_ref().map(user).transpose()
    }

    async fn delete_user(&mut self, id: UserId) -> Result<bool, StoreError> {
        // Memberships, factor and codes go by ON DELETE CASCADE (referential actions are not
        // filtered by row-level security).
        declare(&mut self.tx, Named::Subject(id.as_uuid())).await?;
        let done = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(id.as_uuid())
            .execute(&mut *self.tx)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_password_hash(&mut self, user: UserId, hash: &str) -> Result<(), StoreError> {
        declare(&mut self.tx, Named::Subject(user.as_uuid())).await?;
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(hash)
            .bind(user.as_uuid())
            .execute(&mut *self.tx)
            .await
            .map(|_| ())
            .map_err(map_err)
    }

    async fn set_email_verified(
        &mut self,
        user: UserId,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        declare(&mut self.tx, Named::Subject(user.as_uuid())).await?;
        let done = sqlx::query(
            "UPDATE users SET email_verified_at = $1 WHERE id = $2 AND email_verified_at IS NULL",
        )
        .bind(at)
        .bind(user.as_uuid())
        .execute(&mut *self.tx)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_user_disabled(
        &mut self,
        user: UserId,
        at: Option<OffsetDateTime>,
    ) -> Result<bool, StoreError> {
        declare(&mut self.tx, Named::Subject(user.as_uuid())).await?;
        // Only a change counts: disabling keeps the first time, enabling an enabled account is
        // no change.
        let done = sqlx::query(
            "UPDATE users SET disabled_at = $1 WHERE id = $2 \
             AND (($1::timestamptz IS NULL) <> (disabled_at IS NULL))",
        )
        .bind(at)
        .bind(user.as_uuid())
        .execute(&mut *self.tx)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn memberships_of_user(
        &mut self,
        user: UserId,
    ) -> Result<Vec<MembershipRecord>, StoreError> {
        // The own_memberships policy admits rows naming the user this transaction declares.
        declare(&mut self.tx, Named::MembershipsOf(user.as_uuid())).await?;
        let found =
            sqlx::query("SELECT * FROM memberships WHERE user_id = $1 ORDER BY created_at, org_id")
                .bind(user.as_uuid())
                .fetch_all(&mut *self.tx)
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
        // The census policy (migration 0017) shows this job every account.
        declare(&mut self.tx, Named::PasswordCensusJob).await?;
        let (counted,): (i64,) =
            sqlx::query_as("SELECT count(*) FROM (SELECT 1 FROM users ORDER BY id LIMIT $1) s")
                .bind(i64::from(max_accounts) + 1)
                .fetch_one(&mut *self.tx)
                .await
                .map_err(map_err)?;
        let listed: Vec<(String,)> = sqlx::query_as(
            "SELECT password_hash FROM (SELECT password_hash FROM users ORDER BY id LIMIT $1) s \
             WHERE substr(password_hash, 1, length($2) + 1) <> $2 || '$' \
             LIMIT $3",
        )
        .bind(i64::from(max_accounts))
        .bind(current)
        .bind(i64::from(max_listed) + 1)
        .fetch_all(&mut *self.tx)
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

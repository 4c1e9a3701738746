//! Memberships in SQLite, inside one organisation's scope: every statement names the scope's
//! `org_id`. A user's memberships across organisations are read by `users.rs`.

use async_trait::async_trait;
use gatehouse_core::page::{Cursor, Page, PageRequest};
use gatehouse_core::store::{MemberStore, MembershipRecord, Role, ensure_in_scope};
use gatehouse_core::{StoreError, UserId};
use sqlx::SqliteConnection;
use uuid::Uuid;

use crate::errors::map_err;
use crate::rows::{self, get, micros};
use crate::tx::SqliteTenantTx;

#[async_trait]
impl MemberStore for SqliteTenantTx {
    async fn insert_membership(&mut self, m: &MembershipRecord) -> Result<(), StoreError> {
        ensure_in_scope(&self.scope, m.org_id)?;
        sqlx::query(
            "INSERT INTO memberships (org_id, user_id, role, created_at) VALUES (?, ?, ?, ?)",
        )
        .bind(self.scope.org_id().as_uuid())
        .bind(m.user_id.as_uuid())
        .bind(m.role.as_str())
        .bind(micros(m.created_at))
        .execute(&mut *self.tx)
        .await
        .map(|_| ())
        .map_err(map_err)
    }

    async fn membership(&mut self, user: UserId) -> Result<Option<MembershipRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM memberships WHERE org_id = ? AND user_id = ?")
            .bind(self.scope.org_id().as_uuid())
            .bind(user.as_uuid())
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(map_err)?;
        row.as_ref().map(rows::membership).transpose()
    }

    async fn list_memberships(
        &mut self,
        page: PageRequest,
    ) -> Result<Page<MembershipRecord>, StoreError> {
        let (after_t, after_id) = match page.after {
            Some(c) => (c.created_at_micros, Some(c.id)),
            None => (i64::MIN, None),
        };
        let found = sqlx::query(
            "SELECT * FROM memberships WHERE org_id = ?1 \
             AND (created_at > ?2 OR (created_at = ?2 AND (?3 IS NULL OR user_id > ?3))) \
             ORDER BY created_at, user_id LIMIT ?4",
        )
        .bind(self.scope.org_id().as_uuid())
        .bind(after_t)
        .bind(after_id)
        .bind(i64::from(page.limit.get()) + 1)
        .fetch_all(&mut *self.tx)
        .await
        .map_err(map_err)?;
        let records = found
            .iter()
            .map(rows::membership)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_overfetch(records, page.limit, |m| {
            Cursor::after(m.created_at, m.user_id.as_uuid())
        }))
    }

    async fn set_member_role(&mut self, user: UserId, role: &Role) -> Result<bool, StoreError> {
        let org = self.scope.org_id();
        let c: &mut SqliteConnection = &mut self.tx;
        let done = sqlx::query("UPDATE memberships SET role = ? WHERE org_id = ? AND user_id = ?")
            .bind(role.as_str())
            .bind(org.as_uuid())
            .bind(user.as_uuid())
            .execute(c)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_sessions_ended(
        &mut self,
        user: UserId,
        at: time::OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let org = self.scope.org_id();
        let c: &mut SqliteConnection = &mut self.tx;
        let done = sqlx::query(
            "UPDATE memberships SET sessions_ended_at = ? WHERE org_id = ? AND user_id = ?",
        )
        .bind(micros(at))
        .bind(org.as_uuid())
        .bind(user.as_uuid())
        .execute(c)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_membership(&mut self, user: UserId) -> Result<bool, StoreError> {
        let org = self.scope.org_id();
        let c: &mut SqliteConnection = &mut self.tx;
        let done = sqlx::query("DELETE FROM memberships WHERE org_id = ? AND user_id = ?")
            .bind(org.as_uuid())
            .bind(user.as_uuid())
            .execute(c)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn lock_owners(&mut self) -> Result<Vec<UserId>, StoreError> {
        let org = self.scope.org_id();
        let c: &mut SqliteConnection = &mut self.tx;
        // SQLite's single writer (BEGIN IMMEDIATE) already excludes concurrent changes.
        let rows =
            sqlx::query("SELECT user_id FROM memberships WHERE org_id = ? AND role = 'owner'")
                .bind(org.as_uuid())
                .fetch_all(c)
                .await
                .map_err(map_err)?;
        rows.iter()
            .map(|r| get::<Uuid>(r, "user_id").map(UserId::from_uuid))
            .collect()
    }
}

//! Memberships inside one organisation's scope, under row-level security: every statement names
//! the scope's org id.

use async_trait::async_trait;
use gatehouse_core::clock::from_unix_micros;
use gatehouse_core::page::{Cursor, Page, PageRequest};
use gatehouse_core::store::{MemberStore, MembershipRecord, Role, ensure_in_scope};
use gatehouse_core::{StoreError, UserId};
use uuid::Uuid;

use crate::errors::map_err;
use crate::rows::{self, get};
use crate::tx::PgTenantTx;

#[async_trait]
impl MemberStore for PgTenantTx {
    async fn insert_membership(&mut self, m: &MembershipRecord) -> Result<(), StoreError> {
        ensure_in_scope(&self.scope, m.org_id)?;
        sqlx::query(
            "INSERT INTO memberships (org_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(self.scope.org_id().as_uuid())
        .bind(m.user_id.as_uuid())
        .bind(m.role.as_str())
        .bind(m.created_at)
        .execute(&mut *self.tx)
        .await
        .map(|_| ())
        .map_err(map_err)
    }

    async fn membership(&mut self, user: UserId) -> Result<Option<MembershipRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM memberships WHERE org_id = $1 AND user_id = $2")
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
        let org = self.scope.org_id().as_uuid();
        let limit = i64::from(page.limit.get()) + 1;
        let found = match page.after {
            Some(c) => {
                let after = from_unix_micros(c.created_at_micros)
                    .ok_or_else(|| StoreError::Backend("cursor time out of range".into()))?;
                sqlx::query(
                    "SELECT * FROM memberships WHERE org_id = $1 \
                     AND (created_at, user_id) > ($2, $3) \
                     ORDER BY created_at, user_id LIMIT $4",
                )
                .bind(org)
                .bind(after)
                .bind(c.id)
                .bind(limit)
                .fetch_all(&mut *self.tx)
                .await
            }
            None => {
                sqlx::query(
                    "SELECT * FROM memberships WHERE org_id = $1 \
                     ORDER BY created_at, user_id LIMIT $2",
                )
                .bind(org)
                .bind(limit)
                .fetch_all(&mut *self.tx)
                .await
            }
        }
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
        let done =
            sqlx::query("UPDATE memberships SET role = $1 WHERE org_id = $2 AND user_id = $3")
                .bind(role.as_str())
                .bind(self.scope.org_id().as_uuid())
                .bind(user.as_uuid())
                .execute(&mut *self.tx)
                .await
                .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_sessions_ended(
        &mut self,
        user: UserId,
        at: time::OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE memberships SET sessions_ended_at = $1 WHERE org_id = $2 AND user_id = $3",
        )
        .bind(at)
        .bind(self.scope.org_id().as_uuid())
        .bind(user.as_uuid())
        .execute(&mut *self.tx)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_membership(&mut self, user: UserId) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM memberships WHERE org_id = $1 AND user_id = $2")
            .bind(self.scope.org_id().as_uuid())
            .bind(user.as_uuid())
            .execute(&mut *self.tx)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn lock_owners(&mut self) -> Result<Vec<UserId>, StoreError> {
        let rows = sqlx::query(
            "SELECT user_id FROM memberships WHERE org_id = $1 AND role = 'owner' FOR UPDATE",
        )
        .bind(self.scope.org_id().as_uuid())
        .fetch_all(&mut *self.tx)
        .await
        .map_err(map_err)?;
        rows.iter()
            .map(|r| get::<Uuid>(r, "user_id").map(UserId::from_uuid))
            .collect()
    }
}

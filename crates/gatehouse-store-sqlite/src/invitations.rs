//! Invitations in SQLite, inside one organisation's scope: every statement names the scope's
//! `org_id`.

use async_trait::async_trait;
use gatehouse_core::page::{Cursor, Page, PageRequest};
use gatehouse_core::store::{InvitationRecord, InvitationStore, ensure_in_scope};
use gatehouse_core::{OrgId, StoreError, UserId};
use sqlx::SqliteConnection;
use sqlx::sqlite::SqliteRow;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::errors::map_err;
use crate::rows::{get, micros, opt_time_col, time_col};
use crate::tx::SqliteTenantTx;

fn invitation(row: &SqliteRow) -> Result<InvitationRecord, StoreError> {
    Ok(InvitationRecord {
        id: get(row, "id")?,
        org_id: OrgId::from_uuid(get(row, "org_id")?),
        email: get(row, "email")?,
        role: get(row, "role")?,
        token_hash: get(row, "token_hash")?,
        invited_by: UserId::from_uuid(get(row, "invited_by")?),
        created_at: time_col(row, "created_at")?,
        expires_at: time_col(row, "expires_at")?,
        accepted_at: opt_time_col(row, "accepted_at")?,
    })
}

#[async_trait]
impl InvitationStore for SqliteTenantTx {
    async fn insert_invitation(&mut self, i: &InvitationRecord) -> Result<(), StoreError> {
        ensure_in_scope(&self.scope, i.org_id)?;
        let org = self.scope.org_id();
        let c: &mut SqliteConnection = &mut self.tx;
        sqlx::query(
            "INSERT INTO invitations (id, org_id, email, role, token_hash, invited_by, created_at, \
             expires_at, accepted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(i.id)
        .bind(org.as_uuid())
        .bind(&i.email)
        .bind(&i.role)
        .bind(&i.token_hash)
        .bind(i.invited_by.as_uuid())
        .bind(micros(i.created_at))
        .bind(micros(i.expires_at))
        .bind(i.accepted_at.map(micros))
        .execute(c)
        .await
        .map(|_| ())
        .map_err(map_err)
    }

    async fn invitation_by_token(
        &mut self,
        hash: &[u8],
    ) -> Result<Option<InvitationRecord>, StoreError> {
        let org = self.scope.org_id();
        let c: &mut SqliteConnection = &mut self.tx;
        let row = sqlx::query("SELECT * FROM invitations WHERE org_id = ? AND token_hash = ?")
            .bind(org.as_uuid())
            .bind(hash)
            .fetch_optional(c)
            .await
            .map_err(map_err)?;
        row.as_ref().map(invitation).transpose()
    }

    async fn accept_invitation(
        &mut self,
        id: Uuid,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let org = self.scope.org_id();
        let c: &mut SqliteConnection = &mut self.tx;
        let done = sqlx::query(
            "UPDATE invitations SET accepted_at = ? WHERE org_id = ? AND id = ? AND accepted_at IS NULL",
        )
        .bind(micros(at))
        .bind(org.as_uuid())
        .bind(id)
        .execute(c)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn pending_invitations(
        &mut self,
        now: OffsetDateTime,
        page: PageRequest,
    ) -> Result<Page<InvitationRecord>, StoreError> {
        let (after_t, after_id) = match page.after {
            Some(c) => (c.created_at_micros, Some(c.id)),
            None => (i64::MIN, None),
        };
        let found = sqlx::query(
            "SELECT * FROM invitations WHERE org_id = ?1 AND accepted_at IS NULL \
             AND expires_at > ?2 \
             AND (created_at > ?3 OR (created_at = ?3 AND (?4 IS NULL OR id > ?4))) \
             ORDER BY created_at, id LIMIT ?5",
        )
        .bind(self.scope.org_id().as_uuid())
        .bind(micros(now))
        .bind(after_t)
        .bind(after_id)
        .bind(i64::from(page.limit.get()) + 1)
        .fetch_all(&mut *self.tx)
        .await
        .map_err(map_err)?;
        let records = found
            .iter()
            .map(invitation)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_overfetch(records, page.limit, |i| {
            Cursor::after(i.created_at, i.id)
        }))
    }

    async fn delete_invitation(&mut self, id: Uuid) -> Result<bool, StoreError> {
        let org = self.scope.org_id();
        let done = sqlx::query(
            "DELETE FROM invitations WHERE org_id = ? AND id = ? AND accepted_at IS NULL",
        )
        .bind(org.as_uuid())
        .bind(id)
        .execute(&mut *self.tx)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_invitations_to(&mut self, email: &str) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM invitations WHERE org_id = ? AND email = ?")
            .bind(self.scope.org_id().as_uuid())
            .bind(email)
            .execute(&mut *self.tx)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected())
    }
}

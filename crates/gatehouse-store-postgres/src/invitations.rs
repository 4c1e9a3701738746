//! Invitations into one organisation, under row-level security: every statement names the
//! scope's org id.

use async_trait::async_trait;
use gatehouse_core::page::{Cursor, Page, PageRequest};
use gatehouse_core::store::{InvitationRecord, InvitationStore, ensure_in_scope};
use gatehouse_core::{OrgId, StoreError, UserId};
use sqlx::postgres::PgRow;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::errors::map_err;
use crate::rows::{get, opt_time_col, time_col};
use crate::tx::PgTenantTx;

fn invitation(row: &PgRow) -> Result<InvitationRecord, StoreError> {
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
impl InvitationStore for PgTenantTx {
    async fn insert_invitation(&mut self, i: &InvitationRecord) -> Result<(), StoreError> {
        ensure_in_scope(&self.scope, i.org_id)?;
        sqlx::query(
            "INSERT INTO invitations (id, org_id, email, role, token_hash, invited_by, created_at, \
             expires_at, accepted_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(i.id)
        .bind(self.scope.org_id().as_uuid())
        .bind(&i.email)
        .bind(&i.role)
        .bind(&i.token_hash)
        .bind(i.invited_by.as_uuid())
        .bind(i.created_at)
        .bind(i.expires_at)
        .bind(i.accepted_at)
        .execute(&mut *self.tx)
        .await
        .map(|_| ())
        .map_err(map_err)
    }

    async fn invitation_by_token(
        &mut self,
        token_hash: &[u8],
    ) -> Result<Option<InvitationRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM invitations WHERE org_id = $1 AND token_hash = $2")
            .bind(self.scope.org_id().as_uuid())
            .bind(token_hash)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(map_err)?;
        row.as_ref().map(invitation).transpose()
    }

    async fn accept_invitation(
        &mut self,
        id: Uuid,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE invitations SET accepted_at = $1 WHERE org_id = $2 AND id = $3 AND accepted_at IS NULL",
        )
        .bind(at)
        .bind(self.scope.org_id().as_uuid())
        .bind(id)
        .execute(&mut *self.tx)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn pending_invitations(
        &mut self,
        now: OffsetDateTime,
        page: PageRequest,
    ) -> Result<Page<InvitationRecord>, StoreError> {
        let org = self.scope.org_id().as_uuid();
        let limit = i64::from(page.limit.get()) + 1;
        let found = match page.after {
            Some(c) => {
                let after = gatehouse_core::clock::from_unix_micros(c.created_at_micros)
                    .ok_or_else(|| StoreError::Backend("cursor time out of range".into()))?;
                sqlx::query(
                    "SELECT * FROM invitations WHERE org_id = $1 AND accepted_at IS NULL \
                     AND expires_at > $2 AND (created_at, id) > ($3, $4) \
                     ORDER BY created_at, id LIMIT $5",
                )
                .bind(org)
                .bind(now)
                .bind(after)
                .bind(c.id)
                .bind(limit)
                .fetch_all(&mut *self.tx)
                .await
            }
            None => {
                sqlx::query(
                    "SELECT * FROM invitations WHERE org_id = $1 AND accepted_at IS NULL \
                     AND expires_at > $2 ORDER BY created_at, id LIMIT $3",
                )
                .bind(org)
                .bind(now)
                .bind(limit)
                .fetch_all(&mut *self.tx)
                .await
            }
        }
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
        let done = sqlx::query(
            "DELETE FROM invitations WHERE org_id = $1 AND id = $2 AND accepted_at IS NULL",
        )
        .bind(self.scope.org_id().as_uuid())
        .bind(id)
        .execute(&mut *self.tx)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_invitations_to(&mut self, email: &str) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM invitations WHERE org_id = $1 AND email = $2")
            .bind(self.scope.org_id().as_uuid())
            .bind(email)
            .execute(&mut *self.tx)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected())
    }
}

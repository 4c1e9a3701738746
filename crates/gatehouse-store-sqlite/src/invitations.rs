//! Invitations in SQLite, inside one organisation's scope: every statement names the scope's
//! `org_id`.

use async_trait::async_trait;
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
}

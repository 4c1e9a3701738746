//! Sessions: platform rows read before any scope is entered, under row-level security all the
//! same (a statement sees the sessions it names, or its subject's).

use async_trait::async_trait;
use gatehouse_core::store::{SessionRecord, SessionStore, SignedInWith, Tier};
use gatehouse_core::{OrgId, StoreError};
use sqlx::postgres::PgRow;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::declare::{Named, declare};
use crate::errors::map_err;
use crate::rows::{get, opt_time_col, time_col};
use crate::tx::PgTx;

fn session(row: &PgRow) -> Result<SessionRecord, StoreError> {
    let tier: String = get(row, "tier")?;
    let org: Option<Uuid> = get(row, "org_id")?;
    Ok(SessionRecord {
        id: get(row, "id")?,
        subject_id: get(row, "subject_id")?,
        tier: Tier::parse(&tier).ok_or_else(|| StoreError::Corrupt(format!("tier {tier:?}")))?,
        org_id: org.map(OrgId::from_uuid),
        impersonator_id: get(row, "impersonator_id")?,
        reason: get(row, "reason")?,
        device_name: get(row, "device_name")?,
        user_agent: get(row, "user_agent")?,
        ip: get(row, "ip")?,
        refresh_hash: get(row, "refresh_hash")?,
        previous_refresh_hash: get(row, "previous_refresh_hash")?,
        created_at: time_col(row, "created_at")?,
        last_seen_at: time_col(row, "last_seen_at")?,
        expires_at: time_col(row, "expires_at")?,
        revoked_at: opt_time_col(row, "revoked_at")?,
        auth_at: time_col(row, "auth_at")?,
        mfa_at: opt_time_col(row, "mfa_at")?,
        signed_in_with: signed_in_with(row)?,
    })
}

fn signed_in_with(row: &PgRow) -> Result<SignedInWith, StoreError> {
    let name: String = get(row, "signed_in_with")?;
    let org: Option<Uuid> = get(row, "sso_org_id")?;
    SignedInWith::parse(&name, org.map(OrgId::from_uuid))
        .ok_or_else(|| StoreError::Corrupt(format!("signed_in_with {name:?}")))
}

#[async_trait]
impl SessionStore for PgTx {
    async fn insert_session(&mut self, s: &SessionRecord) -> Result<(), StoreError> {
        declare(&mut self.tx, Named::Sessions(&[s.id])).await?;
        sqlx::query(
            "INSERT INTO sessions (id, subject_id, tier, org_id, impersonator_id, reason, device_name, \
             user_agent, ip, refresh_hash, created_at, last_seen_at, expires_at, revoked_at, auth_at, \
             mfa_at, signed_in_with, sso_org_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
             $11, $12, $13, $14, $15, $16, $17, $18)",
        )
        .bind(s.id)
        .bind(s.subject_id)
        .bind(s.tier.as_str())
        .bind(s.org_id.map(|o| o.as_uuid()))
        .bind(s.impersonator_id)
        .bind(&s.reason)
        .bind(&s.device_name)
        .bind(&s.user_agent)
        .bind(&s.ip)
        .bind(&s.refresh_hash)
        .bind(s.created_at)
        .bind(s.last_seen_at)
        .bind(s.expires_at)
        .bind(s.revoked_at)
        .bind(s.auth_at)
        .bind(s.mfa_at)
        .bind(s.signed_in_with.as_str())
        .bind(s.signed_in_with.sso_org().map(|o| o.as_uuid()))
        .execute(&mut *self.tx)
        .await
        .map(|_| ())
        .map_err(map_err)
    }

    async fn session(&mut self, id: Uuid) -> Result<Option<SessionRecord>, StoreError> {
        declare(&mut self.tx, Named::Sessions(&[id])).await?;
        let row = sqlx::query("SELECT * FROM sessions WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(map_err)?;
        row.as_ref().map(session).transpose()
    }

    async fn rotate_refresh(
        &mut self,
        id: Uuid,
        old: &[u8],
        new: &[u8],
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        declare(&mut self.tx, Named::Sessions(&[id])).await?;
        let done = sqlx::query(
            "UPDATE sessions SET previous_refresh_hash = refresh_hash, refresh_hash = $1, \
             last_seen_at = $2 WHERE id = $3 AND refresh_hash = $4 AND revoked_at IS NULL",
        )
        .bind(new)
        .bind(at)
        .bind(id)
        .bind(old)
        .execute(&mut *self.tx)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_session_org(&mut self, id: Uuid, org: OrgId) -> Result<(), StoreError> {
        declare(&mut self.tx, Named::Sessions(&[id])).await?;
        sqlx::query("UPDATE sessions SET org_id = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(org.as_uuid())
            .bind(id)
            .execute(&mut *self.tx)
            .await
            .map(|_| ())
            .map_err(map_err)
    }

    async fn revoke_session(&mut self, id: Uuid, at: OffsetDateTime) -> Result<bool, StoreError> {
        declare(&mut self.tx, Named::Sessions(&[id])).await?;
        let done =
            sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(at)
                .bind(id)
                .execute(&mut *self.tx)
                .await
                .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn revoke_sessions_of(
        &mut self,
        subject: Uuid,
        keep: Option<Uuid>,
        at: OffsetDateTime,
    ) -> Result<Vec<Uuid>, StoreError> {
        declare(&mut self.tx, Named::Subject(subject)).await?;
        let rows = sqlx::query(
            "UPDATE sessions SET revoked_at = $1 WHERE subject_id = $2 AND revoked_at IS NULL \
             AND ($3::uuid IS NULL OR id <> $3) RETURNING id",
        )
        .bind(at)
        .bind(subject)
        .bind(keep)
        .fetch_all(&mut *self.tx)
        .await
        .map_err(map_err)?;
        rows.iter().map(|r| get(r, "id")).collect()
    }

    async fn revoke_org_sessions_of(
        &mut self,
        subject: Uuid,
        org: OrgId,
        at: OffsetDateTime,
    ) -> Result<Vec<(Uuid, OffsetDateTime)>, StoreError> {
        declare(&mut self.tx, Named::Subject(subject)).await?;
        let rows = sqlx::query(
            "UPDATE sessions SET revoked_at = $1 WHERE subject_id = $2 AND org_id = $3 \
             AND revoked_at IS NULL AND expires_at > $1 RETURNING id, expires_at",
        )
        .bind(at)
        .bind(subject)
        .bind(org.as_uuid())
        .fetch_all(&mut *self.tx)
        .await
        .map_err(map_err)?;
        rows.iter()
            .map(|r| Ok((get(r, "id")?, time_col(r, "expires_at")?)))
            .collect()
    }

    async fn revoke_impersonations_by(
        &mut self,
        operator: Uuid,
        at: OffsetDateTime,
    ) -> Result<Vec<Uuid>, StoreError> {
        declare(&mut self.tx, Named::Impersonator(operator)).await?;
        let rows = sqlx::query(
            "UPDATE sessions SET revoked_at = $1 WHERE impersonator_id = $2 \
             AND tier = 'impersonation' AND revoked_at IS NULL RETURNING id",
        )
        .bind(at)
        .bind(operator)
        .fetch_all(&mut *self.tx)
        .await
        .map_err(map_err)?;
        rows.iter().map(|r| get(r, "id")).collect()
    }

    async fn live_sessions_of(
        &mut self,
        subject: Uuid,
        now: OffsetDateTime,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        declare(&mut self.tx, Named::Subject(subject)).await?;
        let rows = sqlx::query(
            "SELECT * FROM sessions WHERE subject_id = $1 AND revoked_at IS NULL AND expires_at > $2 \
             ORDER BY created_at DESC LIMIT 500",
        )
        .bind(subject)
        .bind(now)
        .fetch_all(&mut *self.tx)
        .await
        .map_err(map_err)?;
        rows.iter().map(session).collect()
    }

    async fn sessions_of(&mut self, subject: Uuid) -> Result<Vec<SessionRecord>, StoreError> {
        declare(&mut self.tx, Named::Subject(subject)).await?;
        let rows = sqlx::query(
            "SELECT * FROM sessions WHERE subject_id = $1 ORDER BY created_at DESC, id LIMIT 1000",
        )
        .bind(subject)
        .fetch_all(&mut *self.tx)
        .await
        .map_err(map_err)?;
        rows.iter().map(session).collect()
    }

    async fn delete_sessions_of(&mut self, subject: Uuid) -> Result<Vec<Uuid>, StoreError> {
        declare(&mut self.tx, Named::Subject(subject)).await?;
        sqlx::query_scalar("DELETE FROM sessions WHERE subject_id = $1 RETURNING id")
            .bind(subject)
            .fetch_all(&mut *self.tx)
            .await
            .map_err(map_err)
    }

    async fn set_session_auth(
        &mut self,
        id: Uuid,
        auth_at: OffsetDateTime,
        mfa_at: Option<OffsetDateTime>,
    ) -> Result<bool, StoreError> {
        // Live: unrevoked, and unexpired at the time of the check. A check without a second factor
        // keeps the last one's time.
        declare(&mut self.tx, Named::Sessions(&[id])).await?;
        let done = sqlx::query(
            "UPDATE sessions SET auth_at = $1, mfa_at = coalesce($2::timestamptz, mfa_at) \
             WHERE id = $3 AND revoked_at IS NULL AND expires_at > $1",
        )
        .bind(auth_at)
        .bind(mfa_at)
        .bind(id)
        .execute(&mut *self.tx)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }
}

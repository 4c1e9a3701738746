//! Sessions in SQLite: platform rows (a session names its organisation as data, not as a scope).
//! `touch_sessions` is the store's batched last-seen update, run in a transaction of its own.

use async_trait::async_trait;
use gatehouse_core::store::{SessionRecord, SessionStore, SignedInWith, Tier};
use gatehouse_core::{OrgId, StoreError};
use sqlx::SqliteConnection;
use sqlx::sqlite::SqliteRow;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::errors::map_err;
use crate::rows::{get, micros, opt_time_col, time_col};
use crate::tx::SqliteTx;

fn session(row: &SqliteRow) -> Result<SessionRecord, StoreError> {
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

fn signed_in_with(row: &SqliteRow) -> Result<SignedInWith, StoreError> {
    let name: String = get(row, "signed_in_with")?;
    let org: Option<Uuid> = get(row, "sso_org_id")?;
    SignedInWith::parse(&name, org.map(OrgId::from_uuid))
        .ok_or_else(|| StoreError::Corrupt(format!("signed_in_with {name:?}")))
}

#[async_trait]
impl SessionStore for SqliteTx {
    async fn insert_session(&mut self, s: &SessionRecord) -> Result<(), StoreError> {
        let c: &mut SqliteConnection = &mut self.tx;
        sqlx::query(
            "INSERT INTO sessions (id, subject_id, tier, org_id, impersonator_id, reason, device_name, \
             user_agent, ip, refresh_hash, created_at, last_seen_at, expires_at, revoked_at, auth_at, \
             mfa_at, signed_in_with, sso_org_id) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        .bind(micros(s.created_at))
        .bind(micros(s.last_seen_at))
        .bind(micros(s.expires_at))
        .bind(s.revoked_at.map(micros))
        .bind(micros(s.auth_at))
        .bind(s.mfa_at.map(micros))
        .bind(s.signed_in_with.as_str())
        .bind(s.signed_in_with.sso_org().map(|o| o.as_uuid()))
        .execute(c)
        .await
        .map(|_| ())
        .map_err(map_err)
    }

    async fn session(&mut self, id: Uuid) -> Result<Option<SessionRecord>, StoreError> {
        let c: &mut SqliteConnection = &mut self.tx;
        let row = sqlx::query("SELECT * FROM sessions WHERE id = ?")
            .bind(id)
            .fetch_optional(c)
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
        let c: &mut SqliteConnection = &mut self.tx;
        let done = sqlx::query(
            "UPDATE sessions SET previous_refresh_hash = refresh_hash, refresh_hash = ?, \
             last_seen_at = ? WHERE id = ? AND refresh_hash = ? AND revoked_at IS NULL",
        )
        .bind(new)
        .bind(micros(at))
        .bind(id)
        .bind(old)
        .execute(c)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_session_org(&mut self, id: Uuid, org: OrgId) -> Result<(), StoreError> {
        let c: &mut SqliteConnection = &mut self.tx;
        sqlx::query("UPDATE sessions SET org_id = ? WHERE id = ? AND revoked_at IS NULL")
            .bind(org.as_uuid())
            .bind(id)
            .execute(c)
            .await
            .map(|_| ())
            .map_err(map_err)
    }

    async fn revoke_session(&mut self, id: Uuid, at: OffsetDateTime) -> Result<bool, StoreError> {
        let c: &mut SqliteConnection = &mut self.tx;
        let done =
            sqlx::query("UPDATE sessions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
                .bind(micros(at))
                .bind(id)
                .execute(c)
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
        let c: &mut SqliteConnection = &mut self.tx;
        let rows = sqlx::query(
            "UPDATE sessions SET revoked_at = ?1 WHERE subject_id = ?2 AND revoked_at IS NULL \
             AND (?3 IS NULL OR id <> ?3) RETURNING id",
        )
        .bind(micros(at))
        .bind(subject)
        .bind(keep)
        .fetch_all(c)
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
        let c: &mut SqliteConnection = &mut self.tx;
        let rows = sqlx::query(
            "UPDATE sessions SET revoked_at = ?1 WHERE subject_id = ?2 AND org_id = ?3 \
             AND revoked_at IS NULL AND expires_at > ?1 RETURNING id, expires_at",
        )
        .bind(micros(at))
        .bind(subject)
        .bind(org.as_uuid())
        .fetch_all(c)
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
        let c: &mut SqliteConnection = &mut self.tx;
        let rows = sqlx::query(
            "UPDATE sessions SET revoked_at = ?1 WHERE impersonator_id = ?2 \
             AND tier = 'impersonation' AND revoked_at IS NULL RETURNING id",
        )
        .bind(micros(at))
        .bind(operator)
        .fetch_all(c)
        .await
        .map_err(map_err)?;
        rows.iter().map(|r| get(r, "id")).collect()
    }

    async fn live_sessions_of(
        &mut self,
        subject: Uuid,
        now: OffsetDateTime,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        let c: &mut SqliteConnection = &mut self.tx;
        let rows = sqlx::query(
            "SELECT * FROM sessions WHERE subject_id = ? AND revoked_at IS NULL AND expires_at > ? \
             ORDER BY created_at DESC LIMIT 500",
        )
        .bind(subject)
        .bind(micros(now))
        .fetch_all(c)
        .await
        .map_err(map_err)?;
        rows.iter().map(session).collect()
    }

    async fn sessions_of(&mut self, subject: Uuid) -> Result<Vec<SessionRecord>, StoreError> {
        let c: &mut SqliteConnection = &mut self.tx;
        let rows = sqlx::query(
            "SELECT * FROM sessions WHERE subject_id = ? ORDER BY created_at DESC, id LIMIT 1000",
        )
        .bind(subject)
        .fetch_all(c)
        .await
        .map_err(map_err)?;
        rows.iter().map(session).collect()
    }

    async fn delete_sessions_of(&mut self, subject: Uuid) -> Result<Vec<Uuid>, StoreError> {
        let c: &mut SqliteConnection = &mut self.tx;
        sqlx::query_scalar("DELETE FROM sessions WHERE subject_id = ? RETURNING id")
            .bind(subject)
            .fetch_all(c)
            .await
            .map_err(map_err)
    }

    async fn set_session_auth(
        &mut self,
        id: Uuid,
        auth_at: OffsetDateTime,
        mfa_at: Option<OffsetDateTime>,
    ) -> Result<bool, StoreError> {
        let c: &mut SqliteConnection = &mut self.tx;
        // Live: unrevoked, and unexpired at the time of the check. A check without a second factor
        // keeps the last one's time.
        let done = sqlx::query(
            "UPDATE sessions SET auth_at = ?1, mfa_at = coalesce(?2, mfa_at) \
             WHERE id = ?3 AND revoked_at IS NULL AND expires_at > ?1",
        )
        .bind(micros(auth_at))
        .bind(mfa_at.map(micros))
        .bind(id)
        .execute(c)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }
}

/// `Store::touch_sessions`'s statements; the caller holds the write turn and commits.
pub(crate) async fn touch_sessions(
    c: &mut SqliteConnection,
    seen: &[(Uuid, OffsetDateTime)],
) -> Result<(), StoreError> {
    for (id, at) in seen {
        sqlx::query("UPDATE sessions SET last_seen_at = max(last_seen_at, ?) WHERE id = ?")
            .bind(micros(*at))
            .bind(id)
            .execute(&mut *c)
            .await
            .map_err(map_err)?;
    }
    Ok(())
}

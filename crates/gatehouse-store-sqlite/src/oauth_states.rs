//! OAuth authorization states in SQLite: platform rows found by digest, spent by one
//! conditional update.

use async_trait::async_trait;
use gatehouse_core::store::{OAuthStateRecord, OAuthStateStore, StatePurpose};
use gatehouse_core::{OrgId, StoreError};
use sqlx::SqliteConnection;
use sqlx::sqlite::SqliteRow;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::errors::map_err;
use crate::rows::{get, micros, opt_time_col, time_col};
use crate::tx::SqliteTx;

fn oauth_state(row: &SqliteRow) -> Result<OAuthStateRecord, StoreError> {
    let purpose: String = get(row, "purpose")?;
    Ok(OAuthStateRecord {
        digest: get(row, "digest")?,
        purpose: StatePurpose::parse(&purpose)
            .ok_or_else(|| StoreError::Corrupt(format!("state purpose {purpose:?}")))?,
        org_id: get::<Option<Uuid>>(row, "org_id")?.map(OrgId::from_uuid),
        user_id: get(row, "user_id")?,
        provider: get(row, "provider")?,
        verifier_sealed: get(row, "verifier_sealed")?,
        nonce_sealed: get(row, "nonce_sealed")?,
        created_at: time_col(row, "created_at")?,
        expires_at: time_col(row, "expires_at")?,
        spent_at: opt_time_col(row, "spent_at")?,
    })
}

#[async_trait]
impl OAuthStateStore for SqliteTx {
    async fn insert_oauth_state(&mut self, s: &OAuthStateRecord) -> Result<(), StoreError> {
        let c: &mut SqliteConnection = &mut self.tx;
        sqlx::query(
            "INSERT INTO oauth_states (digest, purpose, org_id, user_id, provider, verifier_sealed, \
             nonce_sealed, created_at, expires_at, spent_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&s.digest)
        .bind(s.purpose.as_str())
        .bind(s.org_id.map(|o| o.as_uuid()))
        .bind(s.user_id)
        .bind(&s.provider)
        .bind(&s.verifier_sealed)
        .bind(&s.nonce_sealed)
        .bind(micros(s.created_at))
        .bind(micros(s.expires_at))
        .bind(s.spent_at.map(micros))
        .execute(c)
        .await
        .map(|_| ())
        .map_err(map_err)
    }

    async fn spend_oauth_state(
        &mut self,
        digest: &[u8],
        at: OffsetDateTime,
    ) -> Result<Option<OAuthStateRecord>, StoreError> {
        let c: &mut SqliteConnection = &mut self.tx;
        let row = sqlx::query(
            "UPDATE oauth_states SET spent_at = ?1 \
             WHERE digest = ?2 AND spent_at IS NULL AND expires_at > ?1 RETURNING *",
        )
        .bind(micros(at))
        .bind(digest)
        .fetch_optional(c)
        .await
        .map_err(map_err)?;
        row.as_ref().map(oauth_state).transpose()
    }
}

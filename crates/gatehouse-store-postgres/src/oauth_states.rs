//! OAuth authorization states: platform rows under row-level security, seen by the digest a
//! statement declares (or inside their organisation's scope), spent by one conditional update.

use async_trait::async_trait;
use gatehouse_core::store::{OAuthStateRecord, OAuthStateStore, StatePurpose};
use gatehouse_core::{OrgId, StoreError};
use sqlx::postgres::PgRow;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::declare::{Named, declare};
use crate::errors::map_err;
use crate::rows::get;
use crate::tx::PgTx;

fn oauth_state(row: &PgRow) -> Result<OAuthStateRecord, StoreError> {
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
        created_at: get(row, "created_at")?,
        expires_at: get(row, "expires_at")?,
        spent_at: get(row, "spent_at")?,
    })
}

#[async_trait]
impl OAuthStateStore for PgTx {
    async fn insert_oauth_state(&mut self, s: &OAuthStateRecord) -> Result<(), StoreError> {
        declare(&mut self.tx, Named::Digest(&s.digest)).await?;
        sqlx::query(
            "INSERT INTO oauth_states (digest, purpose, org_id, user_id, provider, verifier_sealed, \
             nonce_sealed, created_at, expires_at, spent_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&s.digest)
        .bind(s.purpose.as_str())
        .bind(s.org_id.map(|o| o.as_uuid()))
        .bind(s.user_id)
        .bind(&s.provider)
        .bind(&s.verifier_sealed)
        .bind(&s.nonce_sealed)
        .bind(s.created_at)
        .bind(s.expires_at)
        .bind(s.spent_at)
        .execute(&mut *self.tx)
        .await
        .map(|_| ())
        .map_err(map_err)
    }

    async fn spend_oauth_state(
        &mut self,
        digest: &[u8],
        at: OffsetDateTime,
    ) -> Result<Option<OAuthStateRecord>, StoreError> {
        declare(&mut self.tx, Named::Digest(digest)).await?;
        let row = sqlx::query(
            "UPDATE oauth_states SET spent_at = $1 \
             WHERE digest = $2 AND spent_at IS NULL AND expires_at > $1 RETURNING *",
        )
        .bind(at)
        .bind(digest)
        .fetch_optional(&mut *self.tx)
        .await
        .map_err(map_err)?;
        row.as_ref().map(oauth_state).transpose()
    }
}

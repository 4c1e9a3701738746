//! Lifecycle bookkeeping in SQLite: the lease, the search for organisations with expired data
//! and the pruning of spent rows.

use async_trait::async_trait;
use gatehouse_core::store::{Housekeeping, PruneJob, PruneStore};
use gatehouse_core::{OrgId, StoreError};
use sqlx::SqliteConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::SqliteStore;
use crate::errors::map_err;
use crate::rows::micros;
use crate::tx::SqliteTx;

#[async_trait]
impl Housekeeping for SqliteStore {
    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let (_turn, mut tx) = self.begin_immediate().await?;
        let c: &mut SqliteConnection = &mut tx;
        let won: Option<String> = sqlx::query_scalar(
            "INSERT INTO leases (name, holder, expires_at) VALUES (?1, ?2, ?4) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
               expires_at = excluded.expires_at \
             WHERE leases.holder = excluded.holder OR leases.expires_at <= ?3 \
             RETURNING holder",
        )
        .bind(name)
        .bind(holder)
        .bind(micros(now))
        .bind(micros(until))
        .fetch_optional(c)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(won.is_some_and(|h| h == holder))
    }

    async fn lease_holder(
        &self,
        name: &str,
        now: OffsetDateTime,
    ) -> Result<Option<String>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        let c: &mut SqliteConnection = &mut conn;
        sqlx::query_scalar("SELECT holder FROM leases WHERE name = ? AND expires_at > ?")
            .bind(name)
            .bind(micros(now))
            .fetch_optional(c)
            .await
            .map_err(map_err)
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        let (_turn, mut tx) = self.begin_immediate().await?;
        let c: &mut SqliteConnection = &mut tx;
        sqlx::query("DELETE FROM leases WHERE name = ? AND holder = ?")
            .bind(name)
            .bind(holder)
            .execute(c)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)
    }

    async fn settle_erasure(&self) -> Result<bool, StoreError> {
        // Under the writer's turn, so no write of this process lands mid-checkpoint.
        let _turn = self.write_turn().await?;
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        let c: &mut SqliteConnection = &mut conn;
        let (busy, _, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
            .fetch_one(c)
            .await
            .map_err(map_err)?;
        Ok(busy == 0)
    }

    async fn orgs_with_expired(
        &self,
        now: OffsetDateTime,
        after: Option<OrgId>,
        limit: u32,
    ) -> Result<Vec<OrgId>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        let c: &mut SqliteConnection = &mut conn;
        let found: Vec<Uuid> = sqlx::query_scalar(
            "SELECT org_id FROM records WHERE expires_at IS NOT NULL AND expires_at <= ?1 \
               AND (?2 IS NULL OR org_id > ?2) \
             UNION \
             SELECT org_id FROM secrets \
             WHERE (deleted_at IS NOT NULL OR (expires_at IS NOT NULL AND expires_at <= ?1)) \
               AND (?2 IS NULL OR org_id > ?2) \
             ORDER BY org_id LIMIT ?3",
        )
        .bind(micros(now))
        .bind(after.map(|o| o.as_uuid()))
        .bind(i64::from(limit))
        .fetch_all(c)
        .await
        .map_err(map_err)?;
        Ok(found.into_iter().map(OrgId::from_uuid).collect())
    }
}

/// The statement that prunes `job`: `?1` the cutoff, `?2` the batch size.
fn prune_sql(job: PruneJob) -> &'static str {
    match job {
        PruneJob::Sessions => {
            "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions \
             WHERE expires_at <= ?1 OR revoked_at <= ?1 LIMIT ?2)"
        }
        PruneJob::OneTimeTokens => {
            "DELETE FROM one_time_tokens WHERE digest IN (SELECT digest FROM one_time_tokens \
             WHERE expires_at <= ?1 OR used_at <= ?1 LIMIT ?2)"
        }
        PruneJob::RecoveryCodes => {
            "DELETE FROM recovery_codes WHERE digest IN (SELECT digest FROM recovery_codes \
             WHERE used_at <= ?1 LIMIT ?2)"
        }
        PruneJob::DeliveredMail => {
            "DELETE FROM mail_outbox WHERE id IN (SELECT id FROM mail_outbox \
             WHERE sent_at <= ?1 LIMIT ?2)"
        }
        PruneJob::DeadMail => {
            "DELETE FROM mail_outbox WHERE id IN (SELECT id FROM mail_outbox \
             WHERE dead_at <= ?1 LIMIT ?2)"
        }
        PruneJob::OAuthStates => {
            "DELETE FROM oauth_states WHERE digest IN (SELECT digest FROM oauth_states \
             WHERE expires_at <= ?1 OR spent_at <= ?1 LIMIT ?2)"
        }
    }
}

#[async_trait]
impl PruneStore for SqliteTx {
    async fn prune(
        &mut self,
        job: PruneJob,
        cutoff: OffsetDateTime,
        limit: u32,
    ) -> Result<u64, StoreError> {
        let c: &mut SqliteConnection = &mut self.tx;
        sqlx::query(prune_sql(job))
            .bind(micros(cutoff))
            .bind(i64::from(limit))
            .execute(c)
            .await
            .map(|r| r.rows_affected())
            .map_err(map_err)
    }
}

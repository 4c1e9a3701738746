//! Lifecycle bookkeeping in PostgreSQL: the lease, the search for organisations with expired
//! data and the pruning of spent rows.

use async_trait::async_trait;
use gatehouse_core::store::{Housekeeping, PruneJob, PruneStore};
use gatehouse_core::{OrgId, StoreError};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::PostgresStore;
use crate::declare::{Named, declare};
use crate::errors::map_err;
use crate::tx::PgTx;

/// Organisations asked per round of the search.
const ORG_PAGE: i64 = 500;

#[async_trait]
impl Housekeeping for PostgresStore {
    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        // One statement: two instances upserting at once serialise on the row, and the second
        // sees the first's lease (unexpired, another holder) and gets no row back.
        let won: Option<String> = sqlx::query_scalar(
            "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $4) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
               expires_at = excluded.expires_at \
             WHERE leases.holder = excluded.holder OR leases.expires_at <= $3 \
             RETURNING holder",
        )
        .bind(name)
        .bind(holder)
        .bind(now)
        .bind(until)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(won.is_some_and(|h| h == holder))
    }

    async fn lease_holder(
        &self,
        name: &str,
        now: OffsetDateTime,
    ) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("SELECT holder FROM leases WHERE name = $1 AND expires_at > $2")
            .bind(name)
            .bind(now)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(map_err)
    }

    async fn settle_erasure(&self) -> Result<bool, StoreError> {
        Ok(true)
    }

    async fn orgs_with_expired(
        &self,
        now: OffsetDateTime,
        after: Option<OrgId>,
        limit: u32,
    ) -> Result<Vec<OrgId>, StoreError> {
        // Records and secrets are under forced row-level security: no statement sees two
        // organisations' rows. Each organisation is asked inside its own scope instead, all in
        // one read-only transaction (two round trips each, answered from the expiry indexes).
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        sqlx::query("SET TRANSACTION READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        let mut found = Vec::new();
        let mut cursor = after.map(|o| o.as_uuid());
        loop {
            let page: Vec<Uuid> = sqlx::query_scalar(
                "SELECT id FROM organizations WHERE ($1::uuid IS NULL OR id > $1) \
                 ORDER BY id LIMIT $2",
            )
            .bind(cursor)
            .bind(ORG_PAGE)
            .fetch_all(&mut *tx)
            .await
            .map_err(map_err)?;
            let Some(last) = page.last().copied() else {
                break;
            };
            for org in page.iter().copied() {
                sqlx::query("SELECT set_config('gatehouse.org_id', $1, true)")
                    .bind(org.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                let due: bool = sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM records WHERE org_id = $1 \
                       AND expires_at IS NOT NULL AND expires_at <= $2) \
                     OR EXISTS (SELECT 1 FROM secrets WHERE org_id = $1 \
                       AND (deleted_at IS NOT NULL \
                            OR (expires_at IS NOT NULL AND expires_at <= $2)))",
                )
                .bind(org)
                .bind(now)
                .fetch_one(&mut *tx)
                .await
                .map_err(map_err)?;
                if due {
                    found.push(OrgId::from_uuid(org));
                    if found.len() >= limit as usize {
                        return Ok(found);
                    }
                }
            }
            if i64::try_from(page.len()).unwrap_or(i64::MAX) < ORG_PAGE {
                break;
            }
            cursor = Some(last);
        }
        Ok(found)
    }
}

/// The statement that prunes `job`: `$1` the cutoff, `$2` the batch size.
/// No `FOR UPDATE` in the selection: it would need an update policy the pruning job has not
/// got (and one pruner runs at a time, under the lease).
fn prune_sql(job: PruneJob) -> &'static str {
    match job {
        PruneJob::Sessions => {
            "WITH due AS MATERIALIZED (SELECT id FROM sessions \
             WHERE expires_at <= $1 OR revoked_at <= $1 LIMIT $2) \
             DELETE FROM sessions t USING due WHERE t.id = due.id"
        }
        PruneJob::OneTimeTokens => {
            "WITH due AS MATERIALIZED (SELECT digest FROM one_time_tokens \
             WHERE expires_at <= $1 OR used_at <= $1 LIMIT $2) \
             DELETE FROM one_time_tokens t USING due WHERE t.digest = due.digest"
        }
        PruneJob::RecoveryCodes => {
            "WITH due AS MATERIALIZED (SELECT digest FROM recovery_codes \
             WHERE used_at <= $1 LIMIT $2) \
             DELETE FROM recovery_codes t USING due WHERE t.digest = due.digest"
        }
        PruneJob::DeliveredMail => {
            "WITH due AS MATERIALIZED (SELECT id FROM mail_outbox \
             WHERE sent_at <= $1 LIMIT $2) \
             DELETE FROM mail_outbox t USING due WHERE t.id = due.id"
        }
        PruneJob::DeadMail => {
            "WITH due AS MATERIALIZED (SELECT id FROM mail_outbox \
             WHERE dead_at <= $1 LIMIT $2) \
             DELETE FROM mail_outbox t USING due WHERE t.id = due.id"
        }
        PruneJob::OAuthStates => {
            "WITH due AS MATERIALIZED (SELECT digest FROM oauth_states \
             WHERE expires_at <= $1 OR spent_at <= $1 LIMIT $2) \
             DELETE FROM oauth_states t USING due WHERE t.digest = due.digest"
        }
    }
}

#[async_trait]
impl PruneStore for PgTx {
    async fn prune(
        &mut self,
        job: PruneJob,
        cutoff: OffsetDateTime,
        limit: u32,
    ) -> Result<u64, StoreError> {
        declare(&mut self.tx, Named::PruneJob).await?;
        sqlx::query(prune_sql(job))
            .bind(cutoff)
            .bind(i64::from(limit))
            .execute(&mut *self.tx)
            .await
            .map(|r| r.rows_affected())
            .map_err(map_err)
    }
}

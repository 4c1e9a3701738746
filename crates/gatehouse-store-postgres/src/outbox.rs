//! The mail outbox (platform rows under row-level security: a message is queued by id, and only
//! the delivery worker's transactions see the queue): messages are enqueued inside the
//! transaction that decides to send them (`OutboxStore`), and leased, marked and counted by the
//! delivery worker in transactions of its own (`MailQueue`).

use async_trait::async_trait;
use gatehouse_core::StoreError;
use gatehouse_core::store::{MailBacklog, MailQueue, MailRecord, OutboxStore};
use sqlx::postgres::PgRow;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::PostgresStore;
use crate::declare::{Named, declare};
use crate::errors::map_err;
use crate::rows::{get, int, u32_col, uuid_col};
use crate::tx::PgTx;

/// How much of a delivery error the outbox keeps, in characters.
const MAX_ERROR_CHARS: usize = 500;

fn truncated(error: &str) -> String {
    error.chars().take(MAX_ERROR_CHARS).collect()
}

fn mail(row: &PgRow) -> Result<MailRecord, StoreError> {
    Ok(MailRecord {
        id: uuid_col(row, "id")?,
        envelope: get(row, "envelope")?,
        created_at: get(row, "created_at")?,
        attempts: u32_col(row, "attempts")?,
        next_attempt_at: get(row, "next_attempt_at")?,
        sent_at: get(row, "sent_at")?,
        last_error: get(row, "last_error")?,
        recipient: get(row, "recipient")?,
        kind: get(row, "kind")?,
        org_id: get::<Option<Uuid>>(row, "org_id")?.map(gatehouse_core::OrgId::from_uuid),
        list: get(row, "list")?,
    })
}

#[async_trait]
impl OutboxStore for PgTx {
    async fn enqueue_mail(&mut self, m: &MailRecord) -> Result<(), StoreError> {
        declare(&mut self.tx, Named::Mail(m.id)).await?;
        sqlx::query(
            "INSERT INTO mail_outbox (id, envelope, created_at, attempts, next_attempt_at, sent_at, \
             last_error, recipient, kind, org_id, list) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(m.id)
        .bind(&m.envelope)
        .bind(m.created_at)
        .bind(int(m.attempts))
        .bind(m.next_attempt_at)
        .bind(m.sent_at)
        .bind(m.last_error.as_deref().map(truncated))
        .bind(&m.recipient)
        .bind(&m.kind)
        .bind(m.org_id.map(|o| o.as_uuid()))
        .bind(&m.list)
        .execute(&mut *self.tx)
        .await
        .map(|_| ())
        .map_err(map_err)
    }

    async fn mail_to(
        &mut self,
        recipient: &[u8],
        limit: u32,
    ) -> Result<Vec<MailRecord>, StoreError> {
        if recipient.is_empty() {
            return Ok(Vec::new());
        }
        declare(&mut self.tx, Named::Digest(recipient)).await?;
        let rows = sqlx::query(
            "SELECT * FROM mail_outbox WHERE recipient = $1 ORDER BY created_at, id LIMIT $2",
        )
        .bind(recipient)
        .bind(i64::from(limit))
        .fetch_all(&mut *self.tx)
        .await
        .map_err(map_err)?;
        rows.iter().map(mail).collect()
    }

    async fn delete_mail_to(&mut self, recipient: &[u8]) -> Result<u64, StoreError> {
        if recipient.is_empty() {
            return Ok(0);
        }
        declare(&mut self.tx, Named::Digest(recipient)).await?;
        sqlx::query("DELETE FROM mail_outbox WHERE recipient = $1")
            .bind(recipient)
            .execute(&mut *self.tx)
            .await
            .map(|r| r.rows_affected())
            .map_err(map_err)
    }
}

#[async_trait]
impl MailQueue for PostgresStore {
    /// Leases the due messages in one statement, in a transaction of its own: rows another
    /// worker is claiming at the same moment are locked, and skipped rather than waited for; a
    /// row it already leased is no longer due when the lock is taken.
    async fn claim_due_mail(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<MailRecord>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        declare(&mut tx, Named::MailJob).await?;
        let rows = sqlx::query(
            "UPDATE mail_outbox SET next_attempt_at = $1 WHERE id IN (\
               SELECT id FROM mail_outbox WHERE sent_at IS NULL AND dead_at IS NULL AND next_attempt_at <= $2 \
               ORDER BY created_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) \
             RETURNING *",
        )
        .bind(lease_until)
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?;
        let mut claimed = rows.iter().map(mail).collect::<Result<Vec<_>, _>>()?;
        // RETURNING gives no order: oldest first again.
        claimed.sort_by_key(|m| (m.created_at, m.id));
        tx.commit().await.map_err(map_err)?;
        Ok(claimed)
    }

    async fn mail_delivered(&self, id: Uuid, at: OffsetDateTime) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        declare(&mut tx, Named::MailJob).await?;
        // The sealed body goes as soon as it is delivered; only the bookkeeping stays.
        sqlx::query(
            "UPDATE mail_outbox SET sent_at = $1, envelope = ''::bytea, last_error = NULL \
             WHERE id = $2 AND sent_at IS NULL",
        )
        .bind(at)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map(|_| ())
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)
    }

    async fn mail_failed(
        &self,
        id: Uuid,
        attempts: u32,
        next_attempt_at: OffsetDateTime,
        error: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        declare(&mut tx, Named::MailJob).await?;
        // A message another worker delivered meanwhile stays delivered.
        sqlx::query(
            "UPDATE mail_outbox SET attempts = $1, next_attempt_at = $2, last_error = $3 \
             WHERE id = $4 AND sent_at IS NULL AND dead_at IS NULL",
        )
        .bind(int(attempts))
        .bind(next_attempt_at)
        .bind(truncated(error))
        .bind(id)
        .execute(&mut *tx)
        .await
        .map(|_| ())
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)
    }

    async fn mail_dead(
        &self,
        id: Uuid,
        attempts: u32,
        at: OffsetDateTime,
        error: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        declare(&mut tx, Named::MailJob).await?;
        // Given up: the sealed body goes, the bookkeeping stays until pruned.
        sqlx::query(
            "UPDATE mail_outbox SET attempts = $1, dead_at = $2, last_error = $3, \
             envelope = ''::bytea WHERE id = $4 AND sent_at IS NULL",
        )
        .bind(int(attempts))
        .bind(at)
        .bind(truncated(error))
        .bind(id)
        .execute(&mut *tx)
        .await
        .map(|_| ())
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)
    }

    async fn mail_backlog(&self) -> Result<MailBacklog, StoreError> {
        let mut conn = self.pool.begin().await.map_err(map_err)?;
        declare(&mut conn, Named::MailJob).await?;
        let row = sqlx::query(
            "SELECT count(*) AS pending, count(*) FILTER (WHERE attempts > 0) AS failing, \
               min(created_at) AS oldest, \
               (SELECT last_error FROM mail_outbox \
                 WHERE sent_at IS NULL AND dead_at IS NULL AND last_error IS NOT NULL \
                 ORDER BY created_at DESC, id DESC LIMIT 1) AS last_error \
             FROM mail_outbox WHERE sent_at IS NULL AND dead_at IS NULL",
        )
        .fetch_one(&mut *conn)
        .await
        .map_err(map_err)?;
        let count = |col: &str| -> Result<u64, StoreError> {
            let n: i64 = get(&row, col)?;
            u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("{col} count")))
        };
        Ok(MailBacklog {
            pending: count("pending")?,
            failing: count("failing")?,
            oldest: get(&row, "oldest")?,
            last_error: get(&row, "last_error")?,
        })
    }

    async fn mail_opted_out(
        &self,
        org: gatehouse_core::OrgId,
        recipient: &[u8],
        list: &str,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        // The delivery worker's declaration: its policy reads the lists, never writes them.
        declare(&mut tx, Named::MailJob).await?;
        let row = sqlx::query(
            "SELECT 1 AS one FROM mail_opt_outs WHERE org_id = $1 AND recipient = $2 AND list = $3",
        )
        .bind(org.as_uuid())
        .bind(recipient)
        .bind(list)
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(row.is_some())
    }
}

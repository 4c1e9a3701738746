//! The mail outbox in SQLite: queuing inside a platform transaction (`OutboxStore`), and the
//! delivery side (`MailQueue`), each call a `BEGIN IMMEDIATE` transaction of its own.

use async_trait::async_trait;
use gatehouse_core::StoreError;
use gatehouse_core::store::{MailBacklog, MailQueue, MailRecord, OutboxStore};
use sqlx::SqliteConnection;
use sqlx::sqlite::SqliteRow;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::SqliteStore;
use crate::errors::map_err;
use crate::rows::{get, micros, opt_time_col, time_col, u32_col, uuid_col};
use crate::tx::SqliteTx;

/// How much of a delivery error the outbox keeps, in characters.
const MAX_ERROR_CHARS: usize = 500;

fn mail(row: &SqliteRow) -> Result<MailRecord, StoreError> {
    Ok(MailRecord {
        id: uuid_col(row, "id")?,
        envelope: get(row, "envelope")?,
        created_at: time_col(row, "created_at")?,
        attempts: u32_col(row, "attempts")?,
        next_attempt_at: time_col(row, "next_attempt_at")?,
        sent_at: opt_time_col(row, "sent_at")?,
        last_error: get(row, "last_error")?,
        recipient: get(row, "recipient")?,
        kind: get(row, "kind")?,
        org_id: get::<Option<Uuid>>(row, "org_id")?.map(gatehouse_core::OrgId::from_uuid),
        list: get(row, "list")?,
    })
}

fn truncated(error: &str) -> String {
    error.chars().take(MAX_ERROR_CHARS).collect()
}

#[async_trait]
impl OutboxStore for SqliteTx {
    async fn enqueue_mail(&mut self, m: &MailRecord) -> Result<(), StoreError> {
        let c: &mut SqliteConnection = &mut self.tx;
        sqlx::query(
            "INSERT INTO mail_outbox (id, envelope, created_at, attempts, next_attempt_at, sent_at, \
             last_error, recipient, kind, org_id, list) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(m.id)
        .bind(&m.envelope)
        .bind(micros(m.created_at))
        .bind(i64::from(m.attempts))
        .bind(micros(m.next_attempt_at))
        .bind(m.sent_at.map(micros))
        .bind(m.last_error.as_deref().map(truncated))
        .bind(&m.recipient)
        .bind(&m.kind)
        .bind(m.org_id.map(|o| o.as_uuid()))
        .bind(&m.list)
        .execute(c)
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
        let c: &mut SqliteConnection = &mut self.tx;
        let rows = sqlx::query(
            "SELECT * FROM mail_outbox WHERE recipient = ? ORDER BY created_at, id LIMIT ?",
        )
        .bind(recipient)
        .bind(i64::from(limit))
        .fetch_all(c)
        .await
        .map_err(map_err)?;
        rows.iter().map(mail).collect()
    }

    async fn delete_mail_to(&mut self, recipient: &[u8]) -> Result<u64, StoreError> {
        if recipient.is_empty() {
            return Ok(0);
        }
        let c: &mut SqliteConnection = &mut self.tx;
        sqlx::query("DELETE FROM mail_outbox WHERE recipient = ?")
            .bind(recipient)
            .execute(c)
            .await
            .map(|r| r.rows_affected())
            .map_err(map_err)
    }
}

#[async_trait]
impl MailQueue for SqliteStore {
    /// Leases the due messages in a `BEGIN IMMEDIATE` transaction of its own, so no other writer
    /// reads them between the selection and the update.
    async fn claim_due_mail(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<MailRecord>, StoreError> {
        let (_turn, mut tx) = self.begin_immediate().await?;
        let c: &mut SqliteConnection = &mut tx;
        let rows = sqlx::query(
            "UPDATE mail_outbox SET next_attempt_at = ?1 WHERE id IN (\
               SELECT id FROM mail_outbox WHERE sent_at IS NULL AND dead_at IS NULL AND next_attempt_at <= ?2 \
               ORDER BY created_at, id LIMIT ?3) \
             RETURNING *",
        )
        .bind(micros(lease_until))
        .bind(micros(now))
        .bind(i64::from(limit))
        .fetch_all(c)
        .await
        .map_err(map_err)?;
        let mut claimed = rows.iter().map(mail).collect::<Result<Vec<_>, _>>()?;
        // RETURNING gives no order: oldest first again.
        claimed.sort_by_key(|m| (m.created_at, m.id));
        tx.commit().await.map_err(map_err)?;
        Ok(claimed)
    }

    async fn mail_delivered(&self, id: Uuid, at: OffsetDateTime) -> Result<(), StoreError> {
        let (_turn, mut tx) = self.begin_immediate().await?;
        let c: &mut SqliteConnection = &mut tx;
        // The sealed body goes as soon as it is delivered; only the bookkeeping stays.
        sqlx::query(
            "UPDATE mail_outbox SET sent_at = ?, envelope = X'', last_error = NULL \
             WHERE id = ? AND sent_at IS NULL",
        )
        .bind(micros(at))
        .bind(id)
        .execute(c)
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
        let (_turn, mut tx) = self.begin_immediate().await?;
        let c: &mut SqliteConnection = &mut tx;
        // A message another worker delivered meanwhile stays delivered.
        sqlx::query(
            "UPDATE mail_outbox SET attempts = ?, next_attempt_at = ?, last_error = ? \
             WHERE id = ? AND sent_at IS NULL AND dead_at IS NULL",
        )
        .bind(i64::from(attempts))
        .bind(micros(next_attempt_at))
        .bind(truncated(error))
        .bind(id)
        .execute(c)
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
        let (_turn, mut tx) = self.begin_immediate().await?;
        let c: &mut SqliteConnection = &mut tx;
        // Given up: the sealed body goes, the bookkeeping stays until pruned.
        sqlx::query(
            "UPDATE mail_outbox SET attempts = ?, dead_at = ?, last_error = ?, envelope = X'' \
             WHERE id = ? AND sent_at IS NULL",
        )
        .bind(i64::from(attempts))
        .bind(micros(at))
        .bind(truncated(error))
        .bind(id)
        .execute(c)
        .await
        .map(|_| ())
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)
    }

    async fn mail_backlog(&self) -> Result<MailBacklog, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        let c: &mut SqliteConnection = &mut conn;
        let row = sqlx::query(
            "SELECT count(*) AS pending, coalesce(sum(attempts > 0), 0) AS failing, \
               min(created_at) AS oldest, \
               (SELECT last_error FROM mail_outbox \
                 WHERE sent_at IS NULL AND dead_at IS NULL AND last_error IS NOT NULL \
                 ORDER BY created_at DESC, id DESC LIMIT 1) AS last_error \
             FROM mail_outbox WHERE sent_at IS NULL AND dead_at IS NULL",
        )
        .fetch_one(c)
        .await
        .map_err(map_err)?;
        let count = |col: &str| -> Result<u64, StoreError> {
            let n: i64 = get(&row, col)?;
            u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("{col} count")))
        };
        Ok(MailBacklog {
            pending: count("pending")?,
            failing: count("failing")?,
            oldest: opt_time_col(&row, "oldest")?,
            last_error: get(&row, "last_error")?,
        })
    }

    async fn mail_opted_out(
        &self,
        org: gatehouse_core::OrgId,
        recipient: &[u8],
        list: &str,
    ) -> Result<bool, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        let c: &mut SqliteConnection = &mut conn;
        let row = sqlx::query(
            "SELECT 1 AS one FROM mail_opt_outs WHERE org_id = ? AND recipient = ? AND list = ?",
        )
        .bind(org.as_uuid())
        .bind(recipient)
        .bind(list)
        .fetch_optional(c)
        .await
        .map_err(map_err)?;
        Ok(row.is_some())
    }
}

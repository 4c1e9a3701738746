//! Webhooks in SQLite: endpoints, queued events, deliveries and the attempt log inside one
//! organisation's scope, and the worker's lease of due deliveries across organisations.

use async_trait::async_trait;
use gatehouse_core::page::{Cursor, Page, PageRequest};
use gatehouse_core::store::{
    AttemptRow, DeliveryOutcome, DeliveryRow, DeliveryState, EndpointRow, WebhookMessageRow,
    WebhookQueue, WebhookStore, ensure_in_scope, joined, power_of_two_chunks, split_joined,
};
use gatehouse_core::{OrgId, StoreError};
use sqlx::SqliteConnection;
use sqlx::sqlite::SqliteRow;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::SqliteStore;
use crate::errors::map_err;
use crate::rows::{get, micros, opt_time_col, time_col, u32_col};
use crate::tx::SqliteTenantTx;

fn endpoint(row: &SqliteRow) -> Result<EndpointRow, StoreError> {
    let types: String = get(row, "event_types")?;
    Ok(EndpointRow {
        org_id: OrgId::from_uuid(get(row, "org_id")?),
        id: get(row, "id")?,
        url: get(row, "url")?,
        event_types: split_joined(&types),
        description: get(row, "description")?,
        disabled: get(row, "disabled")?,
        secret_version: u32_col(row, "secret_version")?,
        previous_until: opt_time_col(row, "previous_until")?,
        failing_since: opt_time_col(row, "failing_since")?,
        created_at: time_col(row, "created_at")?,
        updated_at: time_col(row, "updated_at")?,
    })
}

fn message(row: &SqliteRow) -> Result<WebhookMessageRow, StoreError> {
    Ok(WebhookMessageRow {
        org_id: OrgId::from_uuid(get(row, "org_id")?),
        id: get(row, "id")?,
        event_type: get(row, "event_type")?,
        payload: get(row, "payload")?,
        created_at: time_col(row, "created_at")?,
    })
}

fn delivery(row: &SqliteRow) -> Result<DeliveryRow, StoreError> {
    let state: String = get(row, "state")?;
    Ok(DeliveryRow {
        org_id: OrgId::from_uuid(get(row, "org_id")?),
        id: get(row, "id")?,
        endpoint_id: get(row, "endpoint_id")?,
        message_id: get(row, "message_id")?,
        state: DeliveryState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("delivery state {state:?}")))?,
        attempts: u32_col(row, "attempts")?,
        next_attempt_at: time_col(row, "next_attempt_at")?,
        created_at: time_col(row, "created_at")?,
    })
}

fn attempt(row: &SqliteRow) -> Result<AttemptRow, StoreError> {
    let status: Option<i64> = get(row, "status")?;
    Ok(AttemptRow {
        org_id: OrgId::from_uuid(get(row, "org_id")?),
        id: get(row, "id")?,
        delivery_id: get(row, "delivery_id")?,
        endpoint_id: get(row, "endpoint_id")?,
        message_id: get(row, "message_id")?,
        attempt: u32_col(row, "attempt")?,
        at: time_col(row, "at")?,
        status: status.and_then(|s| u16::try_from(s).ok()),
        latency_ms: u32_col(row, "latency_ms")?,
        error: get(row, "error")?,
        response: get(row, "response")?,
    })
}

/// Rows per multi-row INSERT (64 x 8 parameters).
const MAX_ROWS: usize = 64;

#[async_trait]
impl WebhookStore for SqliteTenantTx {
    async fn insert_endpoint(&mut self, e: &EndpointRow) -> Result<(), StoreError> {
        ensure_in_scope(&self.scope, e.org_id)?;
        let org = self.scope.org_id();
        let c: &mut SqliteConnection = &mut self.tx;
        sqlx::query(
            "INSERT INTO webhook_endpoints (org_id, id, url, event_types, description, disabled, \
             secret_version, previous_until, failing_since, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(org.as_uuid())
        .bind(e.id)
        .bind(&e.url)
        .bind(joined(&e.event_types))
        .bind(&e.description)
        .bind(&e.disabled)
        .bind(i64::from(e.secret_version))
        .bind(e.previous_until.map(micros))
        .bind(e.failing_since.map(micros))
        .bind(micros(e.created_at))
        .bind(micros(e.updated_at))
        .execute(c)
        .await
        .map(|_| ())
        .map_err(map_err)
    }

    async fn endpoint(&mut self, id: Uuid) -> Result<Option<EndpointRow>, StoreError> {
        let org = self.scope.org_id();
        let c: &mut SqliteConnection = &mut self.tx;
        let row = sqlx::query("SELECT * FROM webhook_endpoints WHERE org_id = ? AND id = ?")
            .bind(org.as_uuid())
            .bind(id)
            .fetch_optional(c)
            .await
            .map_err(map_err)?;
        row.as_ref().map(endpoint).transpose()
    }

    async fn lock_endpoint(&mut self, id: Uuid) -> Result<Option<EndpointRow>, StoreError> {
        // BEGIN IMMEDIATE already holds every other writer off.
        self.endpoint(id).await
    }

    async fn list_endpoints(&mut self, page: PageRequest) -> Result<Page<EndpointRow>, StoreError> {
        let org = self.scope.org_id();
        let c: &mut SqliteConnection = &mut self.tx;
        let (before_t, before_id) = match page.after {
            Some(cur) => (cur.created_at_micros, Some(cur.id)),
            None => (i64::MAX, None),
        };
        let rows = sqlx::query(
            "SELECT * FROM webhook_endpoints WHERE org_id = ?1 \
             AND (created_at < ?2 OR (created_at = ?2 AND (?3 IS NULL OR id < ?3))) \
             ORDER BY created_at DESC, id DESC LIMIT ?4",
        )
        .bind(org.as_uuid())
        .bind(before_t)
        .bind(before_id)
        .bind(i64::from(page.limit.get()) + 1)
        .fetch_all(c)
        .await
        .map_err(map_err)?;
        let items = rows.iter().map(endpoint).collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_overfetch(items, page.limit, |e| {
            Cursor::after(e.created_at, e.id)
        }))
    }

    async fn update_endpoint(&mut self, e: &EndpointRow) -> Result<bool, StoreError> {
        ensure_in_scope(&self.scope, e.org_id)?;
        let org = self.scope.org_id();
        let c: &mut SqliteConnection = &mut self.tx;
        let done = sqlx::query(
            "UPDATE webhook_endpoints SET url = ?, event_types = ?, description = ?, disabled = ?, \
             secret_version = ?, previous_until = ?, failing_since = ?, updated_at = ? \
             WHERE org_id = ? AND id = ?",
        )
        .bind(&e.url)
        .bind(joined(&e.event_types))
        .bind(&e.description)
        .bind(&e.disabled)
        .bind(i64::from(e.secret_version))
        .bind(e.previous_until.map(micros))
        .bind(e.failing_since.map(micros))
        .bind(micros(e.updated_at))
        .bind(org.as_uuid())
        .bind(e.id)
        .execute(c)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_endpoint(&mut self, id: Uuid) -> Result<bool, StoreError> {
        let org = self.scope.org_id();
        let c: &mut SqliteConnection = &mut self.tx;
        let done = sqlx::query("DELETE FROM webhook_endpoints WHERE org_id = ? AND id = ?")
            .bind(org.as_uuid())
            .bind(id)
            .execute(c)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn endpoints_for(&mut self, event_type: &str) -> Result<Vec<EndpointRow>, StoreError> {
        let org = self.scope.org_id();
        let c: &mut SqliteConnection = &mut self.tx;
        let rows = sqlx::query(
            "SELECT * FROM webhook_endpoints WHERE org_id = ? AND disabled IS NULL \
             AND instr(event_types, ?) > 0 ORDER BY created_at, id",
        )
        .bind(org.as_uuid())
        .bind(format!(",{event_type},"))
        .fetch_all(c)
        .await
        .map_err(map_err)?;
        rows.iter().map(endpoint).collect()
    }

    async fn enqueue_webhooks(
        &mut self,
        messages: &[WebhookMessageRow],
        deliveries: &[DeliveryRow],
    ) -> Result<(), StoreError> {
        let org = self.scope.org_id();
        for m in messages {
            ensure_in_scope(&self.scope, m.org_id)?;
        }
        for d in deliveries {
            ensure_in_scope(&self.scope, d.org_id)?;
        }
        let c: &mut SqliteConnection = &mut self.tx;
        // Multi-row INSERTs in power-of-two chunks: a few statements per call, each shape
        // prepared once per connection.
        for chunk in power_of_two_chunks(messages, MAX_ROWS) {
            let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO webhook_messages (org_id, id, event_type, payload, created_at) ",
            );
            q.push_values(chunk, |mut row, m| {
                row.push_bind(org.as_uuid())
                    .push_bind(m.id)
                    .push_bind(&m.event_type)
                    .push_bind(&m.payload)
                    .push_bind(micros(m.created_at));
            });
            q.build().execute(&mut *c).await.map_err(map_err)?;
        }
        for chunk in power_of_two_chunks(deliveries, MAX_ROWS) {
            let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO webhook_deliveries (org_id, id, endpoint_id, message_id, state, \
                 attempts, next_attempt_at, created_at) ",
            );
            q.push_values(chunk, |mut row, d| {
                row.push_bind(org.as_uuid())
                    .push_bind(d.id)
                    .push_bind(d.endpoint_id)
                    .push_bind(d.message_id)
                    .push_bind(d.state.as_str())
                    .push_bind(i64::from(d.attempts))
                    .push_bind(micros(d.next_attempt_at))
                    .push_bind(micros(d.created_at));
            });
            q.build().execute(&mut *c).await.map_err(map_err)?;
        }
        Ok(())
    }

    async fn webhook_message(&mut self, id: Uuid) -> Result<Option<WebhookMessageRow>, StoreError> {
        let org = self.scope.org_id();
        let c: &mut SqliteConnection = &mut self.tx;
        let row = sqlx::query("SELECT * FROM webhook_messages WHERE org_id = ? AND id = ?")
            .bind(org.as_uuid())
            .bind(id)
            .fetch_optional(c)
            .await
            .map_err(map_err)?;
        row.as_ref().map(message).transpose()
    }

    async fn delivery(&mut self, id: Uuid) -> Result<Option<DeliveryRow>, StoreError> {
        let org = self.scope.org_id();
        let c: &mut SqliteConnection = &mut self.tx;
        let row = sqlx::query("SELECT * FROM webhook_deliveries WHERE org_id = ? AND id = ?")
            .bind(org.as_uuid())
            .bind(id)
            .fetch_optional(c)
            .await
            .map_err(map_err)?;
        row.as_ref().map(delivery).transpose()
    }

    async fn list_attempts(
        &mut self,
        endpoint_id: Uuid,
        page: PageRequest,
    ) -> Result<Page<AttemptRow>, StoreError> {
        let org = self.scope.org_id();
        let c: &mut SqliteConnection = &mut self.tx;
        let (before_t, before_id) = match page.after {
            Some(cur) => (cur.created_at_micros, Some(cur.id)),
            None => (i64::MAX, None),
        };
        let rows = sqlx::query(
            "SELECT * FROM webhook_attempts WHERE org_id = ?1 AND endpoint_id = ?2 \
             AND (at < ?3 OR (at = ?3 AND (?4 IS NULL OR id < ?4))) \
             ORDER BY at DESC, id DESC LIMIT ?5",
        )
        .bind(org.as_uuid())
        .bind(endpoint_id)
        .bind(before_t)
        .bind(before_id)
        .bind(i64::from(page.limit.get()) + 1)
        .fetch_all(c)
        .await
        .map_err(map_err)?;
        let items = rows.iter().map(attempt).collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_overfetch(items, page.limit, |a| {
            Cursor::after(a.at, a.id)
        }))
    }

    async fn disable_endpoint(
        &mut self,
        id: Uuid,
        reason: &str,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let org = self.scope.org_id();
        let c: &mut SqliteConnection = &mut self.tx;
        let done = sqlx::query(
            "UPDATE webhook_endpoints SET disabled = ?, updated_at = ? \
             WHERE org_id = ? AND id = ? AND disabled IS NULL",
        )
        .bind(reason)
        .bind(micros(at))
        .bind(org.as_uuid())
        .bind(id)
        .execute(c)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn kill_deliveries(&mut self, endpoint_id: Uuid) -> Result<u64, StoreError> {
        let org = self.scope.org_id();
        let c: &mut SqliteConnection = &mut self.tx;
        let done = sqlx::query(
            "UPDATE webhook_deliveries SET state = 'dead' \
             WHERE org_id = ? AND endpoint_id = ? AND state = 'pending'",
        )
        .bind(org.as_uuid())
        .bind(endpoint_id)
        .execute(c)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected())
    }
}

#[async_trait]
impl WebhookQueue for SqliteStore {
    async fn claim_due_webhooks(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<DeliveryRow>, StoreError> {
        let (_turn, mut tx) = self.begin_immediate().await?;
        let c: &mut SqliteConnection = &mut tx;
        let rows = sqlx::query(
            "UPDATE webhook_deliveries SET next_attempt_at = ?1 WHERE rowid IN (\
               SELECT rowid FROM webhook_deliveries WHERE state = 'pending' \
               AND next_attempt_at <= ?2 ORDER BY next_attempt_at, created_at LIMIT ?3) \
             RETURNING *",
        )
        .bind(micros(lease_until))
        .bind(micros(now))
        .bind(i64::from(limit))
        .fetch_all(c)
        .await
        .map_err(map_err)?;
        let mut claimed = rows.iter().map(delivery).collect::<Result<Vec<_>, _>>()?;
        claimed.sort_by_key(|d| (d.created_at, d.id));
        tx.commit().await.map_err(map_err)?;
        Ok(claimed)
    }

    async fn record_webhook_attempts(
        &self,
        org: OrgId,
        attempts: &[AttemptRow],
        outcomes: &[DeliveryOutcome],
        failing_since: &[(Uuid, Option<OffsetDateTime>)],
    ) -> Result<(), StoreError> {
        let (_turn, mut tx) = self.begin_immediate().await?;
        for a in attempts {
            if a.org_id != org {
                return Err(StoreError::Backend(
                    "an attempt of another organisation".into(),
                ));
            }
            let c: &mut SqliteConnection = &mut tx;
            sqlx::query(
                "INSERT INTO webhook_attempts (org_id, id, delivery_id, endpoint_id, message_id, \
                 attempt, at, status, latency_ms, error, response) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(org.as_uuid())
            .bind(a.id)
            .bind(a.delivery_id)
            .bind(a.endpoint_id)
            .bind(a.message_id)
            .bind(i64::from(a.attempt))
            .bind(micros(a.at))
            .bind(a.status.map(i64::from))
            .bind(i64::from(a.latency_ms))
            .bind(&a.error)
            .bind(&a.response)
            .execute(c)
            .await
            .map_err(map_err)?;
        }
        for o in outcomes {
            let c: &mut SqliteConnection = &mut tx;
            sqlx::query(
                "UPDATE webhook_deliveries SET state = ?, attempts = ?, next_attempt_at = ? \
                 WHERE org_id = ? AND id = ? AND state = 'pending' AND next_attempt_at = ?",
            )
            .bind(o.state.as_str())
            .bind(i64::from(o.attempts))
            .bind(micros(o.next_attempt_at))
            .bind(org.as_uuid())
            .bind(o.id)
            .bind(micros(o.leased_until))
            .execute(c)
            .await
            .map_err(map_err)?;
        }
        for (endpoint, since) in failing_since {
            let c: &mut SqliteConnection = &mut tx;
            sqlx::query(
                "UPDATE webhook_endpoints SET failing_since = ? WHERE org_id = ? AND id = ?",
            )
            .bind(since.map(micros))
            .bind(org.as_uuid())
            .bind(endpoint)
            .execute(c)
            .await
            .map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)
    }
}

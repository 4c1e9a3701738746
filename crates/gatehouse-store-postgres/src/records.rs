//! The product's records in PostgreSQL, under forced row-level security, inside one organisation's scope: every statement names the
//! scope's `org_id`.

use async_trait::async_trait;
use gatehouse_core::page::{Cursor, Page, PageRequest};
use gatehouse_core::store::{
    Level, RecordQuery, RecordRow, RecordStore, ensure_in_scope, joined, split_joined,
};
use gatehouse_core::{OrgId, StoreError};
use sqlx::PgConnection;
use sqlx::postgres::PgRow;
use uuid::Uuid;

use crate::errors::map_err;
use crate::rows::{get, opt_time_col, time_col};
use crate::tx::PgTenantTx;

pub(crate) fn record(row: &PgRow) -> Result<RecordRow, StoreError> {
    let level: String = get(row, "level")?;
    let allowed: String = get(row, "allowed")?;
    let tags: String = get(row, "tags")?;
    let has_content: bool = get(row, "has_content")?;
    Ok(RecordRow {
        org_id: OrgId::from_uuid(get(row, "org_id")?),
        id: get(row, "id")?,
        kind: get(row, "type")?,
        external_id: get(row, "external_id")?,
        namespace: get(row, "namespace")?,
        owner: get(row, "owner")?,
        level: Level::parse(&level)
            .ok_or_else(|| StoreError::Corrupt(format!("level {level:?}")))?,
        allowed: split_joined(&allowed),
        tags: split_joined(&tags),
        has_content,
        created_at: time_col(row, "created_at")?,
        updated_at: time_col(row, "updated_at")?,
        expires_at: opt_time_col(row, "expires_at")?,
    })
}

#[async_trait]
impl RecordStore for PgTenantTx {
    async fn insert_record(&mut self, r: &RecordRow) -> Result<(), StoreError> {
        ensure_in_scope(&self.scope, r.org_id)?;
        let org = self.scope.org_id();
        let c: &mut PgConnection = &mut self.tx;
        sqlx::query(
            "INSERT INTO records (org_id, id, type, external_id, namespace, owner, level, allowed, \
             tags, has_content, created_at, updated_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(org.as_uuid())
        .bind(r.id)
        .bind(&r.kind)
        .bind(&r.external_id)
        .bind(&r.namespace)
        .bind(&r.owner)
        .bind(r.level.as_str())
        .bind(joined(&r.allowed))
        .bind(joined(&r.tags))
        .bind(r.has_content)
        .bind(r.created_at)
        .bind(r.updated_at)
        .bind(r.expires_at)
        .execute(c)
        .await
        .map(|_| ())
        .map_err(map_err)
    }

    async fn record(&mut self, id: Uuid) -> Result<Option<RecordRow>, StoreError> {
        let org = self.scope.org_id();
        let c: &mut PgConnection = &mut self.tx;
        let row = sqlx::query("SELECT * FROM records WHERE org_id = $1 AND id = $2")
            .bind(org.as_uuid())
            .bind(id)
            .fetch_optional(c)
            .await
            .map_err(map_err)?;
        row.as_ref().map(record).transpose()
    }

    async fn lock_record(&mut self, id: Uuid) -> Result<Option<RecordRow>, StoreError> {
        let org = self.scope.org_id();
        let c: &mut PgConnection = &mut self.tx;
        let row = sqlx::query("SELECT * FROM records WHERE org_id = $1 AND id = $2 FOR UPDATE")
            .bind(org.as_uuid())
            .bind(id)
            .fetch_optional(c)
            .await
            .map_err(map_err)?;
        row.as_ref().map(record).transpose()
    }

    async fn record_by_external(
        &mut self,
        kind: &str,
        external_id: &str,
    ) -> Result<Option<RecordRow>, StoreError> {
        let org = self.scope.org_id();
        let c: &mut PgConnection = &mut self.tx;
        let row = sqlx::query(
            "SELECT * FROM records WHERE org_id = $1 AND type = $2 AND external_id = $3",
        )
        .bind(org.as_uuid())
        .bind(kind)
        .bind(external_id)
        .fetch_optional(c)
        .await
        .map_err(map_err)?;
        row.as_ref().map(record).transpose()
    }

    async fn update_record(&mut self, r: &RecordRow) -> Result<bool, StoreError> {
        ensure_in_scope(&self.scope, r.org_id)?;
        let org = self.scope.org_id();
        let c: &mut PgConnection = &mut self.tx;
        let done = sqlx::query(
            "UPDATE records SET namespace = $1, level = $2, allowed = $3, tags = $4, \
             has_content = $5, updated_at = $6, expires_at = $7 WHERE org_id = $8 AND id = $9",
        )
        .bind(&r.namespace)
        .bind(r.level.as_str())
        .bind(joined(&r.allowed))
        .bind(joined(&r.tags))
        .bind(r.has_content)
        .bind(r.updated_at)
        .bind(r.expires_at)
        .bind(org.as_uuid())
        .bind(r.id)
        .execute(c)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_record(&mut self, id: Uuid) -> Result<bool, StoreError> {
        let org = self.scope.org_id();
        let c: &mut PgConnection = &mut self.tx;
        let done = sqlx::query("DELETE FROM records WHERE org_id = $1 AND id = $2")
            .bind(org.as_uuid())
            .bind(id)
            .execute(c)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_expired_record(
        &mut self,
        id: Uuid,
        now: time::OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let org = self.scope.org_id();
        let c: &mut PgConnection = &mut self.tx;
        let done = sqlx::query(
            "DELETE FROM records WHERE org_id = $1 AND id = $2 AND expires_at IS NOT NULL AND expires_at <= $3",
        )
        .bind(org.as_uuid())
        .bind(id)
        .bind(now)
        .execute(c)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn purge_expired_records(
        &mut self,
        now: time::OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<Uuid>, StoreError> {
        let org = self.scope.org_id();
        let c: &mut PgConnection = &mut self.tx;
        // SKIP LOCKED: a record a request holds (an update racing its expiry) waits for the
        // next batch instead of stalling this one. The selection is a materialised CTE: as an
        // `IN (...)` subquery the planner may run it more than once, and with SKIP LOCKED each
        // run can pick other rows, deleting more than the batch.
        sqlx::query_scalar(
            "WITH due AS MATERIALIZED (\
               SELECT id FROM records WHERE org_id = $1 AND expires_at IS NOT NULL \
                 AND expires_at <= $2 ORDER BY expires_at LIMIT $3 FOR UPDATE SKIP LOCKED) \
             DELETE FROM records r USING due WHERE r.org_id = $1 AND r.id = due.id \
             RETURNING r.id",
        )
        .bind(org.as_uuid())
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(c)
        .await
        .map_err(map_err)
    }

    async fn list_records(
        &mut self,
        q: &RecordQuery,
        page: PageRequest,
    ) -> Result<Page<RecordRow>, StoreError> {
        let org = self.scope.org_id();
        let c: &mut PgConnection = &mut self.tx;
        let (before_t, before_id) = match page.after {
            Some(cur) => (
                gatehouse_core::clock::from_unix_micros(cur.created_at_micros),
                Some(cur.id),
            ),
            None => (None, None),
        };
        let rows = sqlx::query(
            "SELECT * FROM records WHERE org_id = $1 \
             AND ($2::timestamptz IS NULL OR created_at < $2 \
                  OR (created_at = $2 AND ($3::uuid IS NULL OR id < $3))) \
             AND ($4::text IS NULL OR type = $4) AND ($5::text IS NULL OR namespace = $5) \
             AND ($6::text IS NULL OR strpos(tags, ',' || $6 || ',') > 0) \
             AND ($7::text IS NULL OR owner = $7) \
             AND ($11::timestamptz IS NULL OR expires_at IS NULL OR expires_at > $11) \
             AND ($12 OR owner = $8 OR level = 'public' \
                  OR (level = 'organization' AND strpos($9, ',' || type || ',') > 0) \
                  OR (level = 'private' AND strpos(allowed, ',' || $8 || ',') > 0)) \
             ORDER BY created_at DESC, id DESC LIMIT $10",
        )
        .bind(org.as_uuid())
        .bind(before_t)
        .bind(before_id)
        .bind(&q.kind)
        .bind(&q.namespace)
        .bind(&q.tag)
        .bind(&q.owner)
        .bind(&q.me)
        .bind(joined(&q.readable_types))
        .bind(i64::from(page.limit.get()) + 1)
        .bind(q.now)
        .bind(q.everything)
        .fetch_all(c)
        .await
        .map_err(map_err)?;
        let records = rows.iter().map(record).collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_overfetch(records, page.limit, |r| {
            Cursor::after(r.created_at, r.id)
        }))
    }
}

//! The product's records in SQLite, inside one organisation's scope: every statement names the
//! scope's `org_id`.

use async_trait::async_trait;
use gatehouse_core::page::{Cursor, Page, PageRequest};
use gatehouse_core::store::{
    Level, RecordQuery, RecordRow, RecordStore, ensure_in_scope, joined, split_joined,
};
use gatehouse_core::{OrgId, StoreError};
use sqlx::SqliteConnection;
use sqlx::sqlite::SqliteRow;
use uuid::Uuid;

use crate::errors::map_err;
use crate::rows::{get, micros, opt_time_col, time_col};
use crate::tx::SqliteTenantTx;

pub(crate) fn record(row: &SqliteRow) -> Result<RecordRow, StoreError> {
    let level: String = get(row, "level")?;
    let allowed: String = get(row, "allowed")?;
    let tags: String = get(row, "tags")?;
    let has_content: i64 = get(row, "has_content")?;
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
        has_content: has_content != 0,
        created_at: time_col(row, "created_at")?,
        updated_at: time_col(row, "updated_at")?,
        expires_at: opt_time_col(row, "expires_at")?,
    })
}

#[async_trait]
impl RecordStore for SqliteTenantTx {
    async fn insert_record(&mut self, r: &RecordRow) -> Result<(), StoreError> {
        ensure_in_scope(&self.scope, r.org_id)?;
        let org = self.scope.org_id();
        let c: &mut SqliteConnection = &mut self.tx;
        sqlx::query(
            "INSERT INTO records (org_id, id, type, external_id, namespace, owner, level, allowed, \
             tags, has_content, created_at, updated_at, expires_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        .bind(i64::from(r.has_content))
        .bind(micros(r.created_at))
        .bind(micros(r.updated_at))
        .bind(r.expires_at.map(micros))
        .execute(c)
        .await
        .map(|_| ())
        .map_err(map_err)
    }

    async fn record(&mut self, id: Uuid) -> Result<Option<RecordRow>, StoreError> {
        let org = self.scope.org_id();
        let c: &mut SqliteConnection = &mut self.tx;
        let row = sqlx::query("SELECT * FROM records WHERE org_id = ? AND id = ?")
            .bind(org.as_uuid())
            .bind(id)
            .fetch_optional(c)
            .await
            .map_err(map_err)?;
        row.as_ref().map(record).transpose()
    }

    async fn lock_record(&mut self, id: Uuid) -> Result<Option<RecordRow>, StoreError> {
        self.record(id).await
    }

    async fn record_by_external(
        &mut self,
        kind: &str,
        external_id: &str,
    ) -> Result<Option<RecordRow>, StoreError> {
        let org = self.scope.org_id();
        let c: &mut SqliteConnection = &mut self.tx;
        let row =
            sqlx::query("SELECT * FROM records WHERE org_id = ? AND type = ? AND external_id = ?")
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
        let c: &mut SqliteConnection = &mut self.tx;
        let done = sqlx::query(
            "UPDATE records SET namespace = ?, level = ?, allowed = ?, tags = ?, has_content = ?, \
             updated_at = ?, expires_at = ? WHERE org_id = ? AND id = ?",
        )
        .bind(&r.namespace)
        .bind(r.level.as_str())
        .bind(joined(&r.allowed))
        .bind(joined(&r.tags))
        .bind(i64::from(r.has_content))
        .bind(micros(r.updated_at))
        .bind(r.expires_at.map(micros))
        .bind(org.as_uuid())
        .bind(r.id)
        .execute(c)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_record(&mut self, id: Uuid) -> Result<bool, StoreError> {
        let org = self.scope.org_id();
        let c: &mut SqliteConnection = &mut self.tx;
        let done = sqlx::query("DELETE FROM records WHERE org_id = ? AND id = ?")
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
        let c: &mut SqliteConnection = &mut self.tx;
        let done = sqlx::query(
            "DELETE FROM records WHERE org_id = ? AND id = ? AND expires_at IS NOT NULL AND expires_at <= ?",
        )
        .bind(org.as_uuid())
        .bind(id)
        .bind(micros(now))
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
        let c: &mut SqliteConnection = &mut self.tx;
        sqlx::query_scalar(
            "DELETE FROM records WHERE org_id = ?1 AND id IN (\
               SELECT id FROM records WHERE org_id = ?1 AND expires_at IS NOT NULL \
                 AND expires_at <= ?2 ORDER BY expires_at LIMIT ?3) \
             RETURNING id",
        )
        .bind(org.as_uuid())
        .bind(micros(now))
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
        let c: &mut SqliteConnection = &mut self.tx;
        let (before_t, before_id) = match page.after {
            Some(cur) => (cur.created_at_micros, Some(cur.id)),
            None => (i64::MAX, None),
        };
        let rows = sqlx::query(
            "SELECT * FROM records WHERE org_id = ?1 \
             AND (created_at < ?2 OR (created_at = ?2 AND (?3 IS NULL OR id < ?3))) \
             AND (?4 IS NULL OR type = ?4) AND (?5 IS NULL OR namespace = ?5) \
             AND (?6 IS NULL OR instr(tags, ',' || ?6 || ',') > 0) \
             AND (?7 IS NULL OR owner = ?7) \
             AND (?11 IS NULL OR expires_at IS NULL OR expires_at > ?11) \
             AND (?12 OR owner = ?8 OR level = 'public' \
                  OR (level = 'organization' AND instr(?9, ',' || type || ',') > 0) \
                  OR (level = 'private' AND instr(allowed, ',' || ?8 || ',') > 0)) \
             ORDER BY created_at DESC, id DESC LIMIT ?10",
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
        .bind(q.now.map(micros))
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

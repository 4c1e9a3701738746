//! Grants between organisations in PostgreSQL. The granting scope manages its rows; the grantee's
//! scope reads the grants made to it and, through them, the records they cover. Row-level
//! security admits those records by the `granted_read` policy (migration 0013), which judges
//! expiry by `gatehouse.now`: every read of granted records sets it first from the injected
//! clock. Each query also states the grant's conditions itself, as SQLite's do, so the two
//! backends answer alike and the policy is a second, independent gate.

use async_trait::async_trait;
use gatehouse_core::page::{Cursor, Page, PageRequest};
use gatehouse_core::store::{
    GrantAccess, GrantRow, GrantStore, GrantedRecord, RecordQuery, ensure_in_scope, joined,
    split_joined,
};
use gatehouse_core::{OrgId, StoreError};
use sqlx::PgConnection;
use sqlx::postgres::PgRow;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::errors::map_err;
use crate::records::record;
use crate::rows::{get, opt_time_col, time_col};
use crate::tx::PgTenantTx;

fn access(s: &str) -> Result<GrantAccess, StoreError> {
    GrantAccess::parse(s).ok_or_else(|| StoreError::Corrupt(format!("grant access {s:?}")))
}

fn grant(row: &PgRow) -> Result<GrantRow, StoreError> {
    let types: String = get(row, "types")?;
    let namespaces: String = get(row, "namespaces")?;
    let a: String = get(row, "access")?;
    Ok(GrantRow {
        org_id: OrgId::from_uuid(get(row, "org_id")?),
        id: get(row, "id")?,
        grantee: OrgId::from_uuid(get(row, "grantee_org_id")?),
        types: split_joined(&types),
        namespaces: split_joined(&namespaces),
        access: access(&a)?,
        created_by: get(row, "created_by")?,
        created_at: time_col(row, "created_at")?,
        expires_at: opt_time_col(row, "expires_at")?,
        revoked_at: opt_time_col(row, "revoked_at")?,
    })
}

fn granted(row: &PgRow) -> Result<GrantedRecord, StoreError> {
    let a: String = get(row, "grant_access")?;
    Ok(GrantedRecord {
        record: record(row)?,
        grant_id: get(row, "grant_id")?,
        access: access(&a)?,
        expires_at: opt_time_col(row, "grant_expires_at")?,
    })
}

/// Tells the row-level-security policy the time to judge expiry by, for this transaction only.
async fn set_now(c: &mut PgConnection, now: OffsetDateTime) -> Result<(), StoreError> {
    sqlx::query("SELECT set_config('gatehouse.now', $1::timestamptz::text, true)")
        .bind(now)
        .execute(c)
        .await
        .map(|_| ())
        .map_err(map_err)
}

/// Every query below binds the grantee as $1 and the time as $2. The best grant (read_write
/// first) from the record's organisation, live and covering it, is joined laterally.
fn granted_select(condition: &str) -> String {
    format!(
        "SELECT r.*, g.id AS grant_id, g.access AS grant_access, \
         g.expires_at AS grant_expires_at FROM records r \
         CROSS JOIN LATERAL (SELECT g.id, g.access, g.expires_at FROM grants g WHERE g.org_id = r.org_id \
             AND g.grantee_org_id = $1 AND g.revoked_at IS NULL \
             AND (g.expires_at IS NULL OR g.expires_at > $2) \
             AND (g.types = '' OR strpos(g.types, ',' || r.type || ',') > 0) \
             AND (g.namespaces = '' OR (r.namespace IS NOT NULL \
                  AND strpos(r.namespace, ',') = 0 \
                  AND strpos(g.namespaces, ',' || r.namespace || ',') > 0)) \
             ORDER BY g.access = 'read_write' DESC, g.id LIMIT 1) g \
         WHERE r.org_id <> $1 AND r.level <> 'private' \
             AND (r.expires_at IS NULL OR r.expires_at > $2) AND r.org_id IN \
             (SELECT org_id FROM grants WHERE grantee_org_id = $1 AND revoked_at IS NULL \
              AND (expires_at IS NULL OR expires_at > $2)) AND {condition}"
    )
}

async fn grant_page(
    c: &mut PgConnection,
    column: &str,
    org: OrgId,
    page: PageRequest,
) -> Result<Page<GrantRow>, StoreError> {
    let (before_t, before_id) = match page.after {
        Some(cur) => (
            gatehouse_core::clock::from_unix_micros(cur.created_at_micros),
            Some(cur.id),
        ),
        None => (None, None),
    };
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT * FROM grants WHERE {column} = $1 \
         AND ($2::timestamptz IS NULL OR created_at < $2 \
              OR (created_at = $2 AND ($3::uuid IS NULL OR id < $3))) \
         ORDER BY created_at DESC, id DESC LIMIT $4"
    )))
    .bind(org.as_uuid())
    .bind(before_t)
    .bind(before_id)
    .bind(i64::from(page.limit.get()) + 1)
    .fetch_all(c)
    .await
    .map_err(map_err)?;
    let grants = rows.iter().map(grant).collect::<Result<Vec<_>, _>>()?;
    Ok(Page::from_overfetch(grants, page.limit, |g| {
        Cursor::after(g.created_at, g.id)
    }))
}

#[async_trait]
impl GrantStore for PgTenantTx {
    async fn insert_grant(&mut self, g: &GrantRow) -> Result<(), StoreError> {
        ensure_in_scope(&self.scope, g.org_id)?;
        let c: &mut PgConnection = &mut self.tx;
        sqlx::query(
            "INSERT INTO grants (org_id, id, grantee_org_id, types, namespaces, access, \
             created_by, created_at, expires_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(g.org_id.as_uuid())
        .bind(g.id)
        .bind(g.grantee.as_uuid())
        .bind(joined(&g.types))
        .bind(joined(&g.namespaces))
        .bind(g.access.as_str())
        .bind(&g.created_by)
        .bind(g.created_at)
        .bind(g.expires_at)
        .bind(g.revoked_at)
        .execute(c)
        .await
        .map(|_| ())
        .map_err(map_err)
    }

    async fn grant(&mut self, id: Uuid) -> Result<Option<GrantRow>, StoreError> {
        let org = self.scope.org_id();
        let c: &mut PgConnection = &mut self.tx;
        let row = sqlx::query("SELECT * FROM grants WHERE org_id = $1 AND id = $2")
            .bind(org.as_uuid())
            .bind(id)
            .fetch_optional(c)
            .await
            .map_err(map_err)?;
        row.as_ref().map(grant).transpose()
    }

    async fn lock_grant(&mut self, id: Uuid) -> Result<Option<GrantRow>, StoreError> {
        let org = self.scope.org_id();
        let c: &mut PgConnection = &mut self.tx;
        let row = sqlx::query("SELECT * FROM grants WHERE org_id = $1 AND id = $2 FOR SHARE")
            .bind(org.as_uuid())
            .bind(id)
            .fetch_optional(c)
            .await
            .map_err(map_err)?;
        row.as_ref().map(grant).transpose()
    }

    async fn grants_given(&mut self, page: PageRequest) -> Result<Page<GrantRow>, StoreError> {
        let org = self.scope.org_id();
        grant_page(&mut self.tx, "org_id", org, page).await
    }

    async fn grants_received(&mut self, page: PageRequest) -> Result<Page<GrantRow>, StoreError> {
        let org = self.scope.org_id();
        grant_page(&mut self.tx, "grantee_org_id", org, page).await
    }

    async fn revoke_grant(&mut self, id: Uuid, at: OffsetDateTime) -> Result<bool, StoreError> {
        let org = self.scope.org_id();
        let c: &mut PgConnection = &mut self.tx;
        let done = sqlx::query(
            "UPDATE grants SET revoked_at = $1 \
             WHERE org_id = $2 AND id = $3 AND revoked_at IS NULL",
        )
        .bind(at)
        .bind(org.as_uuid())
        .bind(id)
        .execute(c)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn granted_record(
        &mut self,
        id: Uuid,
        now: OffsetDateTime,
    ) -> Result<Option<GrantedRecord>, StoreError> {
        let org = self.scope.org_id();
        set_now(&mut self.tx, now).await?;
        let c: &mut PgConnection = &mut self.tx;
        let row = sqlx::query(sqlx::AssertSqlSafe(granted_select("r.id = $3")))
            .bind(org.as_uuid())
            .bind(now)
            .bind(id)
            .fetch_optional(c)
            .await
            .map_err(map_err)?;
        row.as_ref().map(granted).transpose()
    }

    async fn granted_record_by_external(
        &mut self,
        owner: OrgId,
        kind: &str,
        external_id: &str,
        now: OffsetDateTime,
    ) -> Result<Option<GrantedRecord>, StoreError> {
        let org = self.scope.org_id();
        set_now(&mut self.tx, now).await?;
        let c: &mut PgConnection = &mut self.tx;
        let row = sqlx::query(sqlx::AssertSqlSafe(granted_select(
            "r.org_id = $3 AND r.type = $4 AND r.external_id = $5",
        )))
        .bind(org.as_uuid())
        .bind(now)
        .bind(owner.as_uuid())
        .bind(kind)
        .bind(external_id)
        .fetch_optional(c)
        .await
        .map_err(map_err)?;
        row.as_ref().map(granted).transpose()
    }

    async fn list_granted_records(
        &mut self,
        q: &RecordQuery,
        now: OffsetDateTime,
        page: PageRequest,
    ) -> Result<Page<GrantedRecord>, StoreError> {
        let org = self.scope.org_id();
        set_now(&mut self.tx, now).await?;
        let c: &mut PgConnection = &mut self.tx;
        let (before_t, before_id) = match page.after {
            Some(cur) => (
                gatehouse_core::clock::from_unix_micros(cur.created_at_micros),
                Some(cur.id),
            ),
            None => (None, None),
        };
        let sql = format!(
            "{} ORDER BY r.created_at DESC, r.id DESC LIMIT $10",
            granted_select(
                "($3::timestamptz IS NULL OR r.created_at < $3 \
                  OR (r.created_at = $3 AND ($4::uuid IS NULL OR r.id < $4))) \
                 AND ($5::text IS NULL OR r.type = $5) AND ($6::text IS NULL OR r.namespace = $6) \
                 AND ($7::text IS NULL OR strpos(r.tags, ',' || $7 || ',') > 0) \
                 AND ($8::text IS NULL OR r.owner = $8) \
                 AND strpos($9, ',' || r.type || ',') > 0"
            )
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(org.as_uuid())
            .bind(now)
            .bind(before_t)
            .bind(before_id)
            .bind(&q.kind)
            .bind(&q.namespace)
            .bind(&q.tag)
            .bind(&q.owner)
            .bind(joined(&q.readable_types))
            .bind(i64::from(page.limit.get()) + 1)
            .fetch_all(c)
            .await
            .map_err(map_err)?;
        let records = rows.iter().map(granted).collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_overfetch(records, page.limit, |g| {
            Cursor::after(g.record.created_at, g.record.id)
        }))
    }
}

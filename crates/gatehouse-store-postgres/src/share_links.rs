//! Share links and the opt-out list in PostgreSQL, under forced row-level security, inside one organisation's scope (the index lookup
//! by digest is the one platform read).

use async_trait::async_trait;
use gatehouse_core::page::{Cursor, Page, PageRequest};
use gatehouse_core::store::{ShareLinkIndexStore, ShareLinkRow, ShareLinkStore, ensure_in_scope};
use gatehouse_core::{OrgId, StoreError};
use sqlx::PgConnection;
use sqlx::postgres::PgRow;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::declare::{Named, declare};
use crate::errors::map_err;
use crate::rows::{get, int, opt_time_col, time_col, u32_col};
use crate::tx::{PgTenantTx, PgTx};

fn link(row: &PgRow) -> Result<ShareLinkRow, StoreError> {
    let max_views: Option<i32> = get(row, "max_views")?;
    Ok(ShareLinkRow {
        org_id: OrgId::from_uuid(get(row, "org_id")?),
        id: get(row, "id")?,
        record_id: get(row, "record_id")?,
        digest: get(row, "digest")?,
        password_hash: get(row, "password_hash")?,
        generation: u32_col(row, "generation")?,
        expires_at: time_col(row, "expires_at")?,
        max_views: max_views
            .map(|v| u32::try_from(v).map_err(|_| StoreError::Corrupt(format!("max_views {v}"))))
            .transpose()?,
        views: u32_col(row, "views")?,
        created_by: get(row, "created_by")?,
        created_at: time_col(row, "created_at")?,
        revoked_at: opt_time_col(row, "revoked_at")?,
    })
}

#[async_trait]
impl ShareLinkIndexStore for PgTx {
    async fn share_link_owner(
        &mut self,
        digest: &[u8],
    ) -> Result<Option<(OrgId, Uuid)>, StoreError> {
        declare(&mut self.tx, Named::Digest(digest)).await?;
        let c: &mut PgConnection = &mut self.tx;
        let row = sqlx::query("SELECT org_id, id FROM share_links WHERE digest = $1")
            .bind(digest)
            .fetch_optional(c)
            .await
            .map_err(map_err)?;
        row.map(|r| Ok((OrgId::from_uuid(get(&r, "org_id")?), get(&r, "id")?)))
            .transpose()
    }
}

#[async_trait]
impl ShareLinkStore for PgTenantTx {
    async fn insert_share_link(&mut self, l: &ShareLinkRow) -> Result<(), StoreError> {
        ensure_in_scope(&self.scope, l.org_id)?;
        let org = self.scope.org_id();
        let c: &mut PgConnection = &mut self.tx;
        sqlx::query(
            "INSERT INTO share_links (org_id, id, record_id, digest, password_hash, generation, \
             expires_at, max_views, views, created_by, created_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(org.as_uuid())
        .bind(l.id)
        .bind(l.record_id)
        .bind(&l.digest)
        .bind(&l.password_hash)
        .bind(int(l.generation))
        .bind(l.expires_at)
        .bind(l.max_views.map(int))
        .bind(int(l.views))
        .bind(&l.created_by)
        .bind(l.created_at)
        .bind(l.revoked_at)
        .execute(c)
        .await
        .map(|_| ())
        .map_err(map_err)
    }

    async fn share_link(&mut self, id: Uuid) -> Result<Option<ShareLinkRow>, StoreError> {
        let org = self.scope.org_id();
        let c: &mut PgConnection = &mut self.tx;
        let row = sqlx::query("SELECT * FROM share_links WHERE org_id = $1 AND id = $2")
            .bind(org.as_uuid())
            .bind(id)
            .fetch_optional(c)
            .await
            .map_err(map_err)?;
        row.as_ref().map(link).transpose()
    }

    async fn share_links_of(
        &mut self,
        record_id: Uuid,
        page: PageRequest,
    ) -> Result<Page<ShareLinkRow>, StoreError> {
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
            "SELECT * FROM share_links WHERE org_id = $1 AND record_id = $2 \
             AND ($3::timestamptz IS NULL OR created_at < $3 \
                  OR (created_at = $3 AND ($4::uuid IS NULL OR id < $4))) \
             ORDER BY created_at DESC, id DESC LIMIT $5",
        )
        .bind(org.as_uuid())
        .bind(record_id)
        .bind(before_t)
        .bind(before_id)
        .bind(i64::from(page.limit.get()) + 1)
        .fetch_all(c)
        .await
        .map_err(map_err)?;
        let links = rows.iter().map(link).collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_overfetch(links, page.limit, |l| {
            Cursor::after(l.created_at, l.id)
        }))
    }

    async fn count_share_view(
        &mut self,
        id: Uuid,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let org = self.scope.org_id();
        let c: &mut PgConnection = &mut self.tx;
        let done = sqlx::query(
            "UPDATE share_links SET views = views + 1 WHERE org_id = $1 AND id = $2 \
             AND revoked_at IS NULL AND expires_at > $3 \
             AND (max_views IS NULL OR views < max_views)",
        )
        .bind(org.as_uuid())
        .bind(id)
        .bind(now)
        .execute(c)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn add_share_views(&mut self, id: Uuid, views: u32) -> Result<(), StoreError> {
        let org = self.scope.org_id();
        let c: &mut PgConnection = &mut self.tx;
        sqlx::query("UPDATE share_links SET views = LEAST(views::bigint + $1, 2147483647) WHERE org_id = $2 AND id = $3")
        .bind(i64::from(views))
        .bind(org.as_uuid())
        .bind(id)
        .execute(c)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn set_share_password(
        &mut self,
        id: Uuid,
        password_hash: Option<&str>,
    ) -> Result<bool, StoreError> {
        let org = self.scope.org_id();
        let c: &mut PgConnection = &mut self.tx;
        let done = sqlx::query(
            "UPDATE share_links SET password_hash = $1, generation = generation + 1 \
             WHERE org_id = $2 AND id = $3 AND revoked_at IS NULL",
        )
        .bind(password_hash)
        .bind(org.as_uuid())
        .bind(id)
        .execute(c)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn revoke_share_link(
        &mut self,
        id: Uuid,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let org = self.scope.org_id();
        let c: &mut PgConnection = &mut self.tx;
        let done = sqlx::query(
            "UPDATE share_links SET revoked_at = $1 WHERE org_id = $2 AND id = $3 AND revoked_at IS NULL",
        )
        .bind(at)
        .bind(org.as_uuid())
        .bind(id)
        .execute(c)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn add_opt_out(
        &mut self,
        recipient: &[u8],
        list: &str,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let org = self.scope.org_id();
        let c: &mut PgConnection = &mut self.tx;
        let done = sqlx::query(
            "INSERT INTO mail_opt_outs (org_id, recipient, list, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT DO NOTHING",
        )
        .bind(org.as_uuid())
        .bind(recipient)
        .bind(list)
        .bind(at)
        .execute(c)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn opted_out(&mut self, recipient: &[u8], list: &str) -> Result<bool, StoreError> {
        let org = self.scope.org_id();
        let c: &mut PgConnection = &mut self.tx;
        let row = sqlx::query(
            "SELECT 1 AS one FROM mail_opt_outs WHERE org_id = $1 AND recipient = $2 AND list = $3",
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

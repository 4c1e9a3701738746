//! Transactions. The platform transaction reads and writes users and organisations; `enter` turns
//! it into a tenant transaction whose every statement names the scope's `org_id`.

use async_trait::async_trait;
use gatehouse_core::clock::from_unix_micros;
use gatehouse_core::page::{Cursor, Page, PageRequest};
use gatehouse_core::store::{
    MembershipRecord, OrganizationRecord, PlatformTx, TenantTx, UserRecord, ensure_in_scope,
};
use gatehouse_core::{OrgId, StoreError, TenantScope, UserId};
use sqlx::{Postgres, Transaction};

use crate::errors::map_err;
use crate::rows;

pub(crate) struct PgTx {
    tx: Transaction<'static, Postgres>,
}

impl PgTx {
    pub(crate) fn platform(tx: Transaction<'static, Postgres>) -> Self {
        Self { tx }
    }
}

pub(crate) struct PgTenantTx {
    tx: Transaction<'static, Postgres>,
    scope: TenantScope,
}

#[async_trait]
impl PlatformTx for PgTx {
    async fn insert_user(&mut self, u: &UserRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO users (id, email, name, password_hash, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(u.id.as_uuid())
        .bind(&u.email)
        .bind(&u.name)
        .bind(&u.password_hash)
        .bind(u.created_at)
        .execute(&mut *self.tx)
        .await
        .map(|_| ())
        .map_err(map_err)
    }

    async fn user_by_email(&mut self, email: &str) -> Result<Option<UserRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM users WHERE email = $1")
            .bind(email)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(map_err)?;
        row.as_ref().map(rows::user).transpose()
    }

    async fn user_by_id(&mut self, id: UserId) -> Result<Option<UserRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM users WHERE id = $1")
            .bind(id.as_uuid())
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(map_err)?;
        row.as_ref().map(rows::user).transpose()
    }

    async fn insert_organization(&mut self, o: &OrganizationRecord) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO organizations (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(o.id.as_uuid())
            .bind(&o.name)
            .bind(o.created_at)
            .execute(&mut *self.tx)
            .await
            .map(|_| ())
            .map_err(map_err)
    }

    async fn organization_by_id(
        &mut self,
        id: OrgId,
    ) -> Result<Option<OrganizationRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM organizations WHERE id = $1")
            .bind(id.as_uuid())
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(map_err)?;
        row.as_ref().map(rows::organization).transpose()
    }

    async fn enter(self: Box<Self>, scope: &TenantScope) -> Result<Box<dyn TenantTx>, StoreError> {
        let mut tx = self.tx;
        // Transaction-local: the setting ends with this transaction and never leaks to the next
        // user of the pooled connection.
        sqlx::query("SELECT set_config('gatehouse.org_id', $1, true)")
            .bind(scope.org_id().to_string())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        Ok(Box::new(PgTenantTx { tx, scope: *scope }))
    }

    async fn commit(self: Box<Self>) -> Result<(), StoreError> {
        self.tx.commit().await.map_err(map_err)
    }
}

#[async_trait]
impl TenantTx for PgTenantTx {
    fn scope(&self) -> &TenantScope {
        &self.scope
    }

    async fn insert_membership(&mut self, m: &MembershipRecord) -> Result<(), StoreError> {
        ensure_in_scope(&self.scope, m.org_id)?;
        sqlx::query(
            "INSERT INTO memberships (org_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(self.scope.org_id().as_uuid())
        .bind(m.user_id.as_uuid())
        .bind(m.role.as_str())
        .bind(m.created_at)
        .execute(&mut *self.tx)
        .await
        .map(|_| ())
        .map_err(map_err)
    }

    async fn membership(&mut self, user: UserId) -> Result<Option<MembershipRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM memberships WHERE org_id = $1 AND user_id = $2")
            .bind(self.scope.org_id().as_uuid())
            .bind(user.as_uuid())
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(map_err)?;
        row.as_ref().map(rows::membership).transpose()
    }

    async fn list_memberships(
        &mut self,
        page: PageRequest,
    ) -> Result<Page<MembershipRecord>, StoreError> {
        let org = self.scope.org_id().as_uuid();
        let limit = i64::from(page.limit.get()) + 1;
        let found = match page.after {
            Some(c) => {
                let after = from_unix_micros(c.created_at_micros)
                    .ok_or_else(|| StoreError::Backend("cursor time out of range".into()))?;
                sqlx::query(
                    "SELECT * FROM memberships WHERE org_id = $1 \
                     AND (created_at, user_id) > ($2, $3) \
                     ORDER BY created_at, user_id LIMIT $4",
                )
                .bind(org)
                .bind(after)
                .bind(c.id)
                .bind(limit)
                .fetch_all(&mut *self.tx)
                .await
            }
            None => {
                sqlx::query(
                    "SELECT * FROM memberships WHERE org_id = $1 \
                     ORDER BY created_at, user_id LIMIT $2",
                )
                .bind(org)
                .bind(limit)
                .fetch_all(&mut *self.tx)
                .await
            }
        }
        .map_err(map_err)?;
        let records = found
            .iter()
            .map(rows::membership)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_overfetch(records, page.limit, |m| {
            Cursor::after(m.created_at, m.user_id.as_uuid())
        }))
    }

    async fn commit(self: Box<Self>) -> Result<(), StoreError> {
        self.tx.commit().await.map_err(map_err)
    }
}

//! Transactions. The platform transaction reads and writes users and organisations; `enter` turns
//! it into a tenant transaction whose every statement names the scope's `org_id`.

use async_trait::async_trait;
use gatehouse_core::page::{Cursor, Page, PageRequest};
use gatehouse_core::store::{
    MembershipRecord, OrganizationRecord, PlatformTx, TenantTx, UserRecord, ensure_in_scope,
};
use gatehouse_core::{OrgId, StoreError, TenantScope, UserId};
use sqlx::{Sqlite, Transaction};

use crate::errors::{map_err, map_user_insert_err};
use crate::rows::{self, micros};

pub(crate) struct SqliteTx {
    tx: Transaction<'static, Sqlite>,
}

impl SqliteTx {
    pub(crate) fn platform(tx: Transaction<'static, Sqlite>) -> Self {
        Self { tx }
    }
}

pub(crate) struct SqliteTenantTx {
    tx: Transaction<'static, Sqlite>,
    scope: TenantScope,
}

#[async_trait]
impl PlatformTx for SqliteTx {
    async fn insert_user(&mut self, u: &UserRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO users (id, email, name, password_hash, created_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(u.id.as_uuid())
        .bind(&u.email)
        .bind(&u.name)
        .bind(&u.password_hash)
        .bind(micros(u.created_at))
        .execute(&mut *self.tx)
        .await
        .map(|_| ())
        .map_err(map_user_insert_err)
    }

    async fn user_by_email(&mut self, email: &str) -> Result<Option<UserRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM users WHERE email = ?")
            .bind(email)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(map_err)?;
        row.as_ref().map(rows::user).transpose()
    }

    async fn user_by_id(&mut self, id: UserId) -> Result<Option<UserRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM users WHERE id = ?")
            .bind(id.as_uuid())
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(map_err)?;
        row.as_ref().map(rows::user).transpose()
    }

    async fn insert_organization(&mut self, o: &OrganizationRecord) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO organizations (id, name, created_at) VALUES (?, ?, ?)")
            .bind(o.id.as_uuid())
            .bind(&o.name)
            .bind(micros(o.created_at))
            .execute(&mut *self.tx)
            .await
            .map(|_| ())
            .map_err(map_err)
    }

    async fn organization_by_id(
        &mut self,
        id: OrgId,
    ) -> Result<Option<OrganizationRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM organizations WHERE id = ?")
            .bind(id.as_uuid())
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(map_err)?;
        row.as_ref().map(rows::organization).transpose()
    }

    async fn enter(self: Box<Self>, scope: &TenantScope) -> Result<Box<dyn TenantTx>, StoreError> {
        Ok(Box::new(SqliteTenantTx {
            tx: self.tx,
            scope: *scope,
        }))
    }

    async fn commit(self: Box<Self>) -> Result<(), StoreError> {
        self.tx.commit().await.map_err(map_err)
    }
}

#[async_trait]
impl TenantTx for SqliteTenantTx {
    fn scope(&self) -> &TenantScope {
        &self.scope
    }

    async fn insert_membership(&mut self, m: &MembershipRecord) -> Result<(), StoreError> {
        ensure_in_scope(&self.scope, m.org_id)?;
        sqlx::query(
            "INSERT INTO memberships (org_id, user_id, role, created_at) VALUES (?, ?, ?, ?)",
        )
        .bind(self.scope.org_id().as_uuid())
        .bind(m.user_id.as_uuid())
        .bind(m.role.as_str())
        .bind(micros(m.created_at))
        .execute(&mut *self.tx)
        .await
        .map(|_| ())
        .map_err(map_err)
    }

    async fn membership(&mut self, user: UserId) -> Result<Option<MembershipRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM memberships WHERE org_id = ? AND user_id = ?")
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
        let (after_t, after_id) = match page.after {
            Some(c) => (c.created_at_micros, Some(c.id)),
            None => (i64::MIN, None),
        };
        let found = sqlx::query(
            "SELECT * FROM memberships WHERE org_id = ?1 \
             AND (created_at > ?2 OR (created_at = ?2 AND (?3 IS NULL OR user_id > ?3))) \
             ORDER BY created_at, user_id LIMIT ?4",
        )
        .bind(self.scope.org_id().as_uuid())
        .bind(after_t)
        .bind(after_id)
        .bind(i64::from(page.limit.get()) + 1)
        .fetch_all(&mut *self.tx)
        .await
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

//! Transactions. The platform transaction reads and writes users and organisations; `enter` turns
//! it into a tenant transaction whose every statement names the scope's `org_id`. Each role's
//! statements are in the file named after it (`users.rs`, `sessions.rs`, ...).

use async_trait::async_trait;
use gatehouse_core::audit::Audited;
use gatehouse_core::store::{PlatformTx, TenantTx};
use gatehouse_core::telemetry::StoreTimer;
use gatehouse_core::{StoreError, TenantScope};
use sqlx::{Postgres, Transaction};

use crate::errors::map_err;

pub(crate) struct PgTx {
    pub(crate) tx: Transaction<'static, Postgres>,
    /// Adds the transaction's time, begin to end, to the request's store stage.
    timer: StoreTimer,
}

impl PgTx {
    pub(crate) fn platform(tx: Transaction<'static, Postgres>, timer: StoreTimer) -> Self {
        Self { tx, timer }
    }
}

pub(crate) struct PgTenantTx {
    pub(crate) tx: Transaction<'static, Postgres>,
    pub(crate) scope: TenantScope,
    /// Held for its drop, which records the transaction's time.
    _timer: StoreTimer,
}

#[async_trait]
impl PlatformTx for PgTx {
    async fn enter(self: Box<Self>, scope: &TenantScope) -> Result<Box<dyn TenantTx>, StoreError> {
        let mut tx = self.tx;
        let timer = self.timer;
        // Transaction-local: the setting ends with this transaction and never leaks to the next
        // user of the pooled connection. A user named for a cross-organisation membership
        // lookup, and every platform row declared before, is forgotten: inside a scope only the
        // scope's rows are visible.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT set_config('gatehouse.org_id', $1, true), {}",
            crate::declare::CLEAR
        )))
        .bind(scope.org_id().to_string())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        Ok(Box::new(PgTenantTx {
            tx,
            scope: *scope,
            _timer: timer,
        }))
    }

    async fn commit(self: Box<Self>, _proof: Audited) -> Result<(), StoreError> {
        self.tx.commit().await.map_err(map_err)
    }
}

#[async_trait]
impl TenantTx for PgTenantTx {
    fn scope(&self) -> &TenantScope {
        &self.scope
    }

    async fn commit(self: Box<Self>, _proof: Audited) -> Result<(), StoreError> {
        self.tx.commit().await.map_err(map_err)
    }
}

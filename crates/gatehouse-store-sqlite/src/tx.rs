//! Transactions. The platform transaction reads and writes users and organisations; `enter` turns
//! it into a tenant transaction whose every statement names the scope's `org_id`.
//!
//! Each role's statements are in the file named after it (`users.rs`, `sessions.rs`, ...): here
//! are only the two transaction types, opening them, entering a scope and committing.

use async_trait::async_trait;
use gatehouse_core::audit::Audited;
use gatehouse_core::store::{PlatformTx, TenantTx};
use gatehouse_core::{StoreError, TenantScope};
use sqlx::{Sqlite, Transaction};

use crate::WriteTurn;

use gatehouse_core::telemetry::StoreTimer;

use crate::errors::map_err;

pub(crate) struct SqliteTx {
    pub(crate) tx: Transaction<'static, Sqlite>,
    /// Adds the transaction's time, begin to end, to the request's store stage.
    timer: StoreTimer,
    /// A writer's turn, released after `tx` (fields drop in order); `None` for a reader.
    pub(crate) turn: Option<WriteTurn>,
}

impl SqliteTx {
    /// A reader (`BEGIN DEFERRED`).
    pub(crate) fn reading(tx: Transaction<'static, Sqlite>, timer: StoreTimer) -> Self {
        Self {
            tx,
            timer,
            turn: None,
        }
    }

    /// A writer (`BEGIN IMMEDIATE`) holding its turn.
    pub(crate) fn writing(
        tx: Transaction<'static, Sqlite>,
        timer: StoreTimer,
        turn: WriteTurn,
    ) -> Self {
        Self {
            tx,
            timer,
            turn: Some(turn),
        }
    }
}

pub(crate) struct SqliteTenantTx {
    pub(crate) tx: Transaction<'static, Sqlite>,
    pub(crate) scope: TenantScope,
    /// Held for its drop, which records the transaction's time.
    _timer: StoreTimer,
    /// Held for its drop, after `tx`'s.
    _turn: Option<WriteTurn>,
}

#[async_trait]
impl PlatformTx for SqliteTx {
    async fn enter(self: Box<Self>, scope: &TenantScope) -> Result<Box<dyn TenantTx>, StoreError> {
        Ok(Box::new(SqliteTenantTx {
            tx: self.tx,
            scope: *scope,
            _timer: self.timer,
            _turn: self.turn,
        }))
    }

    async fn commit(self: Box<Self>, _proof: Audited) -> Result<(), StoreError> {
        self.tx.commit().await.map_err(map_err)
    }
}

#[async_trait]
impl TenantTx for SqliteTenantTx {
    fn scope(&self) -> &TenantScope {
        &self.scope
    }

    async fn commit(self: Box<Self>, _proof: Audited) -> Result<(), StoreError> {
        self.tx.commit().await.map_err(map_err)
    }
}

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

/// Scopes the transaction to `scope`'s organisation. Transaction-local: the setting ends with the
/// transaction and never leaks to the next user of the pooled connection. A user named for a
/// cross-organisation membership lookup, and every platform row declared before, is forgotten:
/// inside a scope only the scope's rows are visible.
pub(crate) async fn enter_scope(
    c: &mut sqlx::PgConnection,
    scope: &TenantScope,
) -> Result<(), StoreError> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT set_config('gatehouse.org_id', $1, true), {}",
        crate::declare::CLEAR
    )))
    .bind(scope.org_id().to_string())
    .execute(c)
    .await
    .map(|_| ())
    .map_err(map_err)
}

#[async_trait]
impl PlatformTx for PgTx {
    async fn enter(self: Box<Self>, scope: &TenantScope) -> Result<Box<dyn TenantTx>, StoreError> {
        let mut tx = self.tx;
        let timer = self.timer;
        enter_scope(&mut tx, scope).await?;
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use sqlx::{Connection, PgConnection};
    use uuid::Uuid;

    use super::*;
    use crate::declare::{Named, declare};

    async fn settings(c: &mut PgConnection) -> Vec<String> {
        let names = [
            "gatehouse.org_id",
            "gatehouse.user_id",
            "gatehouse.session_ids",
            "gatehouse.subject",
            "gatehouse.email",
            "gatehouse.digest",
            "gatehouse.impersonator",
            "gatehouse.mail_id",
            "gatehouse.job",
        ];
        let mut out = Vec::new();
        for n in names {
            let (v,): (Option<String>,) = sqlx::query_as("SELECT current_setting($1, true)")
                .bind(n)
                .fetch_one(&mut *c)
                .await
                .unwrap();
            out.push(v.unwrap_or_default());
        }
        out
    }

    /// Needs PostgreSQL (as the PostgreSQL suite does) but no schema: only settings are read.
    #[tokio::test]
    async fn a_declaration_replaces_the_last_and_entering_a_scope_forgets_them_all() {
        let url = std::env::var("GH_TEST_POSTGRES_URL").unwrap_or_else(|_| {
            "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable".into()
        });
        let mut conn = PgConnection::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL is needed at {url}: {e}"));
        let mut tx = conn.begin().await.unwrap();
        let who = Uuid::from_u128(42);
        declare(&mut tx, Named::Subject(who)).await.unwrap();
        assert_eq!(settings(&mut tx).await[3], who.to_string());
        declare(&mut tx, Named::Digest(&[1, 2])).await.unwrap();
        let now = settings(&mut tx).await;
        assert_eq!(now[3], "", "the subject outlived the next declaration");
        assert_eq!(now[5], "0102");
        declare(&mut tx, Named::MembershipsOf(who)).await.unwrap();
        declare(&mut tx, Named::MailJob).await.unwrap();
        assert_eq!(settings(&mut tx).await[8], "mail");
        let org = gatehouse_core::OrgId::from_uuid(Uuid::from_u128(9));
        enter_scope(&mut tx, &TenantScope::for_tests(org))
            .await
            .unwrap();
        let inside = settings(&mut tx).await;
        assert_eq!(inside[0], org.to_string());
        assert!(
            inside[1..].iter().all(String::is_empty),
            "a declaration survived entering a scope: {inside:?}"
        );
        tx.rollback().await.unwrap();
    }
}

//! The scale-out backend: PostgreSQL with row-level security enabled and forced on every
//! tenant-owned table.
//!
//! Each tenant transaction sets `gatehouse.org_id` with `set_config(.., true)` (transaction-local),
//! and the policies compare every row's `org_id` with it, so a query that forgot its scope still
//! sees nothing of other tenants. Platform tables with personal data (sessions, accounts, factors,
//! one-time tokens, the outbox, the API-key index) show a statement only the rows it declared
//! (`declare.rs`). The server connects as a role that owns no table and cannot
//! bypass RLS; [`PostgresStore::rls_posture`] reports when it does not.
#![forbid(unsafe_code)]

mod api_keys;
mod apps;
mod audit;
mod backup;
mod connectors;
mod declare;
mod errors;
mod grants;
mod housekeeping;
mod invitations;
mod isolation;
mod key_material;
mod members;
mod migrate;
mod oauth_states;
mod one_time_tokens;
mod operator_audit;
mod operators;
mod org_keys;
mod organizations;
mod outbox;
mod records;
mod roles;
mod rows;
mod sealed_fields;
mod second_factor;
mod secrets;
mod sessions;
mod share_links;
mod sso;
mod tx;
mod users;
mod webhooks;

use std::time::Duration;

use async_trait::async_trait;
use gatehouse_core::store::{PlatformTx, Store, TenantTx};
use gatehouse_core::{StoreError, TenantScope};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

pub use backup::PostgresOwner;
pub use isolation::{IsolationReport, UnenforcedTable};
pub use migrate::{latest_version, migrator, migrator_up_to};

use crate::errors::{connect_err, map_err};
use crate::tx::PgTx;

/// Sessions whose last-seen time one statement of `touch_sessions` writes.
const TOUCH_CHUNK: usize = 64;

#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

/// Whether the connected role is subject to row-level security.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RlsPosture {
    /// Not a superuser, no BYPASSRLS, owns no table in the schema.
    Enforced { role: String },
    /// Row-level security does not bind this role; the reason names why.
    Bypassed { role: String, reason: String },
}

impl PostgresStore {
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .map_err(connect_err)?;
        Ok(Self { pool })
    }

    /// Runs the migrations over a separate connection as the owning role (`owner_url`).
    pub async fn migrate(owner_url: &str) -> Result<(), StoreError> {
        let owner = PgPoolOptions::new()
            .max_connections(1)
            .connect(owner_url)
            .await
            .map_err(connect_err)?;
        let out = migrator()
            .run(&owner)
            .await
            .map_err(|e| StoreError::Backend(format!("migration failed: {e}")));
        owner.close().await;
        out
    }

    /// Reports whether row-level security binds the role this store connects as: not when it
    /// is a superuser, has BYPASSRLS, or owns tables in the search path's schemas (directly or
    /// through a role it inherits), since an owner may switch FORCE off.
    pub async fn rls_posture(&self) -> Result<RlsPosture, StoreError> {
        let facts = isolation::role_facts(&self.pool).await?;
        Ok(match facts.bypass() {
            None => RlsPosture::Enforced { role: facts.role },
            Some(r) => RlsPosture::Bypassed {
                role: facts.role,
                reason: r.to_owned(),
            },
        })
    }

    /// Tenant isolation from the catalog (C2's self-check): every table with an organisation
    /// column in the search path's schemas, whether row-level security guards each (enabled,
    /// forced, a policy on the scope), and whether the connected role bypasses it. Two catalog
    /// queries.
    pub async fn isolation_report(&self) -> Result<IsolationReport, StoreError> {
        isolation::report(&self.pool).await
    }

    #[must_use]
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

#[async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(map_err)
    }

    async fn begin(&self) -> Result<Box<dyn PlatformTx>, StoreError> {
        let timer = gatehouse_core::telemetry::StoreTimer::start();
        let tx = self.pool.begin().await.map_err(map_err)?;
        Ok(Box::new(PgTx::platform(tx, timer)))
    }

    async fn begin_scoped(&self, scope: &TenantScope) -> Result<Box<dyn TenantTx>, StoreError> {
        self.begin().await?.enter(scope).await
    }

    async fn begin_read(&self) -> Result<Box<dyn PlatformTx>, StoreError> {
        // PostgreSQL's readers never block its writers; the same transaction serves.
        self.begin().await
    }

    async fn begin_read_scoped(
        &self,
        scope: &TenantScope,
    ) -> Result<Box<dyn TenantTx>, StoreError> {
        self.begin_read().await?.enter(scope).await
    }

    async fn touch_sessions(
        &self,
        seen: &[(uuid::Uuid, time::OffsetDateTime)],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        // In chunks, each declared and written in one statement: the policy reads the declared
        // list for every row it checks, so one list of thousands would cost thousands squared.
        for chunk in seen.chunks(TOUCH_CHUNK) {
            let (ids, ats): (Vec<uuid::Uuid>, Vec<time::OffsetDateTime>) =
                chunk.iter().copied().unzip();
            declare::declare(&mut tx, declare::Named::Sessions(&ids)).await?;
            sqlx::query(
                "UPDATE sessions s SET last_seen_at = GREATEST(s.last_seen_at, v.at) \
                 FROM unnest($1::uuid[], $2::timestamptz[]) AS v(id, at) WHERE s.id = v.id",
            )
            .bind(&ids)
            .bind(&ats)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)
    }

    async fn touch_api_keys(
        &self,
        used: &[(gatehouse_core::OrgId, uuid::Uuid, time::OffsetDateTime)],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        for (org, id, at) in used {
            // Each update runs inside its key's organisation scope (row-level security).
            sqlx::query("SELECT set_config('gatehouse.org_id', $1, true)")
                .bind(org.to_string())
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            sqlx::query(
                "UPDATE api_keys SET last_used_at = GREATEST(coalesce(last_used_at, $1), $1) \
                 WHERE org_id = $2 AND id = $3",
            )
            .bind(*at)
            .bind(org.as_uuid())
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)
    }
}

//! The embedded default backend: one SQLite file in WAL mode.
//!
//! SQLite has no row-level security, so tenant isolation here rests on every tenant query naming
//! the scope's `org_id`, which the shared behaviour suite checks. Write transactions start with
//! `BEGIN IMMEDIATE` so that two writers never fail on a lock upgrade, and this process's writers
//! take their turn in a first-come queue before it (`SqliteStore::writer`). Readers use
//! `BEGIN DEFERRED` and never wait for a writer (WAL).
#![forbid(unsafe_code)]

mod backup;
mod errors;
mod migrate;
mod rows;
mod tx;

// One file per role, named as in `gatehouse_core::store`.
mod api_keys;
mod apps;
mod audit;
mod connectors;
mod grants;
mod housekeeping;
mod invitations;
mod key_material;
mod members;
mod oauth_states;
mod one_time_tokens;
mod operator_audit;
mod operators;
mod org_keys;
mod organizations;
mod outbox;
mod records;
mod roles;
mod sealed_fields;
mod second_factor;
mod secrets;
mod sessions;
mod share_links;
mod sso;
mod users;
mod webhooks;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use gatehouse_core::store::{PlatformTx, Store, TenantTx};
use gatehouse_core::{StoreError, TenantScope};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard};

pub use migrate::{latest_version, migrator, migrator_up_to};

use crate::errors::map_err;
use crate::tx::SqliteTx;

/// How long a write waits for the writers ahead of it, as SQLite's own busy timeout would.
const WRITE_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// SQLite has one writer. Writers of this process queue here, first come first served,
    /// before `BEGIN IMMEDIATE`: left to SQLite's busy handler, a waiting writer sleeps and
    /// retries (1, 2, 5, ... 100 ms) and can miss every gap between a busy writer's commits. Under
    /// a stream of audit batches an API-key creation waited up to 3.5 s that way. Other processes
    /// on the same file (the CLI) still meet the busy handler.
    writer: Arc<Mutex<()>>,
}

/// Held from before `BEGIN IMMEDIATE` until the transaction has ended.
pub(crate) type WriteTurn = OwnedMutexGuard<()>;

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` (`sqlite://path`), WAL mode, foreign keys
    /// on.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Unavailable(format!("bad sqlite url: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            // Deleted rows (shredded keys, erased subjects) are overwritten, not left in free pages.
            .pragma("secure_delete", "ON")
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections.max(1))
            .min_connections(1)
            .connect_with(options)
            .await
            .map_err(map_err)?;
        Ok(Self {
            pool,
            writer: Arc::new(Mutex::new(())),
        })
    }

    /// Waits for this process's turn to write (see `writer`).
    async fn write_turn(&self) -> Result<WriteTurn, StoreError> {
        tokio::time::timeout(WRITE_WAIT, Arc::clone(&self.writer).lock_owned())
            .await
            .map_err(|_| {
                StoreError::Unavailable(format!(
                    "the database is busy: no turn to write within {} s",
                    WRITE_WAIT.as_secs()
                ))
            })
    }

    async fn begin_immediate(
        &self,
    ) -> Result<(WriteTurn, Transaction<'static, Sqlite>), StoreError> {
        let turn = self.write_turn().await?;
        let tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map_err)?;
        Ok((turn, tx))
    }

    /// Applies the migrations up to `version` only (a restore's first step).
    pub async fn migrate_up_to(&self, version: i64) -> Result<(), StoreError> {
        self.migrate_with(migrate::migrator_up_to(version)).await
    }

    /// Applies every migration not yet applied. Safe to run on every start, also by several
    /// processes starting at once on one file.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        self.migrate_with(migrator()).await
    }

    /// Runs `migrator` inside one `BEGIN IMMEDIATE` transaction. sqlx's lock is a no-op on
    /// SQLite and each migration's own transaction begins deferred, so two processes starting
    /// on a new file would both find migration 1 missing and the second would fail applying it;
    /// under the write lock the second waits (busy timeout) and then finds everything applied.
    async fn migrate_with(&self, migrator: sqlx::migrate::Migrator) -> Result<(), StoreError> {
        let (_turn, mut tx) = self.begin_immediate().await?;
        // `run_direct` over the transaction's connection: `run` goes through `Acquire`, whose
        // future the compiler cannot prove `Send` for a borrowed connection (sqlx says as much
        // beside `run_direct`).
        migrate::in_open_transaction(migrator)
            .run_direct(None, &mut *tx, false)
            .await
            .map_err(|e| StoreError::Backend(format!("migration failed: {e}")))?;
        tx.commit().await.map_err(map_err)
    }

    #[must_use]
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
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
        let (turn, tx) = self.begin_immediate().await?;
        Ok(Box::new(SqliteTx::writing(tx, timer, turn)))
    }

    async fn begin_scoped(&self, scope: &TenantScope) -> Result<Box<dyn TenantTx>, StoreError> {
        self.begin().await?.enter(scope).await
    }

    async fn begin_read(&self) -> Result<Box<dyn PlatformTx>, StoreError> {
        // Deferred: a WAL reader that takes no write lock.
        let timer = gatehouse_core::telemetry::StoreTimer::start();
        let tx = self
            .pool
            .begin_with("BEGIN DEFERRED")
            .await
            .map_err(map_err)?;
        Ok(Box::new(SqliteTx::reading(tx, timer)))
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
        let (_turn, mut tx) = self.begin_immediate().await?;
        sessions::touch_sessions(&mut tx, seen).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn touch_api_keys(
        &self,
        used: &[(gatehouse_core::OrgId, uuid::Uuid, time::OffsetDateTime)],
    ) -> Result<(), StoreError> {
        let (_turn, mut tx) = self.begin_immediate().await?;
        api_keys::touch_api_keys(&mut tx, used).await?;
        tx.commit().await.map_err(map_err)
    }
}

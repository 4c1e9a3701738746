#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use gatehouse_core::store::Store;
use gatehouse_store_sqlite::SqliteStore;
use gatehouse_store_tests::{Fixture, behaviour_suite};

struct SqliteFixture {
    store: SqliteStore,
    dir: PathBuf,
}

#[async_trait]
impl Fixture for SqliteFixture {
    fn store(&self) -> Arc<dyn Store> {
        Arc::new(self.store.clone())
    }

    async fn tamper(&self, statements: &[&str]) {
        // The owner of a SQLite file can drop the triggers; so can an attacker with the file.
        for t in [
            "audit_events_no_update",
            "audit_events_no_delete",
            "audit_checkpoints_no_update",
            "audit_checkpoints_no_delete",
        ] {
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP TRIGGER IF EXISTS {t}")))
                .execute(self.store.pool())
                .await
                .unwrap();
        }
        for s in statements {
            sqlx::query(sqlx::AssertSqlSafe(s.to_string()))
                .execute(self.store.pool())
                .await
                .unwrap();
        }
    }

    async fn exec_as_app(&self, sql: &str) -> Result<(), String> {
        sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(self.store.pool())
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn uuid_literal(&self, simple_hex: &str) -> String {
        format!("X'{simple_hex}'")
    }

    async fn finish(self) {
        self.store.pool().close().await;
        std::fs::remove_dir_all(&self.dir).unwrap();
    }
}

async fn fresh() -> SqliteFixture {
    let dir = std::env::temp_dir().join(format!("gatehouse-test-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("test.db").display());
    let store = SqliteStore::connect(&url, 4).await.unwrap();
    store.migrate().await.unwrap();
    SqliteFixture { store, dir }
}

behaviour_suite!(fresh);

#[tokio::test]
async fn migrations_are_idempotent_and_wal_is_on() {
    let f = fresh().await;
    f.store.migrate().await.unwrap();
    let (mode,): (String,) = sqlx::query_as("PRAGMA journal_mode")
        .fetch_one(f.store.pool())
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    f.finish().await;
}

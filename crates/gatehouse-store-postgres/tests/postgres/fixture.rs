use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use gatehouse_core::store::Store;
use gatehouse_store_postgres::PostgresStore;
use gatehouse_store_tests::Fixture;
use sqlx::postgres::{PgConnectOptions, PgConnection};
// Database names are generated here from a timestamp and hex, never from input.
use sqlx::{AssertSqlSafe, ConnectOptions, Connection};

/// Where to reach PostgreSQL as a role that may create databases. The default is plain text on
/// loopback: with TLS compiled in, the driver's default (`prefer`) would encrypt whenever the
/// server offers it, and a handshake per connection made this suite take 46 to 50 s instead of
/// 25 to 28 s (TLS itself is `crates/gatehouse/tests/engines_tls.rs`'s subject).
pub fn admin_url() -> String {
    std::env::var("GH_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable".into())
}

pub struct PgFixture {
    pub store: PostgresStore,
    pub name: String,
    pub owner_url: String,
    pub app_url: String,
}

#[async_trait]
impl Fixture for PgFixture {
    fn store(&self) -> Arc<dyn Store> {
        Arc::new(self.store.clone())
    }

    async fn tamper(&self, statements: &[&str]) {
        // The schema owner can switch the append-only triggers off; so can anyone who has its
        // credentials. Verification must catch what they do next.
        let mut owner = PgConnection::connect(&self.owner_url).await.unwrap();
        for table in ["audit_events", "audit_checkpoints"] {
            sqlx::query(AssertSqlSafe(format!(
                "ALTER TABLE {table} DISABLE TRIGGER USER"
            )))
            .execute(&mut owner)
            .await
            .unwrap();
        }
        for s in statements {
            sqlx::query(AssertSqlSafe(s.to_string()))
                .execute(&mut owner)
                .await
                .unwrap();
        }
        owner.close().await.unwrap();
    }

    async fn exec_as_app(&self, sql: &str) -> Result<(), String> {
        let mut app = PgConnection::connect(&self.app_url).await.unwrap();
        // Scoped to every organisation in turn would not matter: the role has no such privilege.
        let out = sqlx::query(AssertSqlSafe(sql.to_owned()))
            .execute(&mut app)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string());
        app.close().await.unwrap();
        out
    }

    async fn probe(&self, sql: &str) -> Result<(), String> {
        let mut owner = PgConnection::connect(&self.owner_url).await.unwrap();
        let out = sqlx::query(AssertSqlSafe(sql.to_owned()))
            .execute(&mut owner)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string());
        owner.close().await.unwrap();
        out
    }

    fn uuid_literal(&self, simple_hex: &str) -> String {
        format!("'{simple_hex}'::uuid")
    }

    async fn finish(self) {
        self.store.pool().close().await;
        let mut admin = admin().await;
        sqlx::query(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.name
        )))
        .execute(&mut admin)
        .await
        .unwrap();
    }
}

async fn admin() -> PgConnection {
    PgConnection::connect(&admin_url())
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is required for this suite and is unreachable at {} ({e}); \
             start it or set GH_TEST_POSTGRES_URL",
                admin_url()
            )
        })
}

fn url_for(user: &str, db: &str) -> String {
    let base = PgConnectOptions::from_str(&admin_url()).unwrap();
    base.username(user).database(db).to_url_lossy().to_string()
}

#[allow(clippy::disallowed_methods)] // test naming only, not domain time
fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A new database, migrated as the owner, and a store connected as `gatehouse_app`.
pub async fn fresh() -> PgFixture {
    let mut admin = admin().await;
    sweep_stale(&mut admin).await;
    let name = format!(
        "gh_test_{}_{}",
        unix_secs(),
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut admin)
        .await
        .unwrap();
    let admin_user = PgConnectOptions::from_str(&admin_url())
        .unwrap()
        .get_username()
        .to_owned();
    let owner_url = url_for(&admin_user, &name);
    PostgresStore::migrate(&owner_url).await.unwrap();
    allow_app_login(&mut admin).await;
    let app_url = url_for("gatehouse_app", &name);
    let store = PostgresStore::connect(&app_url, 4).await.unwrap();
    PgFixture {
        store,
        name,
        owner_url,
        app_url,
    }
}

/// The application role is created NOLOGIN by the migration; test clusters let it log in.
async fn allow_app_login(admin: &mut PgConnection) {
    for _ in 0..5 {
        let (can,): (bool,) =
            sqlx::query_as("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'gatehouse_app'")
                .fetch_one(&mut *admin)
                .await
                .unwrap();
        if can {
            return;
        }
        // Concurrent tests may race on the catalog row; retry.
        if sqlx::query("ALTER ROLE gatehouse_app LOGIN")
            .execute(&mut *admin)
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("could not grant LOGIN to gatehouse_app");
}

/// Drops test databases left behind by runs that crashed more than an hour ago.
async fn sweep_stale(admin: &mut PgConnection) {
    let names: Vec<(String,)> =
        sqlx::query_as("SELECT datname FROM pg_database WHERE datname LIKE 'gh\\_test\\_%'")
            .fetch_all(&mut *admin)
            .await
            .unwrap();
    let now = unix_secs();
    for (name,) in names {
        let born = name.split('_').nth(2).and_then(|s| s.parse::<u64>().ok());
        if born.is_some_and(|b| b + 3600 < now) {
            let _ = sqlx::query(AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
            )))
            .execute(&mut *admin)
            .await;
        }
    }
}

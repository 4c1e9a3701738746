//! Audit append throughput: durable appends per second on SQLite and PostgreSQL with 1, 8 and 64
//! concurrent writers, beside plain inserts of the same rows (no hashing, no chain head) in the
//! same run. Columns: `audited` (each append its own transaction), `grouped` (through the
//! group-commit writer, `AuditBatcher`), `plain`. Every append and every insert is its own committed transaction: durable when
//! acknowledged (SQLite `synchronous = FULL` in WAL mode, PostgreSQL `synchronous_commit = on`).
//!
//! Usage: audit-appends [seconds per run, default 5]
//! PostgreSQL: GH_TEST_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres); a
//! database is created and dropped.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gatehouse_core::audit::{self, Actor, AuditEvent};
use gatehouse_core::identity::{Audience, LoginInput, LoginOutcome};
use gatehouse_core::keyring::{Keyring, KeyringSettings};
use gatehouse_core::password_pool::PasswordPool;
use gatehouse_core::signup::SignupInput;
use gatehouse_core::store::Store;
use gatehouse_core::{Clock, Kernel, KeySource, OrgId, RequestContext, SystemClock, TenantScope};
use gatehouse_crypto::{Argon2Params, Key32, SecretString};
use gatehouse_store_postgres::PostgresStore;
use gatehouse_store_sqlite::SqliteStore;
use sqlx::{AssertSqlSafe, Connection};

const PLAIN_TABLE: &str = "CREATE TABLE bench_plain_events (
    org_id BLOB, seq INTEGER, id BLOB, at INTEGER, actor_kind TEXT, actor_id TEXT,
    impersonator_id TEXT, action TEXT, resource_type TEXT, resource_id TEXT, outcome TEXT,
    request_id TEXT, details TEXT, subject TEXT, personal BLOB, prev_hash BLOB, hash BLOB)";

fn event(n: u64) -> AuditEvent {
    AuditEvent::success(
        Actor::user(format!("u{}", n % 7)),
        "member.role_changed",
        "member",
        n,
    )
    .with_request(Some(format!("{n:032x}")))
}

/// A kernel over `store`, to make organisations and scopes the way the product does.
async fn kernel(store: Arc<dyn Store>) -> Kernel {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let keyring = Keyring::start(
        Arc::clone(&store),
        Arc::clone(&clock),
        &Key32::from_bytes([7; 32]),
        KeyringSettings::default(),
    )
    .await
    .unwrap();
    let passwords = PasswordPool::start(1, 4, Argon2Params::MINIMUM).unwrap();
    Kernel::new(
        store,
        clock,
        passwords,
        Arc::new(keyring),
        KeySource::Environment,
    )
}

/// A new organisation and a scope in it, obtained as a client would: sign up, sign in, and present
/// the access token with the organisation's id. No test-only constructor is involved, so the bench
/// builds without gatehouse-core's `testing` feature (and so does a `gatehouse` built beside it).
async fn new_org(kernel: &Kernel) -> TenantScope {
    let request = RequestContext::default();
    let email = format!("bench-{}@example.com", uuid::Uuid::new_v4().simple());
    let password = "a long enough bench password";
    let created = kernel
        .signup()
        .register(
            SignupInput {
                email: email.clone(),
                password: SecretString::new(password.into()),
                name: "Bench".into(),
                organization_name: "bench".into(),
            },
            &request,
        )
        .await
        .unwrap();
    let org = created.organization_id().unwrap();
    let login = LoginInput {
        email,
        password: SecretString::new(password.into()),
        device_name: None,
        organization_id: Some(org),
        browser: false,
    };
    let LoginOutcome::Session(session) = kernel.sessions().login(login, &request).await.unwrap()
    else {
        unreachable!("the bench user has no second factor");
    };
    let principal = kernel
        .auth()
        .authenticate(session.access_token.expose(), Audience::Tenant)
        .await
        .unwrap();
    kernel
        .auth()
        .check_org_header(&principal, Some(&org.to_string()), &request)
        .await
        .unwrap()
}

/// Runs `writers` loops of `op` for `secs` and returns operations per second.
async fn run<F, Fut>(writers: usize, secs: u64, op: F) -> f64
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let op = Arc::clone(&op);
        let done = Arc::clone(&done);
        tasks.push(tokio::spawn(async move {
            let mut n = (w as u64) << 40;
            while Instant::now() < deadline {
                op(n).await;
                n += 1;
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

fn report(backend: &str, writers: usize, audited: f64, batched: f64, plain: f64) {
    println!(
        "{backend:<9}{writers:>8}{audited:>16.0}{batched:>16.0}{plain:>16.0}{:>9.2}{:>9.2}",
        audited / plain,
        batched / plain
    );
}

/// Audited appends through the group-commit writer (`AuditBatcher`).
async fn batched(kernel: &Kernel, store: Arc<dyn Store>, writers: usize, secs: u64) -> f64 {
    let scope = new_org(kernel).await;
    let batcher = audit::AuditBatcher::start(Arc::clone(&store), Arc::new(SystemClock), 256);
    run(writers, secs, move |n| {
        let batcher = batcher.clone();
        async move {
            batcher.record(&scope, event(n)).await.unwrap();
        }
    })
    .await
}

async fn sqlite(secs: u64) {
    let dir = std::env::temp_dir().join(format!("gh-bench-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = SqliteStore::connect(&format!("sqlite://{}/b.db", dir.display()), 8)
        .await
        .unwrap();
    store.migrate().await.unwrap();
    sqlx::query(PLAIN_TABLE)
        .execute(store.pool())
        .await
        .unwrap();
    let kernel = kernel(Arc::new(store.clone())).await;
    for writers in [1, 8, 64] {
        let s: Arc<dyn Store> = Arc::new(store.clone());
        let scope = new_org(&kernel).await;
        let org = scope.org_id();
        let audited = run(writers, secs, move |n| {
            let s = Arc::clone(&s);
            async move {
                audit::record_tenant(s.as_ref(), &scope, &SystemClock, event(n))
                    .await
                    .unwrap();
            }
        })
        .await;
        let pool = store.pool().clone();
        let plain = run(writers, secs, move |n| {
            let pool = pool.clone();
            async move {
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
                insert_plain_sqlite(&mut tx, org, n).await;
                tx.commit().await.unwrap();
            }
        })
        .await;
        let grouped = batched(&kernel, Arc::new(store.clone()), writers, secs).await;
        report("sqlite", writers, audited, grouped, plain);
    }
    store.pool().close().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

async fn insert_plain_sqlite(conn: &mut sqlx::SqliteConnection, org: OrgId, n: u64) {
    sqlx::query(
        "INSERT INTO bench_plain_events VALUES (?, ?, ?, ?, 'user', ?, NULL, 'member.role_changed', \
         'member', ?, 'success', ?, '{}', NULL, NULL, ?, ?)",
    )
    .bind(org.as_uuid())
    .bind(n as i64)
    .bind(uuid::Uuid::new_v4())
    .bind(0_i64)
    .bind(format!("u{}", n % 7))
    .bind(n.to_string())
    .bind(format!("{n:032x}"))
    .bind([0u8; 32].as_slice())
    .bind([1u8; 32].as_slice())
    .execute(conn)
    .await
    .unwrap();
}

async fn postgres(secs: u64) {
    // Plain text on loopback by default, as the figures in docs/BENCHMARKS.md were measured.
    let admin_url = std::env::var("GH_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable".into());
    let name = format!("gh_bench_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut admin)
        .await
        .unwrap();
    let base = admin_url.rsplit_once('/').unwrap().0.to_owned();
    let owner_url = format!("{base}/{name}");
    let app_url = owner_url.replacen("://postgres@", "://gatehouse_app@", 1);
    PostgresStore::migrate(&owner_url).await.unwrap();
    let mut owner = sqlx::PgConnection::connect(&owner_url).await.unwrap();
    sqlx::query(AssertSqlSafe(
        PLAIN_TABLE
            .replace("BLOB", "bytea")
            .replace("INTEGER", "bigint")
            .replace("org_id bytea", "org_id uuid")
            .replace("id bytea", "id uuid"),
    ))
    .execute(&mut owner)
    .await
    .unwrap();
    sqlx::query("ALTER ROLE gatehouse_app LOGIN")
        .execute(&mut owner)
        .await
        .unwrap();
    sqlx::query("GRANT INSERT ON bench_plain_events TO gatehouse_app")
        .execute(&mut owner)
        .await
        .unwrap();
    owner.close().await.unwrap();
    let store = PostgresStore::connect(&app_url, 8).await.unwrap();
    let kernel = kernel(Arc::new(store.clone())).await;
    for writers in [1, 8, 64] {
        let s: Arc<dyn Store> = Arc::new(store.clone());
        let scope = new_org(&kernel).await;
        let org = scope.org_id();
        let audited = run(writers, secs, move |n| {
            let s = Arc::clone(&s);
            async move {
                audit::record_tenant(s.as_ref(), &scope, &SystemClock, event(n))
                    .await
                    .unwrap();
            }
        })
        .await;
        let pool = store.pool().clone();
        let plain = run(writers, secs, move |n| {
            let pool = pool.clone();
            async move {
                let mut tx = pool.begin().await.unwrap();
                sqlx::query(
                    "INSERT INTO bench_plain_events VALUES ($1, $2, $3, $4, 'user', $5, NULL, \
                     'member.role_changed', 'member', $6, 'success', $7, '{}', NULL, NULL, $8, $9)",
                )
                .bind(org.as_uuid())
                .bind(n as i64)
                .bind(uuid::Uuid::new_v4())
                .bind(0_i64)
                .bind(format!("u{}", n % 7))
                .bind(n.to_string())
                .bind(format!("{n:032x}"))
                .bind([0u8; 32].as_slice())
                .bind([1u8; 32].as_slice())
                .execute(&mut *tx)
                .await
                .unwrap();
                tx.commit().await.unwrap();
            }
        })
        .await;
        let grouped = batched(&kernel, Arc::new(store.clone()), writers, secs).await;
        report("postgres", writers, audited, grouped, plain);
    }
    store.pool().close().await;
    sqlx::query(AssertSqlSafe(format!(
        "DROP DATABASE \"{name}\" WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
}

#[tokio::main]
async fn main() {
    let secs: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    println!("durable appends per second; {secs} s per run; each append its own transaction");
    println!(
        "{:<9}{:>8}{:>16}{:>16}{:>16}{:>9}{:>9}",
        "backend", "writers", "audited/s", "grouped/s", "plain/s", "ratio", "grouped"
    );
    sqlite(secs).await;
    postgres(secs).await;
}

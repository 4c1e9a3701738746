//! The services the drills need: a fresh database on the shared PostgreSQL (created and dropped
//! here), a private PostgreSQL this test can stop and start, and a check that Redis answers. Each
//! fails loudly when its service is missing: these tests never skip.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use sqlx::ConnectOptions as _;
use sqlx::Connection as _;

/// Where the shared PostgreSQL is (`GH_TEST_POSTGRES_URL`, as for the storage suite).
pub(crate) fn postgres_admin_url() -> String {
    std::env::var("GH_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable".into())
}

/// Where the shared Redis is (`GH_TEST_REDIS_URL`).
pub(crate) fn redis_url() -> String {
    std::env::var("GH_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A fresh database, migrated by its owner; `gatehouse_app` may log in to it. Dropped by
/// [`Database::drop_now`] (and named like the storage suite's, whose sweep drops leftovers).
#[derive(Debug)]
pub(crate) struct Database {
    admin_url: String,
    pub(crate) name: String,
    /// As `gatehouse_app` (row-level security applies): what the servers connect with.
    pub(crate) app_url: String,
    /// As the superuser: what the test's own checks read with (every row, no policy).
    pub(crate) super_url: String,
}

impl Database {
    pub(crate) async fn create(admin_url: &str) -> Self {
        use std::str::FromStr as _;
        let base = sqlx::postgres::PgConnectOptions::from_str(admin_url).unwrap();
        let mut admin = connect_bounded(admin_url).await;
        #[allow(clippy::disallowed_methods)] // a database name, not domain time
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let name = format!(
            "gh_test_{secs}_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut admin)
            .await
            .unwrap();
        let super_url = base.clone().database(&name).to_url_lossy().to_string();
        gatehouse_store_postgres::PostgresStore::migrate(&super_url)
            .await
            .unwrap();
        // The migration creates the role NOLOGIN; test clusters let it log in (another test may
        // race on the catalogue row, so a failure is tried again).
        let mut ok = false;
        for _ in 0..40 {
            if sqlx::query("ALTER ROLE gatehouse_app LOGIN")
                .execute(&mut admin)
                .await
                .is_ok()
            {
                ok = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(ok, "gatehouse_app could not be allowed to log in");
        let app_url = base
            .username("gatehouse_app")
            .database(&name)
            .to_url_lossy()
            .to_string();
        Self {
            admin_url: admin_url.to_owned(),
            name,
            app_url,
            super_url,
        }
    }

    pub(crate) async fn drop_now(&self) {
        if let Ok(mut admin) = sqlx::PgConnection::connect(&self.admin_url).await {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            )))
            .execute(&mut admin)
            .await;
        }
    }
}

async fn connect_bounded(url: &str) -> sqlx::PgConnection {
    match tokio::time::timeout(Duration::from_secs(10), sqlx::PgConnection::connect(url)).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => panic!("PostgreSQL is unreachable at {url}: {e} (this test needs it)"),
        Err(_) => panic!("PostgreSQL at {url} did not answer within 10 s (this test needs it)"),
    }
}

/// Fails the test unless Redis answers PING at `url` (`redis://host:port`).
pub(crate) fn require_redis(url: &str) {
    use std::io::{Read, Write};
    let hostport = url
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .to_owned();
    let addr: std::net::SocketAddr = hostport
        .parse()
        .unwrap_or_else(|_| panic!("GH_TEST_REDIS_URL {url:?} is not redis://ip:port"));
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("Redis is unreachable at {url}: {e} (this test needs it)"));
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"PING\r\n").unwrap();
    let mut buf = [0u8; 16];
    let n = s.read(&mut buf).unwrap();
    assert!(
        buf[..n].starts_with(b"+PONG"),
        "Redis at {url} did not answer PING"
    );
}

/// A PostgreSQL cluster of this test's own, run as the `postgres` user (initdb and pg_ctl refuse
/// root) in a temporary directory it owns, on a free loopback port. Stopped and removed on drop.
#[derive(Debug)]
pub(crate) struct PrivatePostgres {
    dir: PathBuf,
    pub(crate) port: u16,
}

fn bin(name: &str) -> PathBuf {
    for dir in [
        "/usr/local/bin",
        "/usr/lib/postgresql/16/bin",
        "/usr/lib/postgresql/15/bin",
    ] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!("{name} is not installed (PostgreSQL's server binaries are needed for this test)");
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// Runs a PostgreSQL tool as the `postgres` user when we are root (as in CI), else as ourselves.
fn as_postgres(tool: &str) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin(tool));
        c
    } else {
        Command::new(bin(tool))
    }
}

fn run(mut cmd: Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl PrivatePostgres {
    pub(crate) fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("gh-drill-pg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        if is_root() {
            run(
                {
                    let mut c = Command::new("chown");
                    c.arg("postgres:").arg(&dir);
                    c
                },
                "chown of the cluster directory",
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut init = as_postgres("initdb");
        init.args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
            .arg(dir.join("data"));
        run(init, "initdb");
        let pg = Self { dir, port };
        pg.start_again();
        pg
    }

    /// `pg_ctl start`, waiting until it accepts connections.
    pub(crate) fn start_again(&self) {
        let mut c = as_postgres("pg_ctl");
        c.arg("-D")
            .arg(self.dir.join("data"))
            .arg("-l")
            .arg(self.dir.join("server.log"))
            .arg("-o")
            .arg(format!(
                "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off",
                self.port,
                self.dir.display()
            ))
            .args(["-w", "-t", "60", "start"]);
        run(c, "pg_ctl start");
    }

    /// `pg_ctl stop -m fast`: connections are ended, the server is gone when this returns.
    pub(crate) fn stop_fast(&self) {
        let mut c = as_postgres("pg_ctl");
        c.arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "fast", "-w", "-t", "60", "stop"]);
        run(c, "pg_ctl stop");
    }

    pub(crate) fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Waits (bounded) until the server answers a connection.
    pub(crate) async fn wait_ready(&self) {
        let until = Instant::now() + Duration::from_secs(30);
        while Instant::now() < until {
            if sqlx::PgConnection::connect(&self.admin_url()).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the private PostgreSQL did not accept connections within 30 s");
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let mut c = as_postgres("pg_ctl");
        c.arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "-w", "-t", "30", "stop"]);
        let _ = c.output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

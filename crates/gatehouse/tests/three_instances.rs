//! Three `gatehouse serve` processes over one PostgreSQL database and one Redis behave as one
//! (E5): requests go round-robin over them, and a sign-in flood, a revocation and a rate limit
//! each hold as they would on a single instance. Needs PostgreSQL (GH_TEST_POSTGRES_URL, default
//! postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable) and Redis (GH_TEST_REDIS_URL, default
//! redis://127.0.0.1:6379): it fails, never skips, without them. Not part of the README's
//! service-free test command; `.ci/run` runs it with the PostgreSQL suite.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");
const PASSWORD: &str = "a sufficiently long passphrase";
/// Requests per minute per address on operator routes, for the global-limit case (no other
/// case calls them).
const ADMIN_LIMIT: u32 = 30;

const CONFIG: &str = r#"
[identity]
step_up_permissions = []

[rate_limits]
store = "redis"

[rate_limits.per_ip]
auth = 10000
read = 10000
write = 10000
admin = 30

[[product.permissions]]
name = "report.read"
description = "read reports"
roles = ["owner", "admin", "member"]

[[product.permissions]]
name = "report.write"
description = "write reports"
roles = ["owner", "admin"]

[[product.record_types]]
name = "report"
read = "report.read"
write = "report.write"
"#;

fn redis_url() -> String {
    std::env::var("GH_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn admin_url() -> String {
    std::env::var("GH_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable".into())
}

/// A fresh database, migrated by its owner and served as `gatehouse_app` (row-level security on
/// every request). Named like the storage suite's, whose sweep drops leftovers.
async fn fresh_database() -> (String, String) {
    use sqlx::ConnectOptions as _;
    use sqlx::Connection as _;
    use std::str::FromStr as _;
    let admin = admin_url();
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL must be reachable at {admin}: {e}"));
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
        .execute(&mut conn)
        .await
        .unwrap();
    let base = sqlx::postgres::PgConnectOptions::from_str(&admin).unwrap();
    let owner = base.clone().database(&name).to_url_lossy().to_string();
    gatehouse_store_postgres::PostgresStore::migrate(&owner)
        .await
        .unwrap();
    for _ in 0..20 {
        if sqlx::query("ALTER ROLE gatehouse_app LOGIN")
            .execute(&mut conn)
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let app = base
        .username("gatehouse_app")
        .database(&name)
        .to_url_lossy()
        .to_string();
    (name, app)
}

async fn drop_database(name: &str) {
    use sqlx::Connection as _;
    if let Ok(mut conn) = sqlx::PgConnection::connect(&admin_url()).await {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
        )))
        .execute(&mut conn)
        .await;
    }
}

struct Instance {
    child: Child,
    addr: String,
}

/// Starts one instance in its own directory and waits for its listening line.
#[allow(clippy::zombie_processes)] // `Cluster::stop` kills and waits for it
fn start(dir: &Path, database: &str, prefix: &str, master_key: &str) -> Instance {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("gatehouse.toml"), CONFIG).unwrap();
    let mut child = Command::new(BIN)
        .arg("serve")
        .current_dir(dir)
        .env_clear()
        .env("GATEHOUSE_LISTEN", "127.0.0.1:0")
        .env("GATEHOUSE_DATABASE_URL", database)
        .env("GATEHOUSE_MASTER_KEY", master_key)
        .env("GATEHOUSE_REDIS_URL", redis_url())
        .env("GATEHOUSE_RATE_LIMITS__REDIS_KEY_PREFIX", prefix)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    loop {
        let Ok(line) = rx.recv_timeout(Duration::from_secs(60)) else {
            let _ = child.kill();
            panic!("an instance did not start within 60 s");
        };
        let Ok(json) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let message = json["message"].as_str().unwrap_or("");
        if message.contains("unreachable") {
            let _ = child.kill();
            panic!("Redis must be reachable for this test: {line}");
        }
        if message.starts_with("listening on") {
            let addr = json["address"].as_str().unwrap().to_owned();
            // The log reader goes on draining stderr so the process never blocks on it.
            std::thread::spawn(move || for _ in rx {});
            return Instance { child, addr };
        }
    }
}

struct Cluster {
    instances: Vec<Instance>,
    client: reqwest::Client,
    next: std::sync::atomic::AtomicUsize,
    database: String,
    /// The database as `gatehouse_app`, and the master key: what a CLI command run beside the
    /// instances needs.
    url: String,
    key: String,
    dir: PathBuf,
}

impl Cluster {
    async fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("gatehouse-three-{}", uuid::Uuid::new_v4()));
        let (database, url) = fresh_database().await;
        let prefix = format!("gh-three-{}:", uuid::Uuid::new_v4().simple());
        let key = base64_key();
        let instances = (0..3)
            .map(|i| start(&dir.join(format!("i{i}")), &url, &prefix, &key))
            .collect();
        Self {
            instances,
            client: reqwest::Client::new(),
            next: std::sync::atomic::AtomicUsize::new(0),
            database,
            url,
            key,
            dir,
        }
    }

    /// The next instance, round-robin.
    fn any(&self) -> &str {
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        &self.instances[i % self.instances.len()].addr
    }

    async fn send(
        &self,
        addr: &str,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        org: Option<&str>,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut req = self.client.request(method, format!("http://{addr}{path}"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(o) = org {
            req = req.header("x-organization-id", o);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.unwrap()
    }

    async fn stop(mut self) {
        for i in &mut self.instances {
            let _ = i.child.kill();
            let _ = i.child.wait();
        }
        drop_database(&self.database).await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A failed assertion unwinds past `stop`: the instances go with the cluster all the same.
impl Drop for Cluster {
    fn drop(&mut self) {
        for i in &mut self.instances {
            let _ = i.child.kill();
            let _ = i.child.wait();
        }
    }
}

fn base64_key() -> String {
    use base64::Engine as _;
    let mut bytes = uuid::Uuid::new_v4().as_bytes().to_vec();
    bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Signs up `email` (a new organisation) and signs in: (access token, session id, organisation).
async fn signup_login(c: &Cluster, email: &str, device: &str) -> (String, String, String) {
    let res = c
        .send(
            c.any(),
            reqwest::Method::POST,
            "/v1/auth/signup",
            None,
            None,
            Some(json!({"email": email, "password": PASSWORD, "name": "Ada",
                        "organization_name": "Engines"})),
        )
        .await;
    assert_eq!(res.status(), 202);
    login(c, email, device).await
}

async fn login(c: &Cluster, email: &str, device: &str) -> (String, String, String) {
    let res = c
        .send(
            c.any(),
            reqwest::Method::POST,
            "/v1/auth/login",
            None,
            None,
            Some(json!({"email": email, "password": PASSWORD, "device_name": device})),
        )
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    (
        body["access_token"].as_str().unwrap().to_owned(),
        body["session_id"].as_str().unwrap().to_owned(),
        body["organization_id"].as_str().unwrap().to_owned(),
    )
}

/// `GET /v1/auth/verify` on every instance: their statuses.
async fn verify_everywhere(c: &Cluster, token: &str) -> Vec<u16> {
    let mut out = Vec::new();
    for i in &c.instances {
        let res = c
            .send(
                &i.addr,
                reqwest::Method::GET,
                "/v1/auth/verify",
                Some(token),
                None,
                None,
            )
            .await;
        out.push(res.status().as_u16());
    }
    out
}

#[allow(clippy::disallowed_methods)] // an expiry the server checks against its own clock
fn in_an_hour() -> String {
    (time::OffsetDateTime::now_utc() + time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_over_one_database_and_redis_behave_as_one() {
    let c = Cluster::start().await;

    // A sign-in flood against one account, spread round-robin: locked after the same five
    // failures one instance allows (three instances counting apart would allow fifteen).
    let (_, _, _) = signup_login(&c, "victim@example.com", "laptop").await;
    let mut statuses = Vec::new();
    for _ in 0..9 {
        let res = c
            .send(
                c.any(),
                reqwest::Method::POST,
                "/v1/auth/login",
                None,
                None,
                Some(json!({"email": "victim@example.com", "password": "not the password at all"})),
            )
            .await;
        statuses.push(res.status().as_u16());
    }
    assert_eq!(
        statuses,
        [401, 401, 401, 401, 401, 429, 429, 429, 429],
        "the flood's statuses over three instances"
    );

    // Revocations: each credential is first seen (and cached) by every instance, revoked
    // through one, and refused by every instance on its next request.
    let (owner, owner_session, org) = signup_login(&c, "owner@example.com", "laptop").await;
    let (other, other_session, _) = login(&c, "owner@example.com", "phone").await;
    assert_eq!(verify_everywhere(&c, &other).await, [200, 200, 200]);
    let res = c
        .send(
            &c.instances[0].addr,
            reqwest::Method::DELETE,
            &format!("/v1/me/sessions/{other_session}"),
            Some(&owner),
            None,
            None,
        )
        .await;
    assert_eq!(res.status(), 204);
    assert_eq!(
        verify_everywhere(&c, &other).await,
        [401, 401, 401],
        "a revoked session"
    );
    assert_ne!(owner_session, other_session);

    let res = c
        .send(
            c.any(),
            reqwest::Method::POST,
            "/v1/api-keys",
            Some(&owner),
            Some(&org),
            Some(json!({"name": "ci", "permissions": ["report.read"]})),
        )
        .await;
    assert_eq!(res.status(), 201);
    let key: Value = res.json().await.unwrap();
    let secret = key["key"].as_str().unwrap();
    assert_eq!(verify_everywhere(&c, secret).await, [200, 200, 200]);
    let res = c
        .send(
            &c.instances[1].addr,
            reqwest::Method::DELETE,
            &format!("/v1/api-keys/{}", key["id"].as_str().unwrap()),
            Some(&owner),
            Some(&org),
            None,
        )
        .await;
    assert_eq!(res.status(), 204);
    assert_eq!(
        verify_everywhere(&c, secret).await,
        [401, 401, 401],
        "a revoked API key"
    );

    // A grant: another organisation writes a record through it on every instance, then not.
    let (guest, _, guest_org) = signup_login(&c, "guest@example.com", "laptop").await;
    let res = c
        .send(
            c.any(),
            reqwest::Method::POST,
            "/v1/records",
            Some(&owner),
            Some(&org),
            Some(json!({"type": "report", "external_id": "q4", "level": "organization"})),
        )
        .await;
    assert_eq!(res.status(), 201);
    let record: Value = res.json().await.unwrap();
    let record_id = record["id"].as_str().unwrap();
    let res = c
        .send(
            c.any(),
            reqwest::Method::POST,
            "/v1/grants",
            Some(&owner),
            Some(&org),
            Some(json!({"organization": guest_org, "access": "read_write"})),
        )
        .await;
    assert_eq!(res.status(), 201);
    let grant: Value = res.json().await.unwrap();
    let write_everywhere = || async {
        let mut out = Vec::new();
        for i in &c.instances {
            let res = c
                .send(
                    &i.addr,
                    reqwest::Method::PATCH,
                    &format!("/v1/records/{record_id}"),
                    Some(&guest),
                    Some(&guest_org),
                    Some(json!({"tags": ["seen"]})),
                )
                .await;
            out.push(res.status().as_u16());
        }
        out
    };
    assert_eq!(write_everywhere().await, [200, 200, 200]);
    let res = c
        .send(
            &c.instances[2].addr,
            reqwest::Method::DELETE,
            &format!("/v1/grants/{}", grant["id"].as_str().unwrap()),
            Some(&owner),
            Some(&org),
            None,
        )
        .await;
    assert_eq!(res.status(), 204);
    let after = write_everywhere().await;
    assert!(
        after.iter().all(|s| *s == 403 || *s == 404),
        "a revoked grant: {after:?}"
    );

    // A share link, opened (and so kept in memory) on every instance, then revoked on one.
    let res = c
        .send(
            c.any(),
            reqwest::Method::POST,
            &format!("/v1/records/{record_id}/share-links"),
            Some(&owner),
            Some(&org),
            Some(json!({"expires_at": in_an_hour()})),
        )
        .await;
    assert_eq!(res.status(), 201, "{:?}", res.text().await);
    let link: Value = res.json().await.unwrap();
    let token = link["token"].as_str().unwrap();
    let link_id = link["link"]["id"]
        .as_str()
        .or_else(|| link["id"].as_str())
        .unwrap();
    let open_everywhere = || async {
        let mut out = Vec::new();
        for i in &c.instances {
            let res = c
                .send(
                    &i.addr,
                    reqwest::Method::POST,
                    &format!("/v1/share/{token}"),
                    None,
                    None,
                    Some(json!({})),
                )
                .await;
            out.push(res.status().as_u16());
        }
        out
    };
    assert_eq!(open_everywhere().await, [200, 200, 200]);
    assert_eq!(open_everywhere().await, [200, 200, 200]);
    let res = c
        .send(
            &c.instances[0].addr,
            reqwest::Method::DELETE,
            &format!("/v1/records/{record_id}/share-links/{link_id}"),
            Some(&owner),
            Some(&org),
            None,
        )
        .await;
    assert_eq!(res.status(), 204);
    assert_eq!(
        open_everywhere().await,
        [410, 410, 410],
        "a revoked share link"
    );

    // A rate limit holds across the three: ADMIN_LIMIT operator requests a minute per address
    // in all.
    // Tolerance: the quota refills one request every 60/ADMIN_LIMIT s while the burst runs.
    let started = Instant::now();
    let mut allowed = 0u32;
    for _ in 0..(ADMIN_LIMIT * 3) {
        let res = c
            .send(
                c.any(),
                reqwest::Method::GET,
                "/admin/v1/health",
                None,
                None,
                None,
            )
            .await;
        if res.status() != 429 {
            allowed += 1;
        }
    }
    let refill = u32::try_from(started.elapsed().as_secs() * u64::from(ADMIN_LIMIT) / 60).unwrap();
    assert!(
        (ADMIN_LIMIT..=ADMIN_LIMIT + refill + 1).contains(&allowed),
        "{allowed} of {} operator requests allowed over three instances (limit {ADMIN_LIMIT}, \
         refill {refill})",
        ADMIN_LIMIT * 3
    );
    c.stop().await;
}

/// Creates an operator with `gatehouse admin create-operator` over the cluster's database.
fn create_operator(c: &Cluster, email: &str) {
    use std::io::Write as _;
    let dir = c.dir.join("cli");
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = Command::new(BIN)
        .args([
            "admin",
            "create-operator",
            "--email",
            email,
            "--name",
            "Ops",
        ])
        .current_dir(&dir)
        .env_clear()
        .env("GATEHOUSE_DATABASE_URL", &c.url)
        .env("GATEHOUSE_MASTER_KEY", &c.key)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Polls [`verify_everywhere`] for up to 2 s until every instance answers `want` (a change
/// reaches the others through the Redis fan-out, not at the same instant); the last statuses.
async fn until_everywhere(c: &Cluster, token: &str, want: u16) -> Vec<u16> {
    let started = Instant::now();
    loop {
        let seen = verify_everywhere(c, token).await;
        if seen.iter().all(|s| *s == want) || started.elapsed() > Duration::from_secs(2) {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Signs `email` in on every instance: their statuses.
async fn sign_in_everywhere(c: &Cluster, email: &str) -> Vec<u16> {
    let mut out = Vec::new();
    for i in &c.instances {
        let res = c
            .send(
                &i.addr,
                reqwest::Method::POST,
                "/v1/auth/login",
                None,
                None,
                Some(json!({"email": email, "password": PASSWORD})),
            )
            .await;
        out.push(res.status().as_u16());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_disabled_through_one_instance_is_refused_by_all_three() {
    let c = Cluster::start().await;
    create_operator(&c, "ops@example.com");
    let (access, _, org) = signup_login(&c, "ada@example.com", "laptop").await;
    let res = c
        .send(
            c.any(),
            reqwest::Method::POST,
            "/v1/auth/login",
            None,
            None,
            Some(json!({"email": "ada@example.com", "password": PASSWORD, "device_name": "phone"})),
        )
        .await;
    assert_eq!(res.status(), 200);
    let phone: Value = res.json().await.unwrap();
    let phone_access = phone["access_token"].as_str().unwrap().to_owned();
    let refresh = phone["refresh_token"].as_str().unwrap().to_owned();
    let res = c
        .send(
            c.any(),
            reqwest::Method::POST,
            "/v1/api-keys",
            Some(&access),
            Some(&org),
            Some(json!({"name": "ci", "permissions": ["report.read"]})),
        )
        .await;
    assert_eq!(res.status(), 201);
    let key: Value = res.json().await.unwrap();
    let key = key["key"].as_str().unwrap().to_owned();
    // Every instance has seen (and cached) both sessions and the key as live.
    for token in [&access, &phone_access, &key] {
        assert_eq!(verify_everywhere(&c, token).await, [200, 200, 200]);
    }
    let user = {
        use base64::Engine as _;
        let payload = access.split('.').nth(1).unwrap();
        let claims: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap();
        claims["sub"].as_str().unwrap().to_owned()
    };
    let res = c
        .send(
            c.any(),
            reqwest::Method::POST,
            "/admin/v1/auth/login",
            None,
            None,
            Some(json!({"email": "ops@example.com", "password": PASSWORD})),
        )
        .await;
    assert_eq!(res.status(), 200);
    let op: Value = res.json().await.unwrap();
    let op = op["access_token"].as_str().unwrap().to_owned();

    let res = c
        .send(
            &c.instances[0].addr,
            reqwest::Method::POST,
            &format!("/admin/v1/users/{user}/disable"),
            Some(&op),
            None,
            Some(json!({"reason": "laptop reported stolen"})),
        )
        .await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    // Any of its access tokens, refresh tokens or API keys, on any instance, is refused within
    // the fan-out's delivery (without it the others would trust their caches for up to 30 and
    // 10 s); so is signing in.
    for token in [&access, &phone_access, &key] {
        assert_eq!(
            until_everywhere(&c, token, 401).await,
            [401, 401, 401],
            "a disabled account's credential"
        );
    }
    for i in &c.instances {
        let res = c
            .send(
                &i.addr,
                reqwest::Method::POST,
                "/v1/auth/refresh",
                None,
                None,
                Some(json!({"refresh_token": refresh})),
            )
            .await;
        assert_eq!(res.status(), 401);
    }
    assert_eq!(
        sign_in_everywhere(&c, "ada@example.com").await,
        [403, 403, 403]
    );

    // Re-enabled through another instance: every instance signs the account in again and
    // accepts its key.
    let res = c
        .send(
            &c.instances[2].addr,
            reqwest::Method::POST,
            &format!("/admin/v1/users/{user}/enable"),
            Some(&op),
            None,
            Some(json!({"reason": "laptop found"})),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        sign_in_everywhere(&c, "ada@example.com").await,
        [200, 200, 200]
    );
    assert_eq!(until_everywhere(&c, &key, 200).await, [200, 200, 200]);
    c.stop().await;
}

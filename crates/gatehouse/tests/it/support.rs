use std::path::PathBuf;
use std::time::Duration;

use gatehouse::config::{LogFormat, RawConfig};
use gatehouse::{App, Config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

pub struct TestApp {
    pub kernel: std::sync::Arc<gatehouse_core::Kernel>,
    pub clock: gatehouse_core::FakeClock,
    pub base: String,
    /// The operators' listener, when `admin_listen` is configured.
    pub admin_base: Option<String>,
    /// The metrics listener (every test server has one, on an ephemeral port).
    pub metrics_base: Option<String>,
    pub addr: std::net::SocketAddr,
    pub client: reqwest::Client,
    pub dir: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    /// The operator [`TestApp::operator_token`] signs in, created on first use.
    probe_operator: tokio::sync::OnceCell<()>,
}

/// The operator that tests reading operator-only views sign in as.
pub const PROBE_OPERATOR: &str = "probe-ops@platform.example";

/// Where the PostgreSQL runs of these tests create their databases (`GH_TEST_POSTGRES_URL`, as
/// for the storage suite, and plain text on loopback by default for the same reason).
pub(crate) fn postgres_admin_url() -> String {
    std::env::var("GH_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable".into())
}

/// With `GH_IT_POSTGRES=1` the server runs on a fresh PostgreSQL database, migrated by its owner
/// and served as `gatehouse_app`, so row-level security applies to every request. The database
/// is named like the storage suite's (`gh_test_{unix secs}_{hex}`), whose sweep drops leftovers;
/// `stop` drops it. Returns (app URL, owner URL).
pub(crate) async fn postgres_database(dir: &std::path::Path) -> (String, String) {
    use sqlx::ConnectOptions as _;
    use sqlx::Connection as _;
    use std::str::FromStr as _;
    let admin_url = postgres_admin_url();
    let base = sqlx::postgres::PgConnectOptions::from_str(&admin_url).unwrap();
    // A restart on the same directory (`stop_keeping_data`, then `spawn_in`) finds its database.
    if let Ok(name) = std::fs::read_to_string(dir.join("postgres-database")) {
        let owner = base.clone().database(&name).to_url_lossy().to_string();
        let app = base
            .username("gatehouse_app")
            .database(&name)
            .to_url_lossy()
            .to_string();
        return (app, owner);
    }
    let mut admin = sqlx::PgConnection::connect(&admin_url)
        .await
        .unwrap_or_else(|e| {
            panic!("GH_IT_POSTGRES is set but PostgreSQL is unreachable at {admin_url}: {e}")
        });
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
    let owner = base.clone().database(&name).to_url_lossy().to_string();
    gatehouse_store_postgres::PostgresStore::migrate(&owner)
        .await
        .unwrap();
    // The migration creates the role NOLOGIN; test clusters let it log in (concurrent tests
    // may race on the catalog row, so a failure is retried once it is visible).
    for _ in 0..20 {
        if sqlx::query("ALTER ROLE gatehouse_app LOGIN")
            .execute(&mut admin)
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    std::fs::write(dir.join("postgres-database"), &name).unwrap();
    let app = base
        .username("gatehouse_app")
        .database(&name)
        .to_url_lossy()
        .to_string();
    (app, owner)
}

pub(crate) async fn drop_postgres_database(dir: &std::path::Path) {
    use sqlx::Connection as _;
    let Ok(name) = std::fs::read_to_string(dir.join("postgres-database")) else {
        return;
    };
    if let Ok(mut admin) = sqlx::PgConnection::connect(&postgres_admin_url()).await {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
        )))
        .execute(&mut admin)
        .await;
    }
}

pub fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gatehouse-it-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Test servers run without rate limits and lockouts (tests sign in hundreds of times from one
/// address); the tests of limits turn them on.
pub fn raw_config(dir: &std::path::Path) -> RawConfig {
    let mut raw = RawConfig {
        data_dir: dir.join("data"),
        log_format: LogFormat::Json,
        ..RawConfig::default()
    };
    raw.rate_limits.enabled = false;
    // Mail is written at once, so tests reading it (invitations) wait little.
    raw.mail.poll_interval_ms = 100;
    raw.metrics.listen = Some("127.0.0.1:0".into());
    // Posture checks read the store; with the whole suite loading both cores, 40 ms is too
    // short for their verdicts to be what the tests assert (the deadline has its own test).
    raw.posture.check_deadline_ms = 5_000;
    raw
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(edit: impl FnOnce(&mut RawConfig)) -> Self {
        Self::spawn_in(temp_dir(), edit).await
    }

    /// Starts on an existing data directory (to restart with other settings). The clock is a
    /// `FakeClock` starting at the real time; tests advance it.
    pub async fn spawn_in(dir: PathBuf, edit: impl FnOnce(&mut RawConfig)) -> Self {
        let clock =
            gatehouse_core::FakeClock::at(gatehouse_core::Clock::now(&gatehouse_core::SystemClock));
        Self::spawn_in_with_clock(dir, clock, edit).await
    }

    /// Like [`TestApp::spawn_in`], on a clock shared with another instance (advancing one
    /// advances both).
    pub async fn spawn_in_with_clock(
        dir: PathBuf,
        clock: gatehouse_core::FakeClock,
        edit: impl FnOnce(&mut RawConfig),
    ) -> Self {
        let mut raw = raw_config(&dir);
        if std::env::var_os("GH_IT_POSTGRES").is_some() && raw.database_url.is_none() {
            let (app_url, owner_url) = postgres_database(&dir).await;
            raw.database_url = Some(app_url);
            raw.database_migration_url = Some(owner_url);
        }
        edit(&mut raw);
        let config = Config::from_raw(raw, None).unwrap();
        let app = App::build_with_clock(&config, std::sync::Arc::new(clock.clone()))
            .await
            .unwrap();
        let kernel = std::sync::Arc::clone(app.kernel());
        let metrics_base = app.metrics_addr().map(|a| format!("http://{a}"));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let admin = match config.server.admin_listen {
            Some(_) => Some(TcpListener::bind("127.0.0.1:0").await.unwrap()),
            None => None,
        };
        let admin_base = admin
            .as_ref()
            .map(|l| format!("http://{}", l.local_addr().unwrap()));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(app.serve_with_admin(listener, admin, async move {
            let _ = stopped.await;
        }));
        Self {
            kernel,
            clock,
            base: format!("http://{addr}"),
            admin_base,
            metrics_base,
            addr,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            dir,
            stop: Some(stop),
            task: Some(task),
            probe_operator: tokio::sync::OnceCell::new(),
        }
    }

    /// A fresh access token of an operator (created on first use), for operator-only views.
    pub async fn operator_token(&self) -> String {
        self.probe_operator
            .get_or_init(|| async {
                self.kernel
                    .operators()
                    .create(
                        PROBE_OPERATOR,
                        "Probe",
                        gatehouse_crypto::SecretString::from(PASSWORD.to_owned()),
                    )
                    .await
                    .or_else(|e| match e {
                        // Made by an earlier server on the same data directory.
                        gatehouse_core::Error::EmailTaken
                        | gatehouse_core::Error::Store(gatehouse_core::StoreError::EmailTaken) => {
                            Ok(uuid::Uuid::nil())
                        }
                        other => Err(other),
                    })
                    .unwrap();
            })
            .await;
        // Through the kernel rather than HTTP, so the tests' own rate limits are left alone.
        let issued = self
            .kernel
            .operators()
            .login(
                PROBE_OPERATOR,
                &gatehouse_crypto::SecretString::from(PASSWORD.to_owned()),
                None,
                None,
                &gatehouse_core::RequestContext::default(),
            )
            .await
            .unwrap();
        issued.access_token.expose().to_owned()
    }

    /// Readiness with each check's detail, as operators read it: (status, body).
    pub async fn ready_details(&self) -> (u16, serde_json::Value) {
        let token = self.operator_token().await;
        let base = self.admin_base.as_deref().unwrap_or(&self.base);
        let res = self
            .client
            .get(format!("{base}/admin/v1/health"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        (res.status().as_u16(), res.json().await.unwrap())
    }

    /// The metrics text from the metrics listener.
    pub async fn metrics(&self) -> String {
        let base = self.metrics_base.as_ref().expect("metrics.listen is set");
        let res = self
            .client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        res.text().await.unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Sends raw bytes and returns (status, lower-cased headers, body) of the reply.
    pub async fn raw(&self, request: &[u8]) -> (u16, Vec<(String, String)>, String) {
        raw_request(self.addr, request).await
    }

    pub async fn stop(self) {
        let dir = self.stop_keeping_data().await;
        drop_postgres_database(&dir).await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Stops the server and returns its directory, left in place for `spawn_in`.
    pub async fn stop_keeping_data(mut self) -> PathBuf {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap().unwrap();
        }
        self.dir.clone()
    }
}

pub async fn raw_request(
    addr: std::net::SocketAddr,
    request: &[u8],
) -> (u16, Vec<(String, String)>, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Asserts a problem document with `code` and returns it.
pub async fn expect_problem(res: reqwest::Response, status: u16, code: &str) -> serde_json::Value {
    assert_eq!(res.status().as_u16(), status, "status");
    assert_eq!(
        res.headers()["content-type"].to_str().unwrap(),
        "application/problem+json"
    );
    let body: serde_json::Value = res.json().await.unwrap();
    assert_problem_shape(&body, status, code);
    body
}

pub fn assert_problem_shape(body: &serde_json::Value, status: u16, code: &str) {
    assert_eq!(body["status"], status, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["type"], format!("/problems/{code}"), "{body}");
    assert!(
        body["title"].is_string() && body["detail"].is_string(),
        "{body}"
    );
    assert_eq!(
        body["request_id"].as_str().map(str::len),
        Some(32),
        "{body}"
    );
}

pub fn signup_body(email: &str) -> serde_json::Value {
    serde_json::json!({
        "email": email,
        "password": "a sufficiently long passphrase",
        "name": "Ada Lovelace",
        "organization_name": "Analytical Engines",
    })
}

/// The claims of a JWT (not verified: the server issued it a moment ago).
pub fn token_claims(jwt: &str) -> serde_json::Value {
    use base64::Engine as _;
    let payload = jwt.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// The `sub` claim of a JWT.
pub fn token_subject(jwt: &str) -> String {
    token_claims(jwt)["sub"].as_str().unwrap().to_owned()
}

pub const PASSWORD: &str = "a sufficiently long passphrase";

/// A signed-in user: their tokens and ids.
#[derive(Debug, Clone)]
pub struct Signed {
    pub access: String,
    pub refresh: String,
    pub session: String,
    pub org: String,
    pub user: String,
}

impl Signed {
    pub fn from_login(user: &str, body: &serde_json::Value) -> Self {
        Self {
            access: body["access_token"].as_str().unwrap().to_owned(),
            refresh: body["refresh_token"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            session: body["session_id"].as_str().unwrap().to_owned(),
            org: body["organization_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            user: user.to_owned(),
        }
    }
}

impl TestApp {
    /// Signs up `email` (a new organisation) and signs in on `device`.
    pub async fn signup_login(&self, email: &str, device: &str) -> Signed {
        let res = self.post_json("/v1/auth/signup", &signup_body(email)).await;
        assert_eq!(res.status(), 202);
        let mut signed = self.login(email, PASSWORD, device, "").await;
        // Sign-up answers no ids (finding 12 of issue 18): the user's is the token's subject,
        // read here without a request so that tests counting requests are not disturbed.
        signed.user = token_subject(&signed.access);
        signed
    }

    pub async fn login(&self, email: &str, password: &str, device: &str, user: &str) -> Signed {
        let res = self
            .post_json(
                "/v1/auth/login",
                &serde_json::json!({"email": email, "password": password, "device_name": device}),
            )
            .await;
        assert_eq!(res.status(), 200, "{:?}", res.text().await);
        Signed::from_login(user, &res.json().await.unwrap())
    }

    /// A request with a bearer token and, when given, `x-organization-id`.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        org: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> reqwest::Response {
        let mut req = self
            .client
            .request(method, self.url(path))
            .bearer_auth(token);
        if let Some(o) = org {
            req = req.header("x-organization-id", o);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.unwrap()
    }

    /// An organisation route as `who`, in their own organisation.
    pub async fn org_call(
        &self,
        method: reqwest::Method,
        path: &str,
        who: &Signed,
        body: Option<serde_json::Value>,
    ) -> reqwest::Response {
        self.call(method, path, &who.access, Some(&who.org), body)
            .await
    }

    /// Invites `email` into `owner`'s organisation with `role`, accepts with a new account, and
    /// signs that account in there.
    pub async fn add_member(&self, owner: &Signed, email: &str, role: &str) -> Signed {
        let res = self
            .org_call(
                reqwest::Method::POST,
                "/v1/organization/invitations",
                owner,
                Some(serde_json::json!({"email": email, "role": role})),
            )
            .await;
        assert_eq!(res.status(), 201, "{:?}", res.text().await);
        let inv: serde_json::Value = res.json().await.unwrap();
        assert!(inv.get("token").is_none(), "the token goes by mail only");
        let token = self.mailed_link(email, "/accept-invitation").await;
        let res = self
            .post_json(
                "/v1/invitations/accept",
                &serde_json::json!({"token": token, "name": "New Member", "password": PASSWORD}),
            )
            .await;
        assert_eq!(res.status(), 200, "{:?}", res.text().await);
        let accepted: serde_json::Value = res.json().await.unwrap();
        assert_eq!(accepted["organization_id"], owner.org.as_str());
        let user = accepted["user_id"].as_str().unwrap().to_owned();
        self.login(email, PASSWORD, "laptop", &user).await
    }

    /// The token of the newest link to `path` mailed to `to` by the development transport
    /// (`.eml` files in the data directory), waiting for the mail job to write it.
    pub async fn mailed_link(&self, to: &str, path: &str) -> String {
        let dir = self.dir.join("data").join("mail");
        let marker = format!("{path}?token=");
        for _ in 0..200 {
            let mut found: Vec<(std::time::SystemTime, String)> = std::fs::read_dir(&dir)
                .into_iter()
                .flatten()
                .filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
                .filter_map(|e| {
                    let text = std::fs::read_to_string(e.path()).ok()?;
                    let text = text.replace("=\r\n", "").replace("=3D", "=");
                    let to_line = text
                        .lines()
                        .any(|l| l.to_ascii_lowercase().starts_with("to:") && l.contains(to));
                    let at = e.metadata().ok()?.modified().ok()?;
                    (to_line && text.contains(&marker)).then_some((at, text))
                })
                .collect();
            found.sort();
            if let Some((_, text)) = found.last() {
                return crate::interop::link_token(text, path);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("no mail to {to} with a {path} link in {}", dir.display());
    }

    /// The injected clock's time, in Unix seconds.
    pub fn clock_secs(&self) -> i64 {
        gatehouse_core::Clock::now(&self.clock).unix_timestamp()
    }

    /// Verifies the organisation's audit chain (the check `gatehouse audit verify` runs), failing
    /// the test when it is broken; returns how many events it holds.
    pub async fn chain_verifies(&self, org: &str) -> u64 {
        let verified = gatehouse_core::audit::verify_org(
            self.kernel.store(),
            self.kernel.keyring(),
            &gatehouse_core::TenantScope::for_tests(gatehouse_core::OrgId::parse(org).unwrap()),
        )
        .await
        .unwrap();
        match verified {
            Ok(n) => n,
            Err(e) => panic!("the chain of {org} does not verify: {e:?}"),
        }
    }

    /// The organisation's audit events (newest first), read through the kernel.
    pub async fn audit_events(&self, org: &str) -> Vec<gatehouse_core::audit::AuditRecord> {
        let scope =
            gatehouse_core::TenantScope::for_tests(gatehouse_core::OrgId::parse(org).unwrap());
        let page = gatehouse_core::PageRequest::parse(None, Some(200)).unwrap();
        gatehouse_core::audit::query(
            self.kernel.store(),
            &scope,
            &gatehouse_core::audit::AuditFilter::default(),
            page,
        )
        .await
        .unwrap()
        .items
    }
}

/// A log sink for tests that look for secrets in log lines: every line written, kept.
#[derive(Clone, Default)]
pub struct Capture(pub std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Capture {
    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

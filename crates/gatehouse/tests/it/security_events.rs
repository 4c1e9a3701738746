//! Security events in the audit log (E1; ASVS 5.0 16.2.1, 16.3.1 to 16.3.3) and the sign-in
//! paths failing closed when the limiter or lockout store errors (16.5.3).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use gatehouse_core::audit::AuditRecord;
use gatehouse_core::identity::{Identity, IdentitySettings, LocalOnly, lockout_policy};
use gatehouse_core::limits::{
    Count, CountKind, Decision, LockoutStore, Quota, RateLimitStore, RatePolicy,
};
use gatehouse_core::{Error, Kernel};
use gatehouse_http::{AppState, HttpSettings};

use crate::support::{TestApp, expect_problem};

/// Every event on the operators' chain, oldest first.
async fn operator_events(app: &TestApp) -> Vec<AuditRecord> {
    let mut tx = app.kernel.store().begin().await.unwrap();
    let mut all = Vec::new();
    loop {
        let page = tx
            .operator_audit_events(all.len() as u64, 1000)
            .await
            .unwrap();
        if page.is_empty() {
            return all;
        }
        all.extend(page);
    }
}

fn details(e: &AuditRecord) -> serde_json::Value {
    serde_json::from_str(&e.details).unwrap()
}

const SECURITY_ACTIONS: [&str; 3] = [
    "user.login_failed",
    "sign_in.locked",
    "security.events_folded",
];

/// 10,000 failed sign-ins from 100 addresses (behind a trusted proxy) become at most the
/// configured number of aggregate events, each naming its source, and their counts add up to
/// every attempt.
#[tokio::test]
async fn a_flood_of_failed_sign_ins_is_aggregated_per_source_within_the_bound() {
    const BOUND: usize = 250;
    let app = TestApp::spawn_with(|raw| {
        raw.trusted_proxies = vec!["127.0.0.1".into()];
        raw.rate_limits.enabled = true;
        // High enough that the flood reaches the sign-in itself rather than the edge's 429.
        raw.rate_limits.per_ip.auth = 1_000_000;
        raw.rate_limits.lockout.ip_threshold = 5;
        raw.security_events.max_per_minute = BOUND;
    })
    .await;
    let before = operator_events(&app).await.len();
    let url = app.url("/v1/auth/login");
    // 32 clients at once, each sending its share of the 10,000.
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..32u32 {
        let client = app.client.clone();
        let url = url.clone();
        workers.spawn(async move {
            let mut statuses = Vec::new();
            for i in (w..10_000).step_by(32) {
                let source = format!("203.0.113.{}", i % 100 + 1);
                let res = client
                    .post(&url)
                    .header("x-forwarded-for", source)
                    .json(&serde_json::json!({
                        "email": format!("nobody{}@example.com", i % 7),
                        "password": "wrong wrong wrong",
                    }))
                    .send()
                    .await
                    .unwrap();
                statuses.push(res.status().as_u16());
            }
            statuses
        });
    }
    let mut results: Vec<u16> = Vec::new();
    while let Some(done) = workers.join_next().await {
        results.extend(done.unwrap());
    }
    assert_eq!(results.len(), 10_000);
    // Every attempt was refused as a wrong password (401) or by a lockout (429).
    assert!(
        results.iter().all(|s| *s == 401 || *s == 429),
        "{results:?}"
    );
    let locked = results.iter().filter(|s| **s == 429).count() as u64;

    // Nothing is written while the minute is open; once it closes, the tallies are.
    assert_eq!(app.kernel.flush_security_events(false).await.unwrap(), 0);
    app.clock.advance(time::Duration::seconds(61));
    // (The minute job may have written them first; either way they are written once.)
    app.kernel.flush_security_events(false).await.unwrap();
    let events: Vec<AuditRecord> = operator_events(&app)
        .await
        .into_iter()
        .skip(before)
        .filter(|e| SECURITY_ACTIONS.contains(&e.action.as_str()))
        .collect();
    // The bound, plus at most one folded event.
    assert!(events.len() <= BOUND + 1, "{} events", events.len());
    // Two kinds at most per source here (failed, locked): the flood folded into per-source
    // tallies, and nothing had to be folded past the bound.
    assert!(events.len() <= 200, "{} events", events.len());
    assert!(events.iter().all(|e| e.action != "security.events_folded"));
    let mut per_source: BTreeMap<String, u64> = BTreeMap::new();
    let mut locked_counted = 0;
    for e in &events {
        assert_eq!(e.outcome, "denied");
        assert_eq!(e.actor_kind, "anonymous");
        let d = details(e);
        let count = d["count"].as_u64().unwrap();
        *per_source
            .entry(d["source"].as_str().unwrap().to_owned())
            .or_default() += count;
        if e.action == "sign_in.locked" {
            locked_counted += count;
        }
    }
    let expected: BTreeSet<String> = (1..=100).map(|i| format!("203.0.113.{i}")).collect();
    assert_eq!(
        per_source.keys().cloned().collect::<BTreeSet<_>>(),
        expected
    );
    assert!(per_source.values().all(|n| *n == 100), "{per_source:?}");
    assert_eq!(per_source.values().sum::<u64>(), 10_000);
    assert_eq!(locked_counted, locked);
    assert!(locked > 0);
}

/// A refused token, a wrong-audience token and a failed service authentication are recorded
/// on the operators' chain with their source; a CSRF failure of a signed-in caller on its
/// organisation's chain. Whatever is still open goes out at shutdown.
#[tokio::test]
async fn refused_credentials_are_recorded_with_their_source_and_flushed_at_shutdown() {
    let app = TestApp::spawn_with(|raw| {
        raw.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await;
    let owner = app.signup_login("csrf@example.com", "laptop").await;
    let res = app
        .client
        .get(app.url("/v1/me"))
        .bearer_auth("not-a-token")
        .header("x-forwarded-for", "198.51.100.10")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = app
        .client
        .get(app.url("/admin/v1/audit-logs"))
        .bearer_auth(&owner.access)
        .header("x-forwarded-for", "198.51.100.11")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let res = app
        .client
        .post(app.url("/internal/v1/api-keys/verify"))
        .header("x-service-auth", "wrong")
        .header("x-forwarded-for", "198.51.100.12")
        .json(&serde_json::json!({"key": "gk_x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    // A cookie-carried token changing state without x-csrf-token.
    let res = app
        .client
        .post(app.url("/v1/auth/logout"))
        .header(
            "cookie",
            format!("__Host-gatehouse_access={}", owner.access),
        )
        .header("x-forwarded-for", "198.51.100.13")
        .send()
        .await
        .unwrap();
    expect_problem(res, 403, "csrf_failed").await;
    // A token that has merely expired is ordinary client behaviour: refused, not counted.
    app.clock.advance(time::Duration::hours(2));
    let res = app
        .client
        .get(app.url("/v1/me"))
        .bearer_auth(&owner.access)
        .header("x-forwarded-for", "198.51.100.14")
        .send()
        .await
        .unwrap();
    let p = expect_problem(res, 401, "unauthenticated").await;
    assert!(p["detail"].as_str().unwrap().contains("expired"), "{p}");

    let kernel = Arc::clone(&app.kernel);
    let org = owner.org.clone();
    let dir = app.stop_keeping_data().await;
    let mut tx = kernel.store().begin().await.unwrap();
    let ops = tx.operator_audit_events(0, 1000).await.unwrap();
    drop(tx);
    let source_of = |action: &str| {
        ops.iter()
            .find(|e| e.action == action)
            .map(|e| details(e)["source"].as_str().unwrap().to_owned())
            .unwrap_or_else(|| panic!("no {action} event"))
    };
    assert_eq!(source_of("token.refused"), "198.51.100.10");
    assert_eq!(source_of("service.auth_failed"), "198.51.100.12");
    assert!(
        !ops.iter().any(|e| e.details.contains("198.51.100.14")),
        "an expired token was counted"
    );
    // The wrong-audience token names its subject (genuine, only on the wrong API); beside an
    // id on the operators' chain the address is only a keyed digest.
    let wrong = ops
        .iter()
        .find(|e| e.action == "token.wrong_audience")
        .expect("a token.wrong_audience event");
    assert_eq!(wrong.resource_id, owner.user);
    assert!(details(wrong).get("source").is_none(), "{}", wrong.details);
    assert!(
        details(wrong)["source_digest"].is_string(),
        "{}",
        wrong.details
    );
    assert!(!wrong.details.contains("198.51.100.11"));
    let scope = gatehouse_core::TenantScope::for_tests(gatehouse_core::OrgId::parse(&org).unwrap());
    let page = gatehouse_core::PageRequest::parse(None, Some(200)).unwrap();
    let org_events = gatehouse_core::audit::query(
        kernel.store(),
        &scope,
        &gatehouse_core::audit::AuditFilter::default(),
        page,
    )
    .await
    .unwrap()
    .items;
    let csrf = org_events
        .iter()
        .find(|e| e.action == "session.csrf_failed")
        .expect("the CSRF failure is on the organisation's chain");
    assert_eq!(csrf.resource_id, owner.user);
    // The address is the person's, sealed under their key on their organisation's chain.
    assert!(!csrf.details.contains("198.51.100.13"), "{}", csrf.details);
    assert_eq!(csrf.subject.as_deref(), Some(owner.user.as_str()));
    let mut tx = kernel.store().begin_scoped(&scope).await.unwrap();
    let opened = kernel
        .keyring()
        .open_personal(
            tx.as_mut(),
            &owner.user,
            csrf.personal.as_deref().expect("sealed personal data"),
        )
        .await
        .unwrap()
        .unwrap();
    drop(tx);
    assert_eq!(opened.ip.as_deref(), Some("198.51.100.13"));
    let _ = std::fs::remove_dir_all(dir);
}

/// A limiter whose every decision errors (Redis down with no fallback, a bug).
#[derive(Debug)]
struct BrokenLimiter;

#[async_trait::async_trait]
impl RateLimitStore for BrokenLimiter {
    async fn decide(&self, _: &str, _: Quota, _: i64) -> Result<Decision, Error> {
        Err(Error::Internal("the limiter is down".into()))
    }
    fn kind(&self) -> &'static str {
        "broken"
    }
}

/// A lockout store whose every call errors.
#[derive(Debug)]
struct BrokenLockouts;

#[async_trait::async_trait]
impl LockoutStore for BrokenLockouts {
    async fn attempt(
        &self,
        _: &[Count<'_>],
        _: time::OffsetDateTime,
    ) -> Result<Option<time::Duration>, Error> {
        Err(Error::Internal("the lockout store is down".into()))
    }
    async fn refund(&self, _: &[Count<'_>]) -> Result<(), Error> {
        Err(Error::Internal("down".into()))
    }
    async fn clear(&self, _: &[Count<'_>]) -> Result<(), Error> {
        Err(Error::Internal("down".into()))
    }
    async fn clear_group(&self, _: CountKind, _: &str) -> Result<(), Error> {
        Err(Error::Internal("down".into()))
    }
    async fn first_within(
        &self,
        _: &str,
        _: time::Duration,
        _: time::OffsetDateTime,
    ) -> Result<bool, Error> {
        Err(Error::Internal("down".into()))
    }
    fn kind(&self) -> &'static str {
        "broken"
    }
}

/// A kernel over a fresh SQLite store whose lockouts are kept in `lockouts`.
async fn kernel_with_lockouts(lockouts: Arc<dyn LockoutStore>) -> Kernel {
    use gatehouse_core::keyring::{Keyring, KeyringSettings};
    use gatehouse_store_sqlite::SqliteStore;
    let dir = crate::support::temp_dir();
    let sqlite = SqliteStore::connect(&format!("sqlite://{}/k.db", dir.display()), 2)
        .await
        .unwrap();
    sqlite.migrate().await.unwrap();
    let store: Arc<dyn gatehouse_core::store::Store> = Arc::new(sqlite);
    let clock = Arc::new(gatehouse_core::SystemClock);
    let keyring = Keyring::start(
        Arc::clone(&store),
        clock.clone(),
        &gatehouse_crypto::Key32::from_bytes([7; 32]),
        KeyringSettings::default(),
    )
    .await
    .unwrap();
    let p = lockout_policy(5);
    let identity = Identity::new(IdentitySettings::default(), Arc::new(LocalOnly))
        .with_lockouts(Some(gatehouse_core::identity::SignInLockouts {
            account_per_address: p,
            account: p,
            address: p,
        }))
        .with_lockout_store(lockouts);
    Kernel::new(
        store,
        clock,
        gatehouse_core::password_pool::PasswordPool::start(
            1,
            4,
            gatehouse_crypto::Argon2Params::MINIMUM,
        )
        .unwrap(),
        Arc::new(keyring),
        gatehouse_core::KeySource::Environment,
    )
    .with_identity(identity)
}

async fn serve(state: AppState) -> String {
    let router = gatehouse_http::router(state, &HttpSettings::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
    });
    base
}

/// With a limiter that errors, every sign-in path is refused with 503 `dependency_unavailable`;
/// a path outside the auth class is let through as before. With a lockout store that errors,
/// the password sign-ins (customer and operator) are refused the same way.
#[tokio::test]
async fn sign_in_paths_fail_closed_when_the_limiter_or_lockouts_error() {
    let kernel = Arc::new(
        kernel_with_lockouts(Arc::new(gatehouse_core::limits::MemoryLockouts::default())).await,
    );
    let base = serve(
        AppState::new(kernel).with_rate_limits(Arc::new(BrokenLimiter), RatePolicy::default()),
    )
    .await;
    let client = reqwest::Client::new();
    let body = serde_json::json!({
        "email": "someone@example.com",
        "password": "a sufficiently long passphrase",
        "token": "x",
        "challenge": "x",
        "code": "123456",
        "new_password": "another long passphrase",
    });
    for path in [
        "/v1/auth/login",
        "/v1/auth/mfa",
        "/v1/auth/password-reset",
        "/v1/auth/password-reset/confirm",
        "/admin/v1/auth/login",
    ] {
        let res = client
            .post(format!("{base}{path}"))
            .json(&body)
            .send()
            .await
            .unwrap();
        let p = expect_problem(res, 503, "dependency_unavailable").await;
        assert!(
            p["detail"].as_str().unwrap().contains("rate limiter"),
            "{path}: {p}"
        );
    }
    // Outside the auth class the request goes on (here to its own 401).
    let res = client.get(format!("{base}/v1/me")).send().await.unwrap();
    expect_problem(res, 401, "unauthenticated").await;

    let kernel = Arc::new(kernel_with_lockouts(Arc::new(BrokenLockouts)).await);
    let base = serve(AppState::new(kernel)).await;
    let login = serde_json::json!({
        "email": "someone@example.com",
        "password": "a sufficiently long passphrase",
    });
    for path in ["/v1/auth/login", "/admin/v1/auth/login"] {
        let res = client
            .post(format!("{base}{path}"))
            .json(&login)
            .send()
            .await
            .unwrap();
        let p = expect_problem(res, 503, "dependency_unavailable").await;
        assert!(
            p["detail"].as_str().unwrap().contains("lockout"),
            "{path}: {p}"
        );
    }
}

/// Lockouts kept in memory, whose second-factor counts (`mfa:` subjects) error once `broken`
/// is set: a store failing after the password step has passed.
#[derive(Debug, Default)]
struct FactorCountsBreak {
    inner: gatehouse_core::limits::MemoryLockouts,
    broken: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl LockoutStore for FactorCountsBreak {
    async fn attempt(
        &self,
        counts: &[Count<'_>],
        now: time::OffsetDateTime,
    ) -> Result<Option<time::Duration>, Error> {
        if self.broken.load(std::sync::atomic::Ordering::SeqCst)
            && counts.iter().any(|c| c.subject.contains("mfa:"))
        {
            return Err(Error::Internal("the lockout store is down".into()));
        }
        self.inner.attempt(counts, now).await
    }
    async fn refund(&self, counts: &[Count<'_>]) -> Result<(), Error> {
        self.inner.refund(counts).await
    }
    async fn clear(&self, counts: &[Count<'_>]) -> Result<(), Error> {
        self.inner.clear(counts).await
    }
    async fn clear_group(&self, kind: CountKind, group: &str) -> Result<(), Error> {
        self.inner.clear_group(kind, group).await
    }
    async fn first_within(
        &self,
        key: &str,
        window: time::Duration,
        now: time::OffsetDateTime,
    ) -> Result<bool, Error> {
        self.inner.first_within(key, window, now).await
    }
    fn kind(&self) -> &'static str {
        "test"
    }
}

/// With the second-factor count unavailable, the second sign-in step and a step-up by code are
/// refused with 503 `dependency_unavailable` (ASVS 16.5.3): the count that bounds guesses
/// cannot be kept, so no code is checked.
#[tokio::test]
async fn the_second_step_and_step_up_fail_closed_when_the_factor_count_errors() {
    use crate::support::{PASSWORD, signup_body};
    let lockouts = Arc::new(FactorCountsBreak::default());
    let kernel = Arc::new(kernel_with_lockouts(lockouts.clone()).await);
    let base = serve(AppState::new(kernel)).await;
    let client = reqwest::Client::new();
    let post = |path: &str, token: Option<&str>, body: serde_json::Value| {
        let mut req = client.post(format!("{base}{path}")).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    let email = "factor@example.com";
    let res = post("/v1/auth/signup", None, signup_body(email))
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let login = serde_json::json!({"email": email, "password": PASSWORD});
    let res = post("/v1/auth/login", None, login.clone()).await.unwrap();
    assert_eq!(res.status(), 200);
    let access = res.json::<serde_json::Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let now = || gatehouse_core::Clock::now(&gatehouse_core::SystemClock).unix_timestamp();
    let res = post(
        "/v1/me/mfa/totp",
        Some(&access),
        serde_json::json!({"password": PASSWORD}),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 201);
    let secret = res.json::<serde_json::Value>().await.unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let code = crate::interop::pyotp_code(&secret, now());
    let res = post(
        "/v1/me/mfa/totp/confirm",
        Some(&access),
        serde_json::json!({"code": code}),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 200);

    let res = post("/v1/auth/login", None, login).await.unwrap();
    assert_eq!(res.status(), 200);
    let mfa_token = res.json::<serde_json::Value>().await.unwrap()["mfa_token"]
        .as_str()
        .unwrap()
        .to_owned();
    lockouts
        .broken
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let code = crate::interop::pyotp_code(&secret, now());
    let res = post(
        "/v1/auth/mfa",
        None,
        serde_json::json!({"mfa_token": mfa_token, "code": code}),
    )
    .await
    .unwrap();
    let p = expect_problem(res, 503, "dependency_unavailable").await;
    assert!(p["detail"].as_str().unwrap().contains("lockout"), "{p}");
    let res = post(
        "/v1/auth/step-up",
        Some(&access),
        serde_json::json!({"code": code}),
    )
    .await
    .unwrap();
    let p = expect_problem(res, 503, "dependency_unavailable").await;
    assert!(p["detail"].as_str().unwrap().contains("lockout"), "{p}");
    // With the store back, the step is answered again (a wrong code: 401, no longer a 503).
    let wrong = if code == "000000" { "111111" } else { "000000" };
    lockouts
        .broken
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let res = post(
        "/v1/auth/mfa",
        None,
        serde_json::json!({"mfa_token": mfa_token, "code": wrong}),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 401);
}

/// Past the bound, a minute's overflow is one `security.events_folded` event that still says
/// what happened: attempts per kind, how many sources, and the busiest ones, so a source
/// guessing hard after others filled the tallies is named.
#[tokio::test]
async fn a_flood_past_the_bound_is_folded_with_its_kinds_and_busiest_sources() {
    let app = TestApp::spawn_with(|raw| {
        raw.trusted_proxies = vec!["127.0.0.1".into()];
        raw.security_events.max_per_minute = 5;
    })
    .await;
    let before = operator_events(&app).await.len();
    let attempt = |source: String, n: u32| {
        let client = app.client.clone();
        let url = app.url("/v1/auth/login");
        async move {
            let res = client
                .post(&url)
                .header("x-forwarded-for", source)
                .json(&serde_json::json!({
                    "email": format!("target{n}@example.com"),
                    "password": "wrong wrong wrong",
                }))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 401);
        }
    };
    for i in 1..=20 {
        attempt(format!("203.0.113.{i}"), i).await;
    }
    for n in 0..12 {
        attempt("198.51.100.99".into(), 100 + n).await;
    }
    app.clock.advance(time::Duration::seconds(61));
    app.kernel.flush_security_events(false).await.unwrap();
    let events: Vec<AuditRecord> = operator_events(&app)
        .await
        .into_iter()
        .skip(before)
        .filter(|e| SECURITY_ACTIONS.contains(&e.action.as_str()))
        .collect();
    assert_eq!(events.len(), 6, "{events:?}");
    let folded: Vec<&AuditRecord> = events
        .iter()
        .filter(|e| e.action == "security.events_folded")
        .collect();
    assert_eq!(folded.len(), 1);
    let d = details(folded[0]);
    assert_eq!(d["events"], 27, "{d}");
    assert_eq!(d["kinds"]["user.login_failed"], 27, "{d}");
    assert_eq!(d["sources"], 16, "{d}");
    assert_eq!(d["top_sources"][0]["source"], "198.51.100.99", "{d}");
    assert_eq!(d["top_sources"][0]["count"], 12, "{d}");
    assert!(d["top_sources"].as_array().unwrap().len() <= 20);
}

/// An existing account's wrong password given to accept an invitation is a failed sign-in
/// like any other: counted against the account, on the operators' chain, with the source only
/// as a keyed digest beside the account's id.
#[tokio::test]
async fn a_wrong_password_accepting_an_invitation_is_a_failed_sign_in() {
    let app = TestApp::spawn_with(|raw| {
        raw.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await;
    let owner = app.signup_login("inviter@example.com", "laptop").await;
    let bob = app.signup_login("bob@example.com", "laptop").await;
    let res = app
        .org_call(
            reqwest::Method::POST,
            "/v1/organization/invitations",
            &owner,
            Some(serde_json::json!({"email": "bob@example.com", "role": "member"})),
        )
        .await;
    assert_eq!(res.status(), 201);
    let token = app
        .mailed_link("bob@example.com", "/accept-invitation")
        .await;
    let before = operator_events(&app).await.len();
    let res = app
        .client
        .post(app.url("/v1/invitations/accept"))
        .header("x-forwarded-for", "192.0.2.44")
        .json(&serde_json::json!({"token": token, "password": "not bob's password at all"}))
        .send()
        .await
        .unwrap();
    expect_problem(res, 401, "invalid_credentials").await;
    app.kernel.flush_security_events(true).await.unwrap();
    let failed: Vec<AuditRecord> = operator_events(&app)
        .await
        .into_iter()
        .skip(before)
        .filter(|e| e.action == "user.login_failed")
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].resource_id, bob.user);
    assert_eq!(details(&failed[0])["count"], 1);
    assert!(details(&failed[0])["source_digest"].is_string());
    assert!(!failed[0].details.contains("192.0.2.44"));
}

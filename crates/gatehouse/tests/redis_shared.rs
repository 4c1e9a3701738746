//! Two `gatehouse serve` processes sharing one Redis enforce one rate limit, and a revocation, a
//! disabled account or an admin's ending of a member's sessions made through one is refused by
//! the other at once. Needs Redis
//! (GH_TEST_REDIS_URL, default redis://127.0.0.1:6379): it fails, never skips, without it. Not part
//! of the README's service-free test command; `.ci/run` runs it with the Redis suite.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");

fn start(dir: &std::path::Path, prefix: &str) -> (Child, String) {
    start_with(dir, prefix, "6")
}

/// Like [`start`], with `auth_limit` sign-in requests a minute per address.
#[allow(clippy::zombie_processes)] // the caller kills and waits for it
fn start_with(dir: &std::path::Path, prefix: &str, auth_limit: &str) -> (Child, String) {
    let url =
        std::env::var("GH_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let mut child = Command::new(BIN)
        .arg("serve")
        .current_dir(dir)
        .env_clear()
        .env("GATEHOUSE_LISTEN", "127.0.0.1:0")
        .env("GATEHOUSE_RATE_LIMITS__STORE", "redis")
        .env("GATEHOUSE_REDIS_URL", url)
        .env("GATEHOUSE_RATE_LIMITS__REDIS_KEY_PREFIX", prefix)
        .env("GATEHOUSE_RATE_LIMITS__PER_IP__AUTH", auth_limit)
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
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("no listening line");
        let json: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert!(
            !json["message"]
                .as_str()
                .unwrap_or("")
                .contains("Redis is unreachable"),
            "Redis must be reachable for this test: {line}"
        );
        if json["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("listening on"))
        {
            return (child, json["address"].as_str().unwrap().to_owned());
        }
    }
}

#[tokio::test]
async fn two_processes_sharing_redis_enforce_one_global_limit() {
    let prefix = format!("gh-it-{}:", uuid::Uuid::new_v4().simple());
    let dirs: Vec<_> = (0..2)
        .map(|i| {
            let d =
                std::env::temp_dir().join(format!("gatehouse-redis-{}-{i}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(&d).unwrap();
            d
        })
        .collect();
    let (mut a, addr_a) = start(&dirs[0], &prefix);
    let (mut b, addr_b) = start(&dirs[1], &prefix);
    let client = reqwest::Client::new();
    let mut allowed = 0;
    for i in 0..12 {
        let addr = if i % 2 == 0 { &addr_a } else { &addr_b };
        let res = client
            .post(format!("http://{addr}/v1/auth/login"))
            .json(&serde_json::json!({"email": format!("n{i}@example.com"), "password": "whatever-it-is"}))
            .send()
            .await
            .unwrap();
        match res.status().as_u16() {
            401 => allowed += 1,
            429 => {
                let body: serde_json::Value = res.json().await.unwrap();
                assert_eq!(body["code"], "rate_limited");
            }
            other => panic!("unexpected status {other}"),
        }
    }
    let _ = a.kill();
    let _ = b.kill();
    let _ = a.wait();
    let _ = b.wait();
    for d in dirs {
        let _ = std::fs::remove_dir_all(d);
    }
    // One quota of 6 for both processes together (each alone would have allowed 6).
    assert_eq!(allowed, 6);
}

#[tokio::test]
async fn a_session_revoked_on_one_instance_is_refused_by_the_other_at_once() {
    let prefix = format!("gh-it-{}:", uuid::Uuid::new_v4().simple());
    let dir = std::env::temp_dir().join(format!("gatehouse-fanout-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    // One data directory (one SQLite database) and one Redis: two instances of one deployment.
    // The first creates the database and key before the second starts.
    let (mut a, addr_a) = start(&dir, &prefix);
    let (mut b, addr_b) = start(&dir, &prefix);
    let client = reqwest::Client::new();
    let res = client
        .post(format!("http://{addr_a}/v1/auth/signup"))
        .json(&serde_json::json!({
            "email": "ada@example.com", "password": "a sufficiently long passphrase",
            "name": "Ada", "organization_name": "Engines"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let login = |device: &'static str| {
        client
            .post(format!("http://{addr_a}/v1/auth/login"))
            .json(&serde_json::json!({"email": "ada@example.com",
                "password": "a sufficiently long passphrase", "device_name": device}))
            .send()
    };
    let one: serde_json::Value = login("one").await.unwrap().json().await.unwrap();
    let two: serde_json::Value = login("two").await.unwrap().json().await.unwrap();
    let verify_on_b = || {
        client
            .get(format!("http://{addr_b}/v1/auth/verify"))
            .bearer_auth(one["access_token"].as_str().unwrap())
            .send()
    };
    // Instance B has seen session one as live (and caches that).
    assert_eq!(verify_on_b().await.unwrap().status(), 200);
    let res = client
        .delete(format!(
            "http://{addr_a}/v1/me/sessions/{}",
            one["session_id"].as_str().unwrap()
        ))
        .bearer_auth(two["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let started = std::time::Instant::now();
    let mut refused = false;
    while started.elapsed() < Duration::from_secs(2) {
        if verify_on_b().await.unwrap().status() == 401 {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let took = started.elapsed();
    let _ = a.kill();
    let _ = b.kill();
    let _ = a.wait();
    let _ = b.wait();
    let _ = std::fs::remove_dir_all(&dir);
    // Without fan-out, B would trust its cached state for up to 30 s.
    assert!(
        refused,
        "instance B still accepted the revoked session after 2 s"
    );
    println!("instance B refused the revoked session after {took:?}");
}

/// Two instances over one data directory, killed (and the directory removed) however the test
/// ends.
struct Pair {
    a: Child,
    b: Child,
    dir: std::path::PathBuf,
}

impl Drop for Pair {
    fn drop(&mut self) {
        for c in [&mut self.a, &mut self.b] {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const PASSWORD: &str = "a sufficiently long passphrase";

fn create_operator(dir: &std::path::Path) {
    use std::io::Write;
    let mut child = Command::new(BIN)
        .args([
            "admin",
            "create-operator",
            "--email",
            "ops@example.com",
            "--name",
            "Ops",
        ])
        .current_dir(dir)
        .env_clear()
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

/// Polls `check` on instance B for up to 2 s until it answers `want`; the statuses seen.
async fn until_on_b<F, Fut>(want: u16, mut check: F) -> Vec<u16>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = u16>,
{
    let started = std::time::Instant::now();
    let mut seen = Vec::new();
    while started.elapsed() < Duration::from_secs(2) {
        let status = check().await;
        seen.push(status);
        if status == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    seen
}

#[tokio::test]
async fn an_account_disabled_on_one_instance_is_refused_by_the_other_at_once() {
    use serde_json::{Value, json};
    let prefix = format!("gh-it-{}:", uuid::Uuid::new_v4().simple());
    let dir = std::env::temp_dir().join(format!("gatehouse-disable-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    create_operator(&dir);
    let (a, addr_a) = start_with(&dir, &prefix, "1000");
    let (b, addr_b) = start_with(&dir, &prefix, "1000");
    let _pair = Pair {
        a,
        b,
        dir: dir.clone(),
    };
    let client = reqwest::Client::new();
    let post = |addr: &str, path: &str, token: Option<&str>, body: Value| {
        let mut req = client.post(format!("http://{addr}{path}")).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    let res = post(
        &addr_a,
        "/v1/auth/signup",
        None,
        json!({"email": "ada@example.com", "password": PASSWORD, "name": "Ada",
               "organization_name": "Engines"}),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 202);
    let sign_in = |addr: String| {
        let req = post(
            &addr,
            "/v1/auth/login",
            None,
            json!({"email": "ada@example.com", "password": PASSWORD}),
        );
        async move { req.await.unwrap() }
    };
    let ada: Value = sign_in(addr_a.clone()).await.json().await.unwrap();
    let access = ada["access_token"].as_str().unwrap().to_owned();
    let refresh = ada["refresh_token"].as_str().unwrap().to_owned();
    let org = ada["organization_id"].as_str().unwrap().to_owned();
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
    let res = client
        .post(format!("http://{addr_a}/v1/api-keys"))
        .bearer_auth(&access)
        .header("x-organization-id", &org)
        .json(&json!({"name": "ci", "permissions": ["audit.read"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let key: Value = res.json().await.unwrap();
    let key = key["key"].as_str().unwrap().to_owned();
    let verify_on_b = |token: String| {
        let req = client
            .get(format!("http://{addr_b}/v1/auth/verify"))
            .bearer_auth(token)
            .send();
        async move { req.await.unwrap().status().as_u16() }
    };
    // Instance B has seen the session and the key as live (and caches both).
    assert_eq!(verify_on_b(access.clone()).await, 200);
    assert_eq!(verify_on_b(key.clone()).await, 200);

    let res = post(
        &addr_a,
        "/admin/v1/auth/login",
        None,
        json!({"email": "ops@example.com", "password": PASSWORD}),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 200);
    let op: Value = res.json().await.unwrap();
    let op = op["access_token"].as_str().unwrap().to_owned();
    let res = post(
        &addr_a,
        &format!("/admin/v1/users/{user}/disable"),
        Some(&op),
        json!({"reason": "laptop reported stolen"}),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 200, "{:?}", res.text().await);

    // On B: the access token and the API key are refused within the fan-out's delivery (without
    // it B would trust its caches for up to 30 and 10 s), the refresh token and sign-in at once.
    let seen = until_on_b(401, || verify_on_b(access.clone())).await;
    assert_eq!(seen.last(), Some(&401), "the access token on B: {seen:?}");
    let seen = until_on_b(401, || verify_on_b(key.clone())).await;
    assert_eq!(seen.last(), Some(&401), "the API key on B: {seen:?}");
    let res = post(
        &addr_b,
        "/v1/auth/refresh",
        None,
        json!({"refresh_token": refresh}),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 401);
    let res = sign_in(addr_b.clone()).await;
    assert_eq!(res.status(), 403);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], "account_disabled");

    // Re-enabled through A: B signs the account in again and accepts its key again.
    let res = post(
        &addr_a,
        &format!("/admin/v1/users/{user}/enable"),
        Some(&op),
        json!({"reason": "laptop found"}),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(sign_in(addr_b.clone()).await.status(), 200);
    let seen = until_on_b(200, || verify_on_b(key.clone())).await;
    assert_eq!(seen.last(), Some(&200), "the API key on B again: {seen:?}");

    // An organisation admin (the owner, here of her own) ends a member's sessions there through
    // A: a session B has cached as live is refused on B within the fan-out's delivery too.
    let on_b: Value = sign_in(addr_b.clone()).await.json().await.unwrap();
    let on_b = on_b["access_token"].as_str().unwrap().to_owned();
    assert_eq!(verify_on_b(on_b.clone()).await, 200);
    let on_a: Value = sign_in(addr_a.clone()).await.json().await.unwrap();
    let res = client
        .delete(format!(
            "http://{addr_a}/v1/organization/members/{user}/sessions"
        ))
        .bearer_auth(on_a["access_token"].as_str().unwrap())
        .header("x-organization-id", &org)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let seen = until_on_b(401, || verify_on_b(on_b.clone())).await;
    assert_eq!(seen.last(), Some(&401), "an ended session on B: {seen:?}");
}

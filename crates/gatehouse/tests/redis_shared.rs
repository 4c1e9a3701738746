//! Two `gatehouse serve` processes sharing one Redis enforce one rate limit. Needs Redis
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

#[allow(clippy::zombie_processes)] // the caller kills and waits for it
fn start(dir: &std::path::Path, prefix: &str) -> (Child, String) {
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
        .env("GATEHOUSE_RATE_LIMITS__PER_IP__AUTH", "6")
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

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
        .env("GATEHOUSE_RATE_LIMITS__REDIS_URL", url)
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

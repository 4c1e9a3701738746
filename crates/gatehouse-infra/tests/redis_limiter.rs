//! The limiter behaviour suite against Redis (GH_TEST_REDIS_URL, default redis://127.0.0.1:6379),
//! and the fallback while Redis is unreachable. These tests fail, never skip, without Redis.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use gatehouse_core::limits::{Quota, RateLimitStore};
use gatehouse_infra::{FallbackLimiter, RedisLimiter, redis_client};

fn url() -> String {
    std::env::var("GH_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

async fn redis() -> Arc<dyn RateLimitStore> {
    Arc::new(
        RedisLimiter::new(&redis_client(&url(), None).unwrap(), "gh-test:")
            .expect("Redis must be reachable for this suite (GH_TEST_REDIS_URL)"),
    )
}

gatehouse_store_tests::limiter_suite!(redis);

#[tokio::test]
async fn two_limiters_sharing_one_redis_enforce_one_limit() {
    let a = redis().await;
    let b = redis().await;
    let key = format!("shared:{}", uuid_like());
    let q = Quota::per_minute(10);
    let now = 1_700_000_000_000_000;
    let mut allowed = 0;
    for i in 0..30 {
        let store = if i % 2 == 0 { &a } else { &b };
        if store.decide(&key, q, now).await.unwrap().allowed {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 10);
}

#[tokio::test]
async fn a_dead_store_falls_back_to_the_in_process_limiter() {
    let limiter = FallbackLimiter::new(Arc::new(Dead));
    let q = Quota::per_minute(2);
    let now = 1_700_000_000_000_000;
    assert!(limiter.decide("k", q, now).await.unwrap().allowed);
    assert!(limiter.decide("k", q, now).await.unwrap().allowed);
    assert!(!limiter.decide("k", q, now).await.unwrap().allowed);
    assert!(limiter.is_degraded());
    assert_eq!(limiter.kind(), "memory-fallback");
    assert_eq!(
        limiter
            .fallback_decisions
            .load(std::sync::atomic::Ordering::Relaxed),
        3
    );
}

/// A private redis-server on a free port (Debian's `redis-server`), so the test can stop and
/// restart it.
fn start_redis(port: u16) -> std::process::Child {
    std::process::Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-server must be installed for the degradation test")
}

async fn wait_for_port(port: u16) {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("redis-server did not start on {port}");
}

#[tokio::test]
async fn when_redis_goes_away_limiting_falls_back_and_recovers_when_it_returns() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = start_redis(port);
    wait_for_port(port).await;
    let client = redis_client(&format!("redis://127.0.0.1:{port}/"), None).unwrap();
    let redis = RedisLimiter::new(&client, "t:").unwrap();
    let limiter = FallbackLimiter::new(Arc::new(redis));
    let q = Quota::per_minute(100);
    let now = 1_700_000_000_000_000;
    assert!(limiter.decide("k", q, now).await.unwrap().allowed);
    assert!(!limiter.is_degraded());

    server.kill().unwrap();
    server.wait().unwrap();
    // Every decision still answers (from the in-process limiter); nothing fails or panics.
    let d = limiter.decide("k", q, now).await.unwrap();
    assert!(d.allowed);
    assert!(limiter.is_degraded());

    let mut server = start_redis(port);
    wait_for_port(port).await;
    let mut recovered = false;
    for _ in 0..100 {
        let _ = limiter.decide("k", q, now).await.unwrap();
        if !limiter.is_degraded() {
            recovered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    server.kill().unwrap();
    let _ = server.wait();
    assert!(
        recovered,
        "the limiter did not go back to Redis after it returned"
    );
}

fn uuid_like() -> u128 {
    use std::hash::{BuildHasher, RandomState};
    u128::from(RandomState::new().hash_one(1u8))
}

#[derive(Debug)]
struct Dead;

#[async_trait::async_trait]
impl RateLimitStore for Dead {
    async fn decide(
        &self,
        _: &str,
        _: Quota,
        _: i64,
    ) -> Result<gatehouse_core::limits::Decision, gatehouse_core::Error> {
        Err(gatehouse_core::Error::Store(
            gatehouse_core::StoreError::Unavailable("connection refused".into()),
        ))
    }

    fn kind(&self) -> &'static str {
        "dead"
    }
}

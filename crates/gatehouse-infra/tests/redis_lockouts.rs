//! The lockout behaviour suite against Redis (GH_TEST_REDIS_URL, default redis://127.0.0.1:6379),
//! two stores over one Redis sharing their counts, and the fallback while Redis is unreachable.
//! These tests fail, never skip, without Redis.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;

use gatehouse_core::limits::{Count, CountKind, LockoutPolicy, LockoutStore};
use gatehouse_infra::{FallbackLockouts, RedisLockouts};
use time::{Duration, OffsetDateTime};

fn url() -> String {
    std::env::var("GH_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

async fn redis() -> Arc<dyn LockoutStore> {
    let client = gatehouse_infra::redis_client(&url(), None).expect("a well-formed Redis URL");
    let store = RedisLockouts::new(&client, "gh-test:").expect("a Redis client");
    // A first call proves Redis answers: the suite must fail, not pass on nothing, without it.
    store
        .first_within(
            &uuid::Uuid::new_v4().to_string(),
            Duration::seconds(1),
            t0(),
        )
        .await
        .expect("Redis must be reachable for this suite (GH_TEST_REDIS_URL)");
    Arc::new(store)
}

gatehouse_store_tests::lockout_suite!(redis);

fn t0() -> OffsetDateTime {
    OffsetDateTime::UNIX_EPOCH + Duration::days(20_000)
}

fn policy(threshold: u32) -> LockoutPolicy {
    LockoutPolicy {
        threshold,
        first_lock: Duration::seconds(2),
        max_lock: Duration::minutes(15),
        forget_after: Duration::hours(1),
    }
}

#[tokio::test]
async fn two_stores_sharing_one_redis_keep_one_count() {
    let (a, b) = (redis().await, redis().await);
    let subject = format!("shared:{}", uuid::Uuid::new_v4());
    let c = [Count {
        kind: CountKind::Account,
        subject: &subject,
        group: None,
        policy: policy(5),
    }];
    let now = t0();
    let mut passed = 0;
    for i in 0..20 {
        let store = if i % 2 == 0 { &a } else { &b };
        if store.attempt(&c, now).await.unwrap().is_none() {
            passed += 1;
        }
    }
    assert_eq!(passed, 5);
}

#[tokio::test]
async fn no_subject_text_reaches_redis() {
    let store = redis().await;
    let email = format!("someone-{}@example.com", uuid::Uuid::new_v4());
    let c = [Count {
        kind: CountKind::Account,
        subject: &email,
        group: None,
        policy: policy(5),
    }];
    store.attempt(&c, t0()).await.unwrap();
    let client = redis::Client::open(url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("gh-test:lock:*")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!keys.is_empty());
    assert!(keys.iter().all(|k| !k.contains("example.com")), "{keys:?}");
    // The count expires by itself: its TTL is the forgetting time (an hour), not forever.
    let key = &keys[0];
    let ttl: i64 = redis::cmd("PTTL")
        .arg(key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(ttl > 0 && ttl <= 3_600_000, "{ttl}");
}

/// A store that always fails, as Redis does when it is away.
#[derive(Debug)]
struct Dead;

fn gone() -> gatehouse_core::Error {
    gatehouse_core::Error::Store(gatehouse_core::StoreError::Unavailable("down".into()))
}

#[async_trait::async_trait]
impl LockoutStore for Dead {
    async fn attempt(
        &self,
        _: &[Count<'_>],
        _: OffsetDateTime,
    ) -> Result<Option<Duration>, gatehouse_core::Error> {
        Err(gone())
    }
    async fn refund(&self, _: &[Count<'_>]) -> Result<(), gatehouse_core::Error> {
        Err(gone())
    }
    async fn clear(&self, _: &[Count<'_>]) -> Result<(), gatehouse_core::Error> {
        Err(gone())
    }
    async fn clear_group(&self, _: CountKind, _: &str) -> Result<(), gatehouse_core::Error> {
        Err(gone())
    }
    async fn first_within(
        &self,
        _: &str,
        _: Duration,
        _: OffsetDateTime,
    ) -> Result<bool, gatehouse_core::Error> {
        Err(gone())
    }
    fn kind(&self) -> &'static str {
        "dead"
    }
}

#[tokio::test]
async fn a_dead_store_falls_back_to_counting_in_this_process() {
    let store = FallbackLockouts::new(Arc::new(Dead));
    let c = [Count {
        kind: CountKind::Pair,
        subject: "x",
        group: None,
        policy: policy(2),
    }];
    let now = t0();
    assert_eq!(store.attempt(&c, now).await.unwrap(), None);
    assert_eq!(store.attempt(&c, now).await.unwrap(), None);
    assert!(store.attempt(&c, now).await.unwrap().is_some());
    assert!(store.is_degraded());
    assert_eq!(store.kind(), "memory-fallback");
    assert!(
        store
            .first_within("m", Duration::minutes(1), now)
            .await
            .unwrap()
    );
    assert!(
        !store
            .first_within("m", Duration::minutes(1), now)
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .fallback_calls
            .load(std::sync::atomic::Ordering::Relaxed),
        5
    );
}

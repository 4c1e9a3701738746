//! The rate-limiter behaviour suite (not a store role: core's `limits::RateLimitStore`): every
//! `RateLimitStore` (in-process, Redis) must pass it. Times are explicit, so no case sleeps.

use std::sync::Arc;

use gatehouse_core::limits::{Quota, RateLimitStore};

fn key(name: &str) -> String {
    format!("test:{}:{name}", uuid::Uuid::new_v4())
}

pub async fn limiter_allows_a_burst_then_refuses_with_an_honest_retry_after(
    store: Arc<dyn RateLimitStore>,
) {
    let k = key("burst");
    let q = Quota::per_minute(5);
    let now = 1_700_000_000_000_000;
    for i in 0..5u32 {
        let d = store.decide(&k, q, now).await.unwrap();
        assert!(d.allowed, "request {i}");
        assert_eq!(d.remaining, 4 - i);
    }
    let refused = store.decide(&k, q, now).await.unwrap();
    assert!(!refused.allowed);
    assert_eq!(refused.remaining, 0);
    assert_eq!(refused.retry_after_us, 12_000_000);
    // One microsecond early: still refused. At the promised time: allowed.
    let early = store
        .decide(&k, q, now + refused.retry_after_us - 1)
        .await
        .unwrap();
    assert!(!early.allowed);
    let on_time = store
        .decide(&k, q, now + refused.retry_after_us)
        .await
        .unwrap();
    assert!(on_time.allowed);
}

pub async fn limiter_keys_are_independent(store: Arc<dyn RateLimitStore>) {
    let (a, b) = (key("a"), key("b"));
    let q = Quota::per_minute(1);
    let now = 1_700_000_000_000_000;
    assert!(store.decide(&a, q, now).await.unwrap().allowed);
    assert!(!store.decide(&a, q, now).await.unwrap().allowed);
    assert!(store.decide(&b, q, now).await.unwrap().allowed);
}

pub async fn limiter_concurrent_decisions_never_exceed_the_quota(store: Arc<dyn RateLimitStore>) {
    let k = key("race");
    let q = Quota::per_minute(50);
    let now = 1_700_000_000_000_000;
    let mut tasks = Vec::new();
    for _ in 0..120 {
        let store = Arc::clone(&store);
        let k = k.clone();
        tasks.push(tokio::spawn(async move {
            store.decide(&k, q, now).await.unwrap().allowed
        }));
    }
    let mut allowed = 0;
    for t in tasks {
        if t.await.unwrap() {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 50);
}

pub async fn limiter_recovers_the_whole_quota_after_the_window(store: Arc<dyn RateLimitStore>) {
    let k = key("recover");
    let q = Quota::per_minute(3);
    let now = 1_700_000_000_000_000;
    for _ in 0..3 {
        assert!(store.decide(&k, q, now).await.unwrap().allowed);
    }
    assert!(!store.decide(&k, q, now).await.unwrap().allowed);
    let later = store.decide(&k, q, now + 60_000_000).await.unwrap();
    assert!(later.allowed);
    assert_eq!(later.remaining, 2);
}

/// Emits one test per limiter case. `$make` is an async fn returning `Arc<dyn RateLimitStore>`.
#[macro_export]
macro_rules! limiter_suite {
    ($make:path) => {
        $crate::limiter_suite!(@cases $make;
            limiter_allows_a_burst_then_refuses_with_an_honest_retry_after,
            limiter_keys_are_independent,
            limiter_concurrent_decisions_never_exceed_the_quota,
            limiter_recovers_the_whole_quota_after_the_window
        );
    };
    (@cases $make:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                $crate::cases::limiter::$case($make().await).await;
            }
        )*
    };
}

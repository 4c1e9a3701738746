//! Rate-limit decisions through Redis: one client, sequential, so each decision's latency is its
//! round trip. Beside it, in the same run, a plain `PING` (one round trip, no script) as the
//! baseline: a decision costing about one PING is one round trip.
//!
//! Usage: redis-decisions [count, default 20000]   (GH_TEST_REDIS_URL, default redis://127.0.0.1:6379)
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::time::Instant;

use gatehouse_core::limits::{Quota, RateLimitStore};
use gatehouse_infra::{RedisLimiter, redis_client};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    let url =
        std::env::var("GH_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let limiter = RedisLimiter::new(&redis_client(&url, None).unwrap(), "gh-bench:").unwrap();
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let quota = Quota::per_minute(1_000_000_000);
    // Warm up (loads the script into Redis).
    for i in 0..100 {
        limiter.decide("warm", quota, i).await.unwrap();
        let _: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
    }
    let started = Instant::now();
    for _ in 0..n {
        let _: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
    }
    let ping = started.elapsed().as_secs_f64() / f64::from(n);
    let started = Instant::now();
    for i in 0..n {
        limiter
            .decide("bench:key", quota, 1_700_000_000_000_000 + i64::from(i))
            .await
            .unwrap();
    }
    let decision = started.elapsed().as_secs_f64() / f64::from(n);
    println!(
        "{{\"count\":{n},\"ping_us\":{:.1},\"decision_us\":{:.1},\"decision_over_ping\":{:.2}}}",
        ping * 1e6,
        decision * 1e6,
        decision / ping
    );
}

//! The limiter behaviour suite against the in-process store.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use gatehouse_core::limits::{MemoryLimiter, RateLimitStore};

async fn memory() -> Arc<dyn RateLimitStore> {
    Arc::new(MemoryLimiter::default())
}

gatehouse_store_tests::limiter_suite!(memory);

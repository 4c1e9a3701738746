//! The lockout behaviour suite against the in-process store.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use gatehouse_core::limits::{LockoutStore, MemoryLockouts};

async fn memory() -> Arc<dyn LockoutStore> {
    Arc::new(MemoryLockouts::default())
}

gatehouse_store_tests::lockout_suite!(memory);

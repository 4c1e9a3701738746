//! PostgreSQL: the shared behaviour suite, and row-level security checked from the database side.
//! Each test gets its own database, dropped when it ends. If PostgreSQL is unreachable these tests
//! fail: they never fall back to another backend.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod fixture;
mod grants_rls;
mod isolation;
mod platform_rls;
mod rls;
mod sso_rls;
mod unavailable;

use fixture::fresh;

gatehouse_store_tests::behaviour_suite!(fresh);

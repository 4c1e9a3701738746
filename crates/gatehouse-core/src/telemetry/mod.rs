//! What the running system says about itself (E2, E3): the request being handled (a task-local
//! every log line and metric reads), the time each request spends per stage, and the process's
//! Prometheus metrics.
//!
//! The HTTP layer opens a [`RequestInfo`] scope per request; code below it (identity, hashing,
//! the store adapters) adds to that request's stage timings without knowing about HTTP.

pub mod metrics;
mod orgs;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use uuid::Uuid;

/// What every log line written while handling a request says about it.
#[derive(Debug, Default)]
pub struct RequestInfo {
    /// Ours, fresh for every request: what the audit log stores and `x-request-id` returns. A
    /// caller's `traceparent` never becomes it, so a caller cannot choose the id that joins its
    /// request to audit events and log lines.
    pub request_id: String,
    /// The caller's W3C trace id from a valid `traceparent`, kept as its own field.
    pub trace_id: Option<String>,
    /// The caller's span id from `traceparent`, when it sent one.
    pub parent_span_id: Option<String>,
    pub method: String,
    /// The route template, never the raw path.
    pub route: String,
    /// The client address: the TCP peer, or behind a trusted proxy the address it forwarded.
    pub client_ip: Option<std::net::IpAddr>,
    /// Set once the caller is authenticated.
    pub organization: OnceLock<Uuid>,
    pub user: OnceLock<Uuid>,
    pub stages: Stages,
}

/// Microseconds a request spent in each stage (summed when a stage runs more than once).
#[derive(Debug, Default)]
pub struct Stages {
    /// Waiting for a password-hashing worker.
    pub hash_wait_us: AtomicU64,
    /// Hashing or verifying a password (Argon2id, bcrypt on import) on a worker.
    pub hash_us: AtomicU64,
    /// Verifying an access token or API key, session check included.
    pub token_us: AtomicU64,
    /// Inside store transactions, from begin to commit or rollback.
    pub store_us: AtomicU64,
    /// How many store transactions the request opened.
    pub store_txs: AtomicU64,
}

/// A stage a request can spend time in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    HashWait,
    Hash,
    Token,
    Store,
}

impl Stages {
    /// `(name, value)` for every stage, in a fixed order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        [
            ("hash_wait_us", &self.hash_wait_us),
            ("hash_us", &self.hash_us),
            ("token_us", &self.token_us),
            ("store_us", &self.store_us),
            ("store_txs", &self.store_txs),
        ]
        .into_iter()
        .map(|(n, v)| (n, v.load(Ordering::Relaxed)))
    }

    /// `(name, microseconds)` for each stage the request spent time in, in a fixed order.
    #[must_use]
    pub fn nonzero(&self) -> Vec<(&'static str, u64)> {
        self.iter().filter(|(_, v)| *v > 0).collect()
    }
}

tokio::task_local! {
    static REQUEST: Arc<RequestInfo>;
}

/// Runs `fut` as the handling of `info`'s request.
pub async fn scope<F: Future>(info: Arc<RequestInfo>, fut: F) -> F::Output {
    REQUEST.scope(info, fut).await
}

/// The request being handled by the calling task, if any.
#[must_use]
pub fn current() -> Option<Arc<RequestInfo>> {
    REQUEST.try_with(Arc::clone).ok()
}

/// Adds `elapsed` to the current request's `stage` (nothing outside a request).
pub fn add(stage: Stage, elapsed: Duration) {
    let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    let _ = REQUEST.try_with(|r| {
        let s = &r.stages;
        match stage {
            Stage::HashWait => s.hash_wait_us.fetch_add(us, Ordering::Relaxed),
            Stage::Hash => s.hash_us.fetch_add(us, Ordering::Relaxed),
            Stage::Token => s.token_us.fetch_add(us, Ordering::Relaxed),
            Stage::Store => {
                s.store_txs.fetch_add(1, Ordering::Relaxed);
                s.store_us.fetch_add(us, Ordering::Relaxed)
            }
        };
    });
}

/// Records who the current request's caller is, for its log lines and the per-organisation
/// request count.
pub fn set_caller(user: Uuid, organization: Option<Uuid>) {
    let _ = REQUEST.try_with(|r| {
        let _ = r.user.set(user);
        if let Some(o) = organization {
            let _ = r.organization.set(o);
        }
    });
}

/// Times a store transaction: created at begin, recorded when dropped (after commit or
/// rollback). Adapters keep one inside each transaction.
#[derive(Debug)]
pub struct StoreTimer(std::time::Instant);

impl StoreTimer {
    #[must_use]
    pub fn start() -> Self {
        Self(std::time::Instant::now())
    }
}

impl Drop for StoreTimer {
    fn drop(&mut self) {
        add(Stage::Store, self.0.elapsed());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stages_add_up_inside_a_request_and_vanish_outside() {
        add(Stage::Hash, Duration::from_millis(5));
        let info = Arc::new(RequestInfo::default());
        scope(Arc::clone(&info), async {
            add(Stage::Hash, Duration::from_micros(300));
            add(Stage::Hash, Duration::from_micros(200));
            drop(StoreTimer::start());
            set_caller(Uuid::nil(), Some(Uuid::max()));
        })
        .await;
        let stages = info.stages.nonzero();
        assert!(stages.contains(&("hash_us", 500)));
        assert!(stages.contains(&("store_txs", 1)));
        assert!(!stages.iter().any(|(n, _)| *n == "token_us"));
        assert_eq!(info.organization.get(), Some(&Uuid::max()));
        assert!(current().is_none());
    }
}

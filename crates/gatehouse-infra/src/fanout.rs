//! Revocation fan-out over Redis pub/sub: an instance that revokes a session or an API key
//! publishes it, and every instance (itself included; applying twice is harmless) drops it from
//! its caches on receipt. A message lost while Redis is away is covered by the caches' age bounds
//! (30 s for sessions, 10 s for API keys), after which the store is asked again.

use gatehouse_core::telemetry::metrics;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use gatehouse_core::Error;
use gatehouse_core::identity::{Revocation, RevocationFanout};
use redis::aio::ConnectionManager;

use crate::RedisClient;

pub struct RedisFanout {
    conn: ConnectionManager,
    channel: String,
    /// Publishes still on their way, for `flush`.
    in_flight: Arc<InFlight>,
}

#[derive(Default)]
struct InFlight {
    count: std::sync::atomic::AtomicUsize,
    done: tokio::sync::Notify,
}

impl std::fmt::Debug for RedisFanout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisFanout")
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

impl RedisFanout {
    /// The publishing side; connects lazily, like the limiter.
    pub fn new(client: &RedisClient, channel: &str) -> Result<Self, Error> {
        Ok(Self {
            conn: ConnectionManager::new_lazy_with_config(
                client.inner().clone(),
                crate::redis_conn::bounded(),
            )
            .map_err(|e| unavailable(&e))?,
            channel: channel.to_owned(),
            in_flight: Arc::default(),
        })
    }
}

fn unavailable(e: &redis::RedisError) -> Error {
    Error::Store(gatehouse_core::StoreError::Unavailable(format!(
        "redis: {e}"
    )))
}

#[async_trait::async_trait]
impl RevocationFanout for RedisFanout {
    fn publish(&self, revocation: Revocation) {
        use std::sync::atomic::Ordering;
        gatehouse_core::identity::note_published();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut conn = self.conn.clone();
        let channel = self.channel.clone();
        self.in_flight.count.fetch_add(1, Ordering::SeqCst);
        // Made before the task, so a task dropped unpolled (a runtime shutting down) still counts
        // itself finished.
        let done = Finished(Arc::clone(&self.in_flight));
        runtime.spawn(async move {
            let _done = done;
            let sent: Result<i64, _> = redis::cmd("PUBLISH")
                .arg(&channel)
                .arg(revocation.encode())
                .query_async(&mut conn)
                .await;
            if let Err(e) = sent {
                metrics::error("redis");
                tracing::warn!(error = %e, "could not publish a revocation; other instances rely on their cache age bound");
            }
        });
    }

    async fn flush(&self) {
        use std::sync::atomic::Ordering;
        loop {
            let done = self.in_flight.done.notified();
            if self.in_flight.count.load(Ordering::SeqCst) == 0 {
                return;
            }
            done.await;
        }
    }
}

/// Counts a publish as finished when its task ends, however it ends.
struct Finished(Arc<InFlight>);

impl Drop for Finished {
    fn drop(&mut self) {
        if self
            .0
            .count
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst)
            == 1
        {
            self.0.done.notify_waiters();
        }
    }
}

/// Receives revocations until the process ends, reconnecting after any failure.
pub fn subscribe(
    client: &RedisClient,
    channel: &str,
    apply: Arc<dyn Fn(Revocation) + Send + Sync>,
) -> tokio::task::JoinHandle<()> {
    let client = client.inner().clone();
    let channel = channel.to_owned();
    tokio::spawn(async move {
        loop {
            match client.get_async_pubsub().await {
                Ok(mut pubsub) => {
                    if let Err(e) = pubsub.subscribe(&channel).await {
                        tracing::warn!(error = %e, "could not subscribe to revocations");
                    } else {
                        if metrics::is_degraded("revocation_fanout") {
                            tracing::warn!("revocations are received again");
                        }
                        metrics::set_degraded("revocation_fanout", false);
                        let mut messages = pubsub.on_message();
                        while let Some(msg) = messages.next().await {
                            if let Ok(text) = msg.get_payload::<String>()
                                && let Some(r) = Revocation::decode(&text)
                            {
                                apply(r);
                            }
                        }
                        tracing::warn!("revocation subscription ended; reconnecting");
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "Redis unreachable for revocations; retrying");
                }
            }
            // Revocations from other instances now reach this one only through its cache age
            // bound; its own still apply at once.
            metrics::set_degraded("revocation_fanout", true);
            metrics::error("redis");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
}

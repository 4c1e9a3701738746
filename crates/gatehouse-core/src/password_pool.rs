//! A fixed set of threads that run password hashing, fed by a bounded queue.
//!
//! Argon2id takes tens of milliseconds of CPU by design. Running it on the async runtime would
//! stall every other request; queueing without bound would turn a login flood into unbounded
//! latency for everyone. Here a full queue answers at once with `Error::Overloaded`, which the HTTP
//! layer turns into 503 with `Retry-After`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};

use std::cell::RefCell;
use std::time::Duration;

use gatehouse_crypto::{
    Argon2Params, HashScratch, Pepper, SecretString, hash_password_peppered, needs_rehash_peppered,
    verify_password_peppered,
};

use crate::error::Error;

type Job = Box<dyn FnOnce() + Send + 'static>;

#[derive(Debug, Clone)]
pub struct PasswordPool {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    queue: SyncSender<Job>,
    params: Argon2Params,
    pending: AtomicUsize,
    workers: usize,
    pepper: Option<Arc<Pepper>>,
}

impl PasswordPool {
    /// The pepper new hashes mix in, if one is configured.
    #[must_use]
    pub fn pepper(&self) -> Option<&Pepper> {
        self.inner.pepper.as_deref()
    }

    /// Starts `workers` threads (at least one) with room for `queue` waiting jobs.
    pub fn start(workers: usize, queue: usize, params: Argon2Params) -> Result<Self, Error> {
        Self::start_with_pepper(workers, queue, params, None)
    }

    /// Like [`PasswordPool::start`]; new hashes mix in `pepper` (see `gatehouse_crypto::Pepper`).
    pub fn start_with_pepper(
        workers: usize,
        queue: usize,
        params: Argon2Params,
        pepper: Option<Pepper>,
    ) -> Result<Self, Error> {
        let workers = workers.max(1);
        let (tx, rx) = sync_channel::<Job>(queue);
        let rx = Arc::new(Mutex::new(rx));
        for n in 0..workers {
            let rx = Arc::clone(&rx);
            std::thread::Builder::new()
                .name(format!("gatehouse-hash-{n}"))
                .spawn(move || worker(&rx))
                .map_err(|e| Error::Internal(format!("cannot start a hashing thread: {e}")))?;
        }
        Ok(Self {
            inner: Arc::new(Inner {
                queue: tx,
                params,
                pending: AtomicUsize::new(0),
                workers,
                pepper: pepper.map(Arc::new),
            }),
        })
    }

    /// Jobs accepted and not yet finished (running or waiting).
    #[must_use]
    pub fn pending(&self) -> usize {
        self.inner.pending.load(Ordering::Relaxed)
    }

    #[must_use]
    pub fn workers(&self) -> usize {
        self.inner.workers
    }

    #[must_use]
    pub fn params(&self) -> Argon2Params {
        self.inner.params
    }

    pub async fn hash(&self, password: SecretString) -> Result<String, Error> {
        let params = self.inner.params;
        let pepper = self.inner.pepper.clone();
        self.run(move || hash_password_peppered(&password, &params, pepper.as_deref()))
            .await?
            .map_err(|e| Error::Internal(e.to_string()))
    }

    pub async fn verify(&self, password: SecretString, phc: String) -> Result<bool, Error> {
        let pepper = self.inner.pepper.clone();
        self.run(move || {
            let pepper = pepper.as_deref();
            SCRATCH.with(|cell| match cell.try_borrow_mut() {
                Ok(mut scratch) => verify_password_peppered(&password, &phc, &mut scratch, pepper),
                Err(_) => {
                    verify_password_peppered(&password, &phc, &mut HashScratch::default(), pepper)
                }
            })
        })
        .await?
        .map_err(|e| Error::Internal(e.to_string()))
    }

    /// Whether a stored hash should be replaced at the next successful sign-in: weaker than the
    /// configured parameters, or not made with the configured pepper.
    #[must_use]
    pub fn needs_rehash(&self, phc: &str) -> bool {
        needs_rehash_peppered(phc, &self.inner.params, self.inner.pepper.as_deref())
    }

    /// Whether new hashes are peppered (for the readiness report).
    #[must_use]
    pub fn peppered(&self) -> bool {
        self.inner.pepper.is_some()
    }

    /// Runs `f` on a pool thread, or refuses at once when the queue is full.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Error> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let inner = Arc::clone(&self.inner);
        let queued = std::time::Instant::now();
        let job: Job = Box::new(move || {
            let started = std::time::Instant::now();
            let out = f();
            inner.pending.fetch_sub(1, Ordering::Relaxed);
            let _ = tx.send((out, started.duration_since(queued), started.elapsed()));
        });
        self.inner.pending.fetch_add(1, Ordering::Relaxed);
        match self.inner.queue.try_send(job) {
            Ok(()) => {
                let (out, waited, ran) = rx
                    .await
                    .map_err(|_| Error::Internal("a hashing job was dropped".into()))?;
                crate::telemetry::add(crate::telemetry::Stage::HashWait, waited);
                crate::telemetry::add(crate::telemetry::Stage::Hash, ran);
                crate::telemetry::metrics::hash_waited(waited);
                Ok(out)
            }
            Err(TrySendError::Full(_)) => {
                self.inner.pending.fetch_sub(1, Ordering::Relaxed);
                Err(Error::Overloaded {
                    retry_after_secs: 1,
                })
            }
            Err(TrySendError::Disconnected(_)) => {
                self.inner.pending.fetch_sub(1, Ordering::Relaxed);
                Err(Error::Internal("the hashing pool has stopped".into()))
            }
        }
    }
}

thread_local! {
    /// Each hashing thread's Argon2 working memory, reused across verifications.
    static SCRATCH: RefCell<HashScratch> = RefCell::new(HashScratch::default());
}

/// A thread idle this long zeroes and returns its working memory, so an idle server stays small.
const RELEASE_SCRATCH_AFTER: Duration = Duration::from_secs(30);

fn worker(rx: &Mutex<Receiver<Job>>) {
    use std::sync::mpsc::RecvTimeoutError;
    lower_priority();
    loop {
        let next = rx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .recv_timeout(RELEASE_SCRATCH_AFTER);
        match next {
            Ok(job) => job(),
            Err(RecvTimeoutError::Timeout) => SCRATCH.with(|cell| {
                if let Ok(mut s) = cell.try_borrow_mut() {
                    s.clear();
                }
            }),
            Err(RecvTimeoutError::Disconnected) => return, // the pool was dropped
        }
    }
}

/// Hashing is deliberately slow and CPU-bound; request handling is short. On a machine whose cores
/// are all hashing (a sign-in flood), token verification must still get a core at once, so the
/// hashing threads run under SCHED_IDLE: they take every idle cycle, and any other thread that
/// wakes preempts them immediately (Linux preempts an idle-policy task on every wakeup of a normal
/// one; SCHED_BATCH at nice 19 still let a running hash finish its slice, measured as a 4 to 6 ms
/// verify p99 during a flood). If other work keeps every core busy, sign-ins slow down and the
/// bounded queue answers 503 with `Retry-After`: the hot path wins. Lowering one's own priority
/// needs no privilege; if the platform refuses anyway, hashing runs at normal priority and says so.
fn lower_priority() {
    use thread_priority::{
        NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy,
        set_thread_priority_and_policy, thread_native_id,
    };
    let lowered = set_thread_priority_and_policy(
        thread_native_id(),
        ThreadPriority::Min,
        ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle),
    );
    if let Err(e) = lowered {
        tracing::warn!(error = ?e, "hashing threads run at normal priority");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_is_refused_at_once_and_work_resumes_after() {
        let pool = PasswordPool::start(1, 1, Argon2Params::MINIMUM).unwrap();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
        // Occupy the only worker until released.
        let p = pool.clone();
        let busy = tokio::spawn(async move {
            p.run(move || {
                started_tx.send(()).unwrap();
                release_rx.recv().unwrap();
                1
            })
            .await
        });
        started_rx.await.unwrap();
        // Fill the one queue slot.
        let p = pool.clone();
        let queued = tokio::spawn(async move { p.run(|| 2).await });
        while pool.pending() < 2 {
            tokio::task::yield_now().await;
        }
        // The next job finds the queue full.
        assert!(matches!(
            pool.run(|| 3).await,
            Err(Error::Overloaded {
                retry_after_secs: 1
            })
        ));
        release_tx.send(()).unwrap();
        assert_eq!(busy.await.unwrap().unwrap(), 1);
        assert_eq!(queued.await.unwrap().unwrap(), 2);
        assert_eq!(pool.run(|| 4).await.unwrap(), 4);
        assert_eq!(pool.pending(), 0);
    }

    #[tokio::test]
    async fn hashes_and_verifies_off_the_runtime() {
        let pool = PasswordPool::start(2, 4, Argon2Params::MINIMUM).unwrap();
        let phc = pool
            .hash(SecretString::new("a long passphrase".into()))
            .await
            .unwrap();
        assert!(
            pool.verify(SecretString::new("a long passphrase".into()), phc.clone())
                .await
                .unwrap()
        );
        assert!(
            !pool
                .verify(SecretString::new("another one".into()), phc)
                .await
                .unwrap()
        );
    }
}

//! Periodic jobs that must run once across instances (re-encryption, audit checkpoints, the
//! lifecycle purge and pruning) run under a named lease in the database (`leases`, through
//! [`Housekeeping::acquire_lease`]): each tick every instance asks for the lease, the one that
//! holds it (or finds it free or expired) renews it and does the batch, the others skip it.
//!
//! A lease lasts two intervals and is renewed at every tick, so the holder keeps it as long as
//! it ticks; at shutdown it is released and another instance takes over at its next tick. An
//! instance killed while holding it stops renewing: the lease runs out at most one lease after
//! its last renewal, and the next tick of another instance takes it. **Takeover bound: the lease
//! plus one interval, three intervals with the default lease** (plus the instances' clock skew,
//! since the expiry is written by the holder's clock and compared with the taker's). A batch must
//! therefore end well within one interval after it starts; the second interval of the lease is
//! its margin.
//!
//! Mail and webhook delivery need no lease: they claim due rows one batch at a time (PostgreSQL:
//! `FOR UPDATE SKIP LOCKED`; SQLite: one writer), so several instances deliver different rows.
//!
//! Each job's state here (held or not, by whom, last run and outcome) is what readiness and the
//! `gatehouse_job_*` metrics report. The outcome is only ok or failed: how much a batch did
//! moves with what users do, and readiness is public.

use std::fmt::Display;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use time::OffsetDateTime;

use crate::clock::Clock;
use crate::store::Housekeeping;
use crate::telemetry::metrics;

/// How a job's last batch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobOutcome {
    Ok,
    Failed,
}

impl JobOutcome {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Failed => "failed",
        }
    }
}

/// One leased job as this instance sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobStatus {
    pub name: &'static str,
    /// Whether this instance holds the lease (as of its last tick).
    pub held: bool,
    /// The instance that holds it (a random instance id), when anyone does.
    pub holder: Option<String>,
    /// When this instance last started the job's batch.
    pub last_run: Option<OffsetDateTime>,
    pub last_outcome: Option<JobOutcome>,
}

/// The leased jobs of this process and their state, in the order they were started.
#[derive(Debug, Default)]
pub struct JobBoard {
    jobs: Mutex<Vec<JobStatus>>,
}

impl JobBoard {
    #[must_use]
    pub fn snapshot(&self) -> Vec<JobStatus> {
        self.jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn update(&self, name: &'static str, change: impl FnOnce(&mut JobStatus)) {
        let mut jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(status) = jobs.iter_mut().find(|j| j.name == name) {
            change(status);
        } else {
            let mut status = JobStatus {
                name,
                held: false,
                holder: None,
                last_run: None,
                last_outcome: None,
            };
            change(&mut status);
            jobs.push(status);
        }
    }

    fn held(&self, name: &'static str) -> bool {
        self.jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .any(|j| j.name == name && j.held)
    }

    fn names(&self) -> Vec<&'static str> {
        self.jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|j| j.name)
            .collect()
    }
}

/// A job's name (the lease's), its interval and its lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeasedJob {
    pub name: &'static str,
    pub every: std::time::Duration,
    pub lease: time::Duration,
    /// The first tick one interval after start rather than at once.
    pub first_after_one_interval: bool,
}

impl LeasedJob {
    /// A job run every `every` under a lease of two intervals.
    #[must_use]
    pub fn new(name: &'static str, every: std::time::Duration) -> Self {
        let lease = time::Duration::try_from(every.saturating_mul(2))
            .unwrap_or(time::Duration::seconds(60));
        Self {
            name,
            every,
            lease,
            first_after_one_interval: false,
        }
    }

    /// The same job, first ticking one interval after start (checkpoints: nothing has moved yet).
    #[must_use]
    pub fn first_after_one_interval(mut self) -> Self {
        self.first_after_one_interval = true;
        self
    }

    /// The same job under a lease of `lease` (the lifecycle job's is configured).
    #[must_use]
    pub fn with_lease(mut self, lease: time::Duration) -> Self {
        self.lease = lease;
        self
    }

    /// The longest a job waits after its holder died: the lease, then one interval of the
    /// instance that takes it over (clock skew between instances comes on top).
    #[must_use]
    pub fn takeover_bound(&self) -> std::time::Duration {
        std::time::Duration::try_from(self.lease)
            .unwrap_or_default()
            .saturating_add(self.every)
    }
}

/// What one tick did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tick {
    /// This instance holds the lease and ran the batch.
    Ran(JobOutcome),
    /// Another instance holds the lease; nothing ran here.
    HeldElsewhere,
    /// The lease could not be asked for (the store is unreachable); nothing ran.
    LeaseUnavailable,
}

/// Runs one job under its lease on behalf of one instance (`holder`).
pub struct LeaseRunner {
    job: LeasedJob,
    holder: String,
    store: Arc<dyn Housekeeping>,
    clock: Arc<dyn Clock>,
    board: Arc<JobBoard>,
}

impl std::fmt::Debug for LeaseRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseRunner")
            .field("job", &self.job)
            .field("holder", &self.holder)
            .finish_non_exhaustive()
    }
}

impl LeaseRunner {
    #[must_use]
    pub fn new(
        job: LeasedJob,
        holder: String,
        store: Arc<dyn Housekeeping>,
        clock: Arc<dyn Clock>,
        board: Arc<JobBoard>,
    ) -> Self {
        board.update(job.name, |_| {});
        metrics::job_lease_held(job.name, false);
        Self {
            job,
            holder,
            store,
            clock,
            board,
        }
    }

    #[must_use]
    pub fn job(&self) -> &LeasedJob {
        &self.job
    }

    /// Takes or renews the lease and, when this instance holds it, runs `work` once.
    pub async fn tick<F, Fut, E>(&self, work: F) -> Tick
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: Display,
    {
        let name = self.job.name;
        let now = self.clock.now();
        let was_held = self.board.held(name);
        let won = self
            .store
            .acquire_lease(name, &self.holder, now, now + self.job.lease)
            .await;
        match won {
            Err(e) => {
                tracing::warn!(job = name, error = %e, "could not ask for the job's lease; retrying at the next tick");
                self.set_held(false, None);
                Tick::LeaseUnavailable
            }
            Ok(false) => {
                let holder = self.store.lease_holder(name, now).await.ok().flatten();
                if was_held {
                    tracing::info!(job = name, holder = ?holder, "another instance now runs this job");
                }
                self.set_held(false, holder);
                Tick::HeldElsewhere
            }
            Ok(true) => {
                if !was_held {
                    tracing::info!(job = name, instance = %self.holder, "this instance now runs this job");
                }
                self.set_held(true, Some(self.holder.clone()));
                let started = self.clock.now();
                let outcome = match work().await {
                    Ok(()) => JobOutcome::Ok,
                    Err(e) => {
                        tracing::warn!(job = name, error = %e, "the job's batch failed; retrying at the next tick");
                        JobOutcome::Failed
                    }
                };
                self.board.update(name, |s| {
                    s.last_run = Some(started);
                    s.last_outcome = Some(outcome);
                });
                metrics::job_ran(name, outcome.as_str(), started.unix_timestamp());
                Tick::Ran(outcome)
            }
        }
    }

    /// Ticks every interval, for ever (the first tick at once, or one interval after start). A
    /// tick that overran its interval delays the next rather than bunching them.
    pub async fn run<F, Fut, E>(self, mut work: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: Display,
    {
        let first = if self.job.first_after_one_interval {
            tokio::time::Instant::now() + self.job.every
        } else {
            tokio::time::Instant::now()
        };
        let mut every = tokio::time::interval_at(first, self.job.every);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            self.tick(&mut work).await;
        }
    }

    fn set_held(&self, held: bool, holder: Option<String>) {
        self.board.update(self.job.name, |s| {
            s.held = held;
            s.holder = holder;
        });
        metrics::job_lease_held(self.job.name, held);
    }
}

/// Gives up every lease `holder` holds among the jobs on `board` (at shutdown, after the jobs
/// stopped), so other instances take them over at their next tick instead of after the lease.
pub async fn release_all(store: &dyn Housekeeping, board: &JobBoard, holder: &str) {
    for name in board.names() {
        if !board.held(name) {
            continue;
        }
        match store.release_lease(name, holder).await {
            Ok(()) => {
                board.update(name, |s| {
                    s.held = false;
                    s.holder = None;
                });
                metrics::job_lease_held(name, false);
            }
            Err(e) => {
                tracing::warn!(job = name, error = %e, "could not give up the job's lease; it runs out by itself");
            }
        }
    }
}

#[cfg(test)]
#[path = "jobs_tests.rs"]
mod tests;

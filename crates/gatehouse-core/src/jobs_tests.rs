use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use async_trait::async_trait;
use time::Duration;

use super::*;
use crate::clock::FakeClock;
use crate::error::StoreError;
use crate::ids::OrgId;

/// The `leases` table in memory, deciding as the stores' one statement does.
#[derive(Debug, Default)]
struct Leases {
    rows: Mutex<HashMap<String, (String, OffsetDateTime)>>,
    down: AtomicBool,
}

impl Leases {
    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::Relaxed) {
            return Err(StoreError::Unavailable("connection refused".into()));
        }
        Ok(())
    }
}

#[async_trait]
impl Housekeeping for Leases {
    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        self.check()?;
        let mut rows = self.rows.lock().unwrap();
        let free = rows
            .get(name)
            .is_none_or(|(h, expires)| h == holder || *expires <= now);
        if free {
            rows.insert(name.to_owned(), (holder.to_owned(), until));
        }
        Ok(free)
    }

    async fn lease_holder(
        &self,
        name: &str,
        now: OffsetDateTime,
    ) -> Result<Option<String>, StoreError> {
        self.check()?;
        Ok(self
            .rows
            .lock()
            .unwrap()
            .get(name)
            .filter(|(_, expires)| *expires > now)
            .map(|(h, _)| h.clone()))
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        self.check()?;
        let mut rows = self.rows.lock().unwrap();
        if rows.get(name).is_some_and(|(h, _)| h == holder) {
            rows.remove(name);
        }
        Ok(())
    }

    async fn settle_erasure(&self) -> Result<bool, StoreError> {
        Ok(true)
    }

    async fn orgs_with_expired(
        &self,
        _: OffsetDateTime,
        _: Option<OrgId>,
        _: u32,
    ) -> Result<Vec<OrgId>, StoreError> {
        Ok(Vec::new())
    }
}

const EVERY: std::time::Duration = std::time::Duration::from_secs(10);

struct Instance {
    runner: LeaseRunner,
    board: Arc<JobBoard>,
    runs: AtomicU32,
}

impl Instance {
    fn new(name: &str, leases: &Arc<Leases>, clock: &FakeClock) -> Self {
        let board = Arc::new(JobBoard::default());
        let runner = LeaseRunner::new(
            LeasedJob::new("checkpoints", EVERY),
            name.to_owned(),
            Arc::clone(leases) as Arc<dyn Housekeeping>,
            Arc::new(clock.clone()),
            Arc::clone(&board),
        );
        Self {
            runner,
            board,
            runs: AtomicU32::new(0),
        }
    }

    async fn tick(&self) -> Tick {
        self.runner
            .tick(|| async {
                self.runs.fetch_add(1, Ordering::Relaxed);
                Ok::<(), String>(())
            })
            .await
    }

    fn status(&self) -> JobStatus {
        self.board.snapshot().remove(0)
    }
}

fn start() -> (Arc<Leases>, FakeClock) {
    (
        Arc::new(Leases::default()),
        FakeClock::at(OffsetDateTime::UNIX_EPOCH + Duration::days(20_000)),
    )
}

#[test]
fn the_lease_is_two_intervals_and_takeover_is_bounded_by_three() {
    let job = LeasedJob::new("reencryption", EVERY);
    assert_eq!(job.lease, Duration::seconds(20));
    assert_eq!(job.takeover_bound(), std::time::Duration::from_secs(30));
    let job = job.with_lease(Duration::seconds(5));
    assert_eq!(job.takeover_bound(), std::time::Duration::from_secs(15));
}

#[tokio::test]
async fn one_of_three_instances_runs_each_tick_while_it_keeps_renewing() {
    let (leases, clock) = start();
    let all = [
        Instance::new("a", &leases, &clock),
        Instance::new("b", &leases, &clock),
        Instance::new("c", &leases, &clock),
    ];
    for _ in 0..10 {
        let ticks = [
            all[0].tick().await,
            all[1].tick().await,
            all[2].tick().await,
        ];
        assert_eq!(
            ticks,
            [
                Tick::Ran(JobOutcome::Ok),
                Tick::HeldElsewhere,
                Tick::HeldElsewhere
            ]
        );
        // Each renewal pushes the lease out again: a full interval later it is still a's.
        clock.advance(Duration::seconds(10));
    }
    let runs: Vec<u32> = all.iter().map(|i| i.runs.load(Ordering::Relaxed)).collect();
    assert_eq!(runs, [10, 0, 0]);
    let a = all[0].status();
    assert!(a.held);
    assert_eq!(a.holder.as_deref(), Some("a"));
    assert_eq!(a.last_outcome, Some(JobOutcome::Ok));
    assert_eq!(a.last_run, Some(clock.now() - Duration::seconds(10)));
    for other in &all[1..] {
        let s = other.status();
        assert!(!s.held);
        assert_eq!(s.holder.as_deref(), Some("a"), "the others name the holder");
        assert_eq!(s.last_run, None);
    }
}

#[tokio::test]
async fn a_dead_holder_is_replaced_once_its_lease_runs_out_and_not_before() {
    let (leases, clock) = start();
    let a = Instance::new("a", &leases, &clock);
    let b = Instance::new("b", &leases, &clock);
    assert_eq!(a.tick().await, Tick::Ran(JobOutcome::Ok));
    // a dies now. Within the lease b keeps out.
    clock.advance(Duration::seconds(10));
    assert_eq!(b.tick().await, Tick::HeldElsewhere);
    clock.advance(Duration::seconds(9));
    assert_eq!(b.tick().await, Tick::HeldElsewhere);
    // At the lease's end b's next tick takes it: never later than lease + one interval.
    clock.advance(Duration::seconds(1));
    assert_eq!(b.tick().await, Tick::Ran(JobOutcome::Ok));
    assert!(b.status().held);
    // Were a only paused, it learns at its next tick that b runs the job now.
    assert_eq!(a.tick().await, Tick::HeldElsewhere);
    let s = a.status();
    assert!(!s.held);
    assert_eq!(s.holder.as_deref(), Some("b"));
    assert_eq!(a.runs.load(Ordering::Relaxed), 1);
    assert_eq!(b.runs.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn a_released_lease_is_taken_at_the_next_tick() {
    let (leases, clock) = start();
    let a = Instance::new("a", &leases, &clock);
    let b = Instance::new("b", &leases, &clock);
    assert_eq!(a.tick().await, Tick::Ran(JobOutcome::Ok));
    release_all(leases.as_ref(), &a.board, "a").await;
    assert!(!a.status().held);
    assert_eq!(b.tick().await, Tick::Ran(JobOutcome::Ok));
}

#[tokio::test]
async fn a_failed_batch_is_recorded_and_an_unreachable_store_runs_nothing() {
    let (leases, clock) = start();
    let a = Instance::new("a", &leases, &clock);
    let tick = a
        .runner
        .tick(|| async { Err::<(), _>("the store went away") })
        .await;
    assert_eq!(tick, Tick::Ran(JobOutcome::Failed));
    assert_eq!(a.status().last_outcome, Some(JobOutcome::Failed));
    assert_eq!(a.status().last_run, Some(clock.now()));
    leases.down.store(true, Ordering::Relaxed);
    clock.advance(Duration::seconds(10));
    assert_eq!(a.tick().await, Tick::LeaseUnavailable);
    assert_eq!(a.runs.load(Ordering::Relaxed), 0);
    let s = a.status();
    assert!(
        !s.held,
        "an instance that cannot renew does not claim the job"
    );
    assert_eq!(s.last_outcome, Some(JobOutcome::Failed));
}

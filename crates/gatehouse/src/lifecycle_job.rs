//! The lifecycle job `serve` runs, under the `lifecycle` lease (see `gatehouse_core::jobs`):
//! every purge interval the instance holding the lease purges expired records and secrets, and
//! every prune interval it also prunes spent rows. With several instances over one database one
//! does the work; when it stops (or dies, and its lease runs out) another takes over at its next
//! tick. Every instance, lease or not, forgets its own run-out lockout entries.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use gatehouse_core::Kernel;
use gatehouse_core::lifecycle::EVERY_PURGE;
use gatehouse_core::store::PruneJob;

const ALL: [PruneJob; 6] = PruneJob::ALL;

pub(crate) async fn run(
    kernel: Arc<Kernel>,
    holder: String,
    purge_every: Duration,
    prune_every: Duration,
) {
    let runner = kernel.lease_runner(kernel.lifecycle().leased_job(purge_every), &holder);
    let last_prune: Mutex<Option<tokio::time::Instant>> = Mutex::new(None);
    let work = || async {
        let purged = match kernel.lifecycle().purge_expired(&holder).await {
            Ok(r) => {
                if r.batches > 0 || r.failures > 0 {
                    tracing::info!(
                        records = r.records,
                        secrets = r.secrets,
                        batches = r.batches,
                        failures = r.failures,
                        "purged expired data"
                    );
                }
                if r.failures > 0 {
                    Err(format!("the purge failed for {} organisations", r.failures))
                } else {
                    Ok(())
                }
            }
            Err(e) => Err(format!("the purge of expired data failed: {e}")),
        };
        let jobs: &[PruneJob] = {
            let mut last = last_prune.lock().unwrap_or_else(PoisonError::into_inner);
            if last.is_none_or(|t| t.elapsed() >= prune_every) {
                *last = Some(tokio::time::Instant::now());
                &ALL
            } else {
                &EVERY_PURGE
            }
        };
        let pruned = match kernel.lifecycle().prune(&holder, jobs).await {
            Ok(r) => {
                if !r.rows.is_empty() {
                    tracing::info!(rows = ?r.rows, "pruned spent rows");
                }
                Ok(())
            }
            Err(e) => Err(format!("pruning failed: {e}")),
        };
        purged.and(pruned)
    };
    let forget = async {
        let mut tick = tokio::time::interval(purge_every);
        loop {
            tick.tick().await;
            kernel.lifecycle().forget_lockouts();
        }
    };
    tokio::join!(runner.run(work), forget);
}

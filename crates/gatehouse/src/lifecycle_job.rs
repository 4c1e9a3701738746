//! The lifecycle job `serve` runs: every purge interval it takes (or renews) the lease in the
//! database and, while it holds it, purges expired records and secrets; every prune interval
//! it also prunes spent rows. With several instances over one database one does the work; when
//! it stops (or dies, and its lease runs out) another takes over at its next tick.

use std::sync::Arc;
use std::time::Duration;

use gatehouse_core::Kernel;
use gatehouse_core::lifecycle::EVERY_PURGE;
use gatehouse_core::store::PruneJob;

const ALL: [PruneJob; 5] = PruneJob::ALL;

/// This instance's name in the lease: random, so two processes on one host differ.
pub(crate) fn instance_id() -> String {
    format!("gatehouse-{}", uuid::Uuid::new_v4())
}

pub(crate) async fn run(
    kernel: Arc<Kernel>,
    holder: String,
    purge_every: Duration,
    prune_every: Duration,
) {
    let mut tick = tokio::time::interval(purge_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_prune: Option<tokio::time::Instant> = None;
    let mut held = false;
    loop {
        tick.tick().await;
        // Every instance forgets its own run-out lockout entries; the rest is the holder's.
        kernel.lifecycle().forget_lockouts();
        match kernel.lifecycle().hold_lease(&holder).await {
            Ok(true) => {
                if !held {
                    tracing::info!(instance = %holder, "this instance now runs the lifecycle jobs");
                }
                held = true;
            }
            Ok(false) => {
                held = false;
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not take the lifecycle lease; retrying later");
                continue;
            }
        }
        match kernel.lifecycle().purge_expired(&holder).await {
            Ok(r) if r.batches > 0 || r.failures > 0 => tracing::info!(
                records = r.records,
                secrets = r.secrets,
                batches = r.batches,
                failures = r.failures,
                "purged expired data"
            ),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "the purge of expired data failed; retrying later")
            }
        }
        let prune_all = last_prune.is_none_or(|t| t.elapsed() >= prune_every);
        let jobs: &[PruneJob] = if prune_all {
            last_prune = Some(tokio::time::Instant::now());
            &ALL
        } else {
            &EVERY_PURGE
        };
        match kernel.lifecycle().prune(&holder, jobs).await {
            Ok(r) if !r.rows.is_empty() => {
                tracing::info!(rows = ?r.rows, "pruned spent rows");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "pruning failed; retrying later"),
        }
    }
}

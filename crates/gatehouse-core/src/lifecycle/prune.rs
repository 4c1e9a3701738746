//! Pruning spent rows after their retention: one platform transaction and one operators'
//! audit event per batch, and the in-process lockout entries that have run out.

use std::collections::BTreeMap;

use super::Lifecycle;
use crate::audit::{Actor, AuditEvent};
use crate::error::Error;
use crate::store::PruneJob;
use crate::telemetry::metrics;

/// What one pruning removed, by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    pub rows: BTreeMap<&'static str, u64>,
}

impl Lifecycle<'_> {
    /// Removes every spent row of `jobs` whose retention has passed at now (the injected clock).
    /// Call it while holding the lease; `instance` is named in each batch's event.
    pub async fn prune(&self, instance: &str, jobs: &[PruneJob]) -> Result<PruneReport, Error> {
        let settings = self.lifecycle_settings();
        let now = self.clock().now();
        let mut report = PruneReport::default();
        for &job in jobs {
            let keep = settings
                .retention
                .get(&job)
                .copied()
                .unwrap_or_else(|| super::default_retention(job));
            let cutoff = now - keep;
            loop {
                let mut tx = self.store().begin().await?;
                let n = tx.prune(job, cutoff, settings.batch).await?;
                if n == 0 {
                    break;
                }
                let event = AuditEvent::success(
                    Actor::system("lifecycle"),
                    "retention.pruned",
                    "platform",
                    job.as_str(),
                )
                .with_details(
                    serde_json::json!({
                        "rows": n,
                        "retention_secs": keep.whole_seconds(),
                        "before": cutoff.unix_timestamp(),
                        "instance": instance,
                    })
                    .to_string(),
                );
                let proof = crate::audit::append_operator(tx.as_mut(), self.clock(), event).await?;
                tx.commit(proof).await?;
                *report.rows.entry(job.as_str()).or_default() += n;
                metrics::lifecycle_removed(job.as_str(), n);
                if n < u64::from(settings.batch) {
                    break;
                }
                tokio::time::sleep(settings.pause).await;
            }
        }
        Ok(report)
    }

    /// Forgets this process's sign-in lockout entries that have run out (every instance keeps
    /// its own, so every instance calls this, lease or not); returns how many.
    pub fn forget_lockouts(&self) -> u64 {
        let forgotten = self.identity().prune_lockouts(self.clock().now()) as u64;
        if forgotten > 0 {
            metrics::lifecycle_removed("lockouts", forgotten);
        }
        forgotten
    }
}

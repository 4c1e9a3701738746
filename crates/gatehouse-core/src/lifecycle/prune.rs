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
    /// Sign-in lockout entries forgotten (in this process's memory).
    pub lockouts: u64,
}

impl Lifecycle<'_> {
    /// Removes every spent row whose retention has passed at now (the injected clock). Call it
    /// while holding the lease (the lockout entries are this process's own either way).
    pub async fn prune(&self, instance: &str) -> Result<PruneReport, Error> {
        let settings = self.lifecycle_settings();
        let now = self.clock().now();
        let mut report = PruneReport::default();
        for job in PruneJob::ALL {
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
            }
        }
        let forgotten = self.identity().prune_lockouts(now) as u64;
        if forgotten > 0 {
            metrics::lifecycle_removed("lockouts", forgotten);
        }
        report.lockouts = forgotten;
        Ok(report)
    }
}

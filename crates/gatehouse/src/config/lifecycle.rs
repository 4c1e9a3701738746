//! `[lifecycle]`: how often expired records and secrets are purged (G3), and how long spent rows
//! are kept before the pruning removes them.

use std::time::Duration;

use gatehouse_core::lifecycle::{LifecycleSettings, default_retention};
use gatehouse_core::store::PruneJob;
use serde::{Deserialize, Serialize};

use super::{ConfigError, refuse};

/// The purge promises expired rows are physically gone within a minute, even when the instance
/// holding the lease dies: its lease (two intervals) runs out, another instance takes over at
/// its next tick (one more), then purges. Three intervals plus the run must fit.
const MAX_PURGE_INTERVAL_SECS: u64 = 15;
/// Ten years: retention beyond that is a typo, not a policy.
const MAX_RETENTION_HOURS: u64 = 24 * 3653;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LifecycleConfig {
    /// How often expired records and secrets (and deleted secrets) are purged, and expired
    /// sessions pruned; 1 to 15.
    pub purge_interval_secs: u64,
    /// How often spent rows are pruned.
    pub prune_interval_secs: u64,
    /// Rows removed per transaction and per audit event; 10 to 10000.
    pub batch: u32,
    /// Milliseconds of rest after each batch, leaving the store to requests; 0 to 1000.
    pub pause_ms: u64,
    /// Hours kept after expiry or revocation (sessions hold IP addresses and user agents): 0,
    /// the default, prunes them at the next purge.
    pub sessions_retention_hours: u64,
    /// Hours kept after use or expiry.
    pub one_time_tokens_retention_hours: u64,
    /// Hours kept after use.
    pub recovery_codes_retention_hours: u64,
    /// Hours kept after delivery (the body is erased at delivery; this is the bookkeeping).
    pub delivered_mail_retention_hours: u64,
    /// Hours kept after the delivery was given up.
    pub dead_mail_retention_hours: u64,
}

fn hours(job: PruneJob) -> u64 {
    u64::try_from(default_retention(job).whole_hours()).unwrap_or(0)
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        Self {
            purge_interval_secs: 10,
            prune_interval_secs: 300,
            batch: 500,
            pause_ms: 20,
            sessions_retention_hours: hours(PruneJob::Sessions),
            one_time_tokens_retention_hours: hours(PruneJob::OneTimeTokens),
            recovery_codes_retention_hours: hours(PruneJob::RecoveryCodes),
            delivered_mail_retention_hours: hours(PruneJob::DeliveredMail),
            dead_mail_retention_hours: hours(PruneJob::DeadMail),
        }
    }
}

/// The kernel's settings and the two intervals `serve` runs the jobs at.
#[derive(Debug, Clone)]
pub struct LifecycleSetup {
    pub settings: LifecycleSettings,
    pub purge_every: Duration,
    pub prune_every: Duration,
}

pub(super) fn validate(c: &LifecycleConfig) -> Result<LifecycleSetup, ConfigError> {
    if !(1..=MAX_PURGE_INTERVAL_SECS).contains(&c.purge_interval_secs) {
        return refuse(format!(
            "lifecycle.purge_interval_secs: 1 to {MAX_PURGE_INTERVAL_SECS}, not {}; expired \
             records and secrets must be physically gone within a minute",
            c.purge_interval_secs
        ));
    }
    if !(10..=86_400).contains(&c.prune_interval_secs) {
        return refuse("lifecycle.prune_interval_secs: 10 to 86400");
    }
    if !(10..=10_000).contains(&c.batch) {
        return refuse("lifecycle.batch: 10 to 10000 rows per transaction");
    }
    if c.pause_ms > 1_000 {
        return refuse("lifecycle.pause_ms: at most 1000 between batches");
    }
    let jobs = [
        (PruneJob::Sessions, c.sessions_retention_hours, "sessions"),
        (
            PruneJob::OneTimeTokens,
            c.one_time_tokens_retention_hours,
            "one_time_tokens",
        ),
        (
            PruneJob::RecoveryCodes,
            c.recovery_codes_retention_hours,
            "recovery_codes",
        ),
        (
            PruneJob::DeliveredMail,
            c.delivered_mail_retention_hours,
            "delivered_mail",
        ),
        (PruneJob::DeadMail, c.dead_mail_retention_hours, "dead_mail"),
    ];
    let mut retention = std::collections::HashMap::new();
    for (job, h, name) in jobs {
        if h > MAX_RETENTION_HOURS {
            return refuse(format!(
                "lifecycle.{name}_retention_hours: at most {MAX_RETENTION_HOURS} (ten years)"
            ));
        }
        retention.insert(
            job,
            time::Duration::hours(i64::try_from(h).unwrap_or(i64::MAX)),
        );
    }
    let purge_every = Duration::from_secs(c.purge_interval_secs);
    Ok(LifecycleSetup {
        settings: LifecycleSettings {
            batch: c.batch,
            pause: Duration::from_millis(c.pause_ms),
            retention,
            // Renewed every purge interval (and between organisations during a long purge); two
            // missed renewals hand the work over.
            lease: time::Duration::seconds(i64::try_from(c.purge_interval_secs * 2).unwrap_or(30)),
        },
        purge_every,
        prune_every: Duration::from_secs(c.prune_interval_secs),
    })
}

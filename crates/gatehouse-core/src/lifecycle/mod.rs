//! The data lifecycle (G3): expired records and secrets purged from storage in bounded batches,
//! spent rows pruned after their retention, and the lease that lets one instance at a time do
//! it when several run over one database.
//!
//! Expiry itself is enforced on every read (records and secrets are invisible from their
//! `expires_at` on, by the injected clock); this module only makes the rows physically go.

mod prune;
mod purge;

use std::collections::HashMap;

use time::Duration;

use crate::error::Error;
use crate::kernel::{Kernel, service_handle};
use crate::store::PruneJob;

pub use prune::PruneReport;

/// The jobs pruned at every purge tick (sessions: physically gone within a minute of expiry at
/// the default retention of zero); the others run every prune interval.
pub const EVERY_PURGE: [PruneJob; 1] = [PruneJob::Sessions];
/// The jobs pruned every prune interval.
pub const EVERY_PRUNE: [PruneJob; 5] = [
    PruneJob::OneTimeTokens,
    PruneJob::RecoveryCodes,
    PruneJob::DeliveredMail,
    PruneJob::DeadMail,
    PruneJob::OAuthStates,
];
pub use purge::PurgeReport;

/// The lease both jobs run under.
pub const LEASE: &str = "lifecycle";

/// How the lifecycle jobs work (start-up only; validated by the configuration loader).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleSettings {
    /// Rows removed per transaction (and per audit event).
    pub batch: u32,
    /// A rest after each batch, so a large purge leaves the store and the CPU to requests in
    /// between (measured in docs/BENCHMARKS.md: request latency holds, the purge still removes
    /// tens of thousands of rows a second).
    pub pause: std::time::Duration,
    /// How long each kind of spent row is kept after it expired, was used, revoked, delivered or
    /// given up on.
    pub retention: HashMap<PruneJob, Duration>,
    /// How long a lease lasts unless renewed (twice the purge interval): an instance that dies
    /// holding it is replaced after this, plus at most one interval.
    pub lease: Duration,
}

impl Default for LifecycleSettings {
    fn default() -> Self {
        Self {
            batch: 500,
            pause: std::time::Duration::from_millis(20),
            retention: PruneJob::ALL
                .into_iter()
                .map(|j| (j, default_retention(j)))
                .collect(),
            lease: Duration::seconds(20),
        }
    }
}

/// The retention each kind of row gets unless configured.
#[must_use]
pub fn default_retention(job: PruneJob) -> Duration {
    match job {
        // An expired or revoked session is no device of anyone's: with its IP and agent it goes
        // at the next purge (G3: within a minute), unless an operator keeps them longer.
        PruneJob::Sessions => Duration::ZERO,
        PruneJob::DeliveredMail => Duration::days(7),
        PruneJob::OneTimeTokens => Duration::days(1),
        // A used code is worthless; only "codes left" is ever shown.
        PruneJob::RecoveryCodes => Duration::ZERO,
        PruneJob::DeadMail => Duration::days(30),
        // A state is worthless once spent or ten minutes old; the day is for investigating.
        PruneJob::OAuthStates => Duration::days(1),
    }
}

/// The lifecycle jobs (`Kernel::lifecycle`).
#[derive(Debug, Clone, Copy)]
pub struct Lifecycle<'k>(pub(crate) &'k Kernel);
service_handle!(Lifecycle);

impl Lifecycle<'_> {
    /// Takes or renews the lifecycle lease for `holder` (an instance id); `false` while another
    /// live instance holds it. A caller that gets `true` runs the jobs until its next renewal,
    /// which must come well within `LifecycleSettings::lease`.
    pub async fn hold_lease(&self, holder: &str) -> Result<bool, Error> {
        let now = self.clock().now();
        let until = now + self.lifecycle_settings().lease;
        Ok(self
            .store()
            .acquire_lease(LEASE, holder, now, until)
            .await?)
    }

    /// The purge and pruning as a leased job ticking every `every` (`crate::jobs`), under the
    /// lease [`Lifecycle::hold_lease`] renews during a long purge.
    #[must_use]
    pub fn leased_job(&self, every: std::time::Duration) -> crate::jobs::LeasedJob {
        crate::jobs::LeasedJob::new(LEASE, every).with_lease(self.lifecycle_settings().lease)
    }

    /// Gives the lease up (at shutdown), so another instance takes over at its next tick.
    pub async fn release_lease(&self, holder: &str) -> Result<(), Error> {
        Ok(self.store().release_lease(LEASE, holder).await?)
    }
}

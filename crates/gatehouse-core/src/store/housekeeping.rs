//! Lifecycle bookkeeping (G3): the lease that lets one instance at a time do the purge and the
//! pruning, the search for organisations holding expired data, and the pruning of spent rows.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::error::StoreError;
use crate::ids::OrgId;

/// A kind of spent row the pruning removes once its retention has passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PruneJob {
    /// Sessions expired or revoked (they hold IP addresses and user agents).
    Sessions,
    /// One-time tokens used or expired.
    OneTimeTokens,
    /// Recovery codes used.
    RecoveryCodes,
    /// Mail delivered.
    DeliveredMail,
    /// Mail given up on (dead).
    DeadMail,
    /// OAuth authorization states spent or expired.
    OAuthStates,
}

impl PruneJob {
    pub const ALL: [Self; 6] = [
        Self::Sessions,
        Self::OneTimeTokens,
        Self::RecoveryCodes,
        Self::DeliveredMail,
        Self::DeadMail,
        Self::OAuthStates,
    ];

    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Sessions => "sessions",
            Self::OneTimeTokens => "one_time_tokens",
            Self::RecoveryCodes => "recovery_codes",
            Self::DeliveredMail => "delivered_mail",
            Self::DeadMail => "dead_mail",
            Self::OAuthStates => "oauth_states",
        }
    }
}

/// Bookkeeping outside any organisation, each call a transaction of its own.
#[async_trait]
pub trait Housekeeping: Send + Sync {
    /// Takes the lease `name` for `holder` until `until`, or renews it, when it is free (absent or
    /// expired at `now`) or already `holder`'s; returns whether `holder` holds it now. One
    /// statement decides, so two instances asking at once cannot both win.
    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Who holds the lease `name` at `now` (an unexpired lease), if anyone: readiness reports
    /// the holder on the instances that do not hold it.
    async fn lease_holder(
        &self,
        name: &str,
        now: OffsetDateTime,
    ) -> Result<Option<String>, StoreError>;

    /// Gives the lease up if `holder` holds it (at shutdown, so another instance need not wait
    /// for it to expire).
    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError>;

    /// Makes erased rows leave the database files: SQLite (which overwrites deleted content,
    /// `secure_delete`) still holds the pages as they were in its write-ahead log, so the log
    /// is checkpointed and truncated; returns whether it could be (a long reader can hold it).
    /// PostgreSQL keeps dead row versions, unreadable through SQL, until vacuum: nothing to do.
    async fn settle_erasure(&self) -> Result<bool, StoreError>;

    /// Up to `limit` organisations, in id order after `after`, holding a record or a secret that
    /// expired at or before `now`, or a deleted secret. On PostgreSQL each organisation is asked
    /// inside its own scope, so row-level security still holds.
    async fn orgs_with_expired(
        &self,
        now: OffsetDateTime,
        after: Option<OrgId>,
        limit: u32,
    ) -> Result<Vec<OrgId>, StoreError>;
}

/// Pruning inside a platform transaction (which appends the operators' audit event with it).
#[async_trait]
pub trait PruneStore: Send {
    /// Deletes up to `limit` rows of `job` whose retention ended: rows that expired, were used,
    /// revoked, delivered or given up on at or before `cutoff`. Returns how many went.
    async fn prune(
        &mut self,
        job: PruneJob,
        cutoff: OffsetDateTime,
        limit: u32,
    ) -> Result<u64, StoreError>;
}

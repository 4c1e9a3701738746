//! The scope's audit chain.

use crate::error::StoreError;
use async_trait::async_trait;

use crate::audit::{AuditFilter, AuditRecord, ChainHead, CheckpointRecord};

#[async_trait]
/// The scope's hash chain, its checkpoints and its search.
pub trait AuditStore: Send {
    /// The scope's chain head as committed, without locking it.
    async fn peek_audit_head(&mut self) -> Result<Option<ChainHead>, StoreError>;

    /// Locks the scope's audit chain for this transaction and returns its head.
    async fn audit_head(&mut self) -> Result<Option<ChainHead>, StoreError>;

    /// Appends to the scope's chain and moves its head.
    async fn append_audit(&mut self, event: &AuditRecord) -> Result<(), StoreError>;

    /// Appends `events` (in order, each continuing the one before) and moves the head once: a
    /// few statements for the whole batch instead of a few per event.
    async fn append_audit_batch(&mut self, events: &[AuditRecord]) -> Result<(), StoreError>;

    /// The scope's events after `after_seq`, in order, at most `limit`.
    async fn audit_events(
        &mut self,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError>;

    /// The scope's chain checkpoints, by seq.
    async fn audit_checkpoints(&mut self) -> Result<Vec<CheckpointRecord>, StoreError>;

    /// The scope's newest `n` checkpoints, by seq (oldest of them first): a bounded read for a
    /// spot check, which needs the newest and the one before it (whose signature it chains to).
    async fn recent_audit_checkpoints(
        &mut self,
        n: u32,
    ) -> Result<Vec<CheckpointRecord>, StoreError>;

    async fn insert_audit_checkpoint(&mut self, c: &CheckpointRecord) -> Result<(), StoreError>;

    /// The scope's events matching `filter` with seq below `before` (all when `None`), newest
    /// first, at most `limit`.
    async fn query_audit(
        &mut self,
        filter: &AuditFilter,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError>;
}

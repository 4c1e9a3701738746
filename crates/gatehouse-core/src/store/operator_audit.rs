//! The operators' audit chain (organisation `None`).

use crate::error::StoreError;
use async_trait::async_trait;

use crate::audit::{AuditFilter, AuditRecord, ChainHead, CheckpointRecord};

#[async_trait]
/// The operators' hash chain, its checkpoints and its search.
pub trait OperatorAuditStore: Send {
    /// The operators' chain head as committed, without locking it.
    async fn peek_operator_audit_head(&mut self) -> Result<Option<ChainHead>, StoreError>;

    /// Locks the operators' audit chain for this transaction and returns its head.
    async fn operator_audit_head(&mut self) -> Result<Option<ChainHead>, StoreError>;

    /// Appends to the operators' chain and moves its head.
    async fn append_operator_audit(&mut self, event: &AuditRecord) -> Result<(), StoreError>;

    /// Operators' events after `after_seq`, in order, at most `limit`.
    async fn operator_audit_events(
        &mut self,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError>;

    /// The operators' chain checkpoints, by seq.
    async fn operator_checkpoints(&mut self) -> Result<Vec<CheckpointRecord>, StoreError>;

    /// The operators' newest `n` checkpoints, by seq (oldest of them first).
    async fn recent_operator_checkpoints(
        &mut self,
        n: u32,
    ) -> Result<Vec<CheckpointRecord>, StoreError>;

    async fn insert_operator_checkpoint(&mut self, c: &CheckpointRecord) -> Result<(), StoreError>;

    /// The operators' events matching `filter` with seq below `before`, newest first.
    async fn query_operator_audit(
        &mut self,
        filter: &AuditFilter,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError>;
}

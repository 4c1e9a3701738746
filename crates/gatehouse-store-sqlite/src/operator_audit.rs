//! The operators' audit chain in SQLite. Its SQL is the tenant chain's, parameterised by the
//! chain (`None` here): the shared helpers live in `audit.rs`.

use async_trait::async_trait;
use gatehouse_core::StoreError;
use gatehouse_core::audit::{AuditFilter, AuditRecord, ChainHead, CheckpointRecord};
use gatehouse_core::store::OperatorAuditStore;

use crate::audit::{append, checkpoints, events, head, insert_checkpoint, peek_head, query};
use crate::tx::SqliteTx;

#[async_trait]
impl OperatorAuditStore for SqliteTx {
    async fn peek_operator_audit_head(&mut self) -> Result<Option<ChainHead>, StoreError> {
        peek_head(&mut self.tx, None).await
    }

    async fn operator_audit_head(&mut self) -> Result<Option<ChainHead>, StoreError> {
        head(&mut self.tx, None).await
    }

    async fn append_operator_audit(&mut self, event: &AuditRecord) -> Result<(), StoreError> {
        append(&mut self.tx, event).await
    }

    async fn operator_audit_events(
        &mut self,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        events(&mut self.tx, None, after_seq, limit).await
    }

    async fn operator_checkpoints(&mut self) -> Result<Vec<CheckpointRecord>, StoreError> {
        checkpoints(&mut self.tx, None, None).await
    }

    async fn recent_operator_checkpoints(
        &mut self,
        n: u32,
    ) -> Result<Vec<CheckpointRecord>, StoreError> {
        checkpoints(&mut self.tx, None, Some(n)).await
    }

    async fn insert_operator_checkpoint(&mut self, c: &CheckpointRecord) -> Result<(), StoreError> {
        if c.org_id.is_some() {
            return Err(StoreError::Backend(
                "refused: an organisation checkpoint on the operators' chain".into(),
            ));
        }
        insert_checkpoint(&mut self.tx, c).await
    }

    async fn query_operator_audit(
        &mut self,
        filter: &AuditFilter,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        query(&mut self.tx, None, filter, before, limit).await
    }
}

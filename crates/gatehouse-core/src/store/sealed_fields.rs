//! Sealed fields: one envelope per (kind, record, field) in the scope.

use crate::error::StoreError;
use async_trait::async_trait;
use time::OffsetDateTime;

use crate::ids::OrgId;

/// A sealed field: the envelope of one value of one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedRecord {
    pub org_id: OrgId,
    pub kind: String,
    pub record_id: String,
    pub field: String,
    pub dek_version: u32,
    pub envelope: Vec<u8>,
    pub updated_at: OffsetDateTime,
}

#[async_trait]
/// The scope's sealed values.
pub trait SealedFieldStore: Send {
    /// Inserts the sealed value unless one exists at (kind, record_id, field); returns whether it
    /// was inserted.
    async fn insert_sealed_if_absent(&mut self, sealed: &SealedRecord) -> Result<bool, StoreError>;

    /// Inserts or replaces the sealed value at (kind, record_id, field).
    async fn put_sealed(&mut self, sealed: &SealedRecord) -> Result<(), StoreError>;

    async fn sealed(
        &mut self,
        kind: &str,
        record_id: &str,
        field: &str,
    ) -> Result<Option<SealedRecord>, StoreError>;

    /// The sealed values of `kind` and `field` at any of `record_ids` (in no particular order;
    /// absent ones are left out): one read for a page of records (an export).
    async fn sealed_of(
        &mut self,
        kind: &str,
        record_ids: &[String],
        field: &str,
    ) -> Result<Vec<SealedRecord>, StoreError>;

    /// Sealed values on a data-key version below `version`, at most `limit`.
    async fn sealed_before_version(
        &mut self,
        version: u32,
        limit: u32,
    ) -> Result<Vec<SealedRecord>, StoreError>;

    /// Replaces `old` with a new envelope only if it is unchanged since read; returns whether it
    /// was replaced.
    async fn replace_sealed(
        &mut self,
        old: &SealedRecord,
        envelope: &[u8],
        dek_version: u32,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Deletes the sealed value at (kind, record_id, field); returns whether there was one.
    async fn delete_sealed(
        &mut self,
        kind: &str,
        record_id: &str,
        field: &str,
    ) -> Result<bool, StoreError>;

    /// Deletes every sealed value of `kind` at any of `record_ids` (all their fields); returns
    /// how many went.
    async fn delete_sealed_of(
        &mut self,
        kind: &str,
        record_ids: &[String],
    ) -> Result<u64, StoreError>;

    /// (data-key version, number of sealed values on it), by version.
    async fn sealed_counts(&mut self) -> Result<Vec<(u32, u64)>, StoreError>;
}

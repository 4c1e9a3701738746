//! Organisations as the platform sees them: created at sign-up, listed for key rotation, marked when their keys are shredded.

use crate::error::StoreError;
use async_trait::async_trait;
use time::OffsetDateTime;

use crate::ids::OrgId;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrganizationRecord {
    pub id: OrgId,
    pub name: String,
    pub created_at: OffsetDateTime,
    /// Set when the organisation's keys were destroyed: its sealed data can never be read again.
    pub keys_shredded_at: Option<OffsetDateTime>,
}

#[async_trait]
/// Organisations, a platform table (the tenant side reads its own row through `OrgKeyStore::organization`).
pub trait OrganizationStore: Send {
    async fn insert_organization(&mut self, org: &OrganizationRecord) -> Result<(), StoreError>;

    async fn organization_by_id(
        &mut self,
        id: OrgId,
    ) -> Result<Option<OrganizationRecord>, StoreError>;

    /// Organisation ids in id order, after `after`, at most `limit`.
    async fn organization_ids(
        &mut self,
        after: Option<OrgId>,
        limit: u32,
    ) -> Result<Vec<OrgId>, StoreError>;

    /// How many organisations there are.
    async fn count_organizations(&mut self) -> Result<u64, StoreError>;

    /// Organisation ids in id order from position `position` (0 is the first), at most `limit`:
    /// how a check that visits a few organisations per run rotates through all of them.
    async fn organization_ids_from(
        &mut self,
        position: u64,
        limit: u32,
    ) -> Result<Vec<OrgId>, StoreError>;

    async fn mark_keys_shredded(
        &mut self,
        org: OrgId,
        at: OffsetDateTime,
    ) -> Result<(), StoreError>;
}

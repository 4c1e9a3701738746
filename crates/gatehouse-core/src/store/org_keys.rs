//! The scope's data key versions, its transit floor, and its own organisation row.

use crate::error::StoreError;
use async_trait::async_trait;
use time::OffsetDateTime;

use super::{KeyState, OrganizationRecord};
use crate::ids::OrgId;

/// One version of an organisation's data key, wrapped under a master-key version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgKeyRecord {
    pub org_id: OrgId,
    pub version: u32,
    /// AES-256-GCM envelope of the key under the KEK; empty once retired.
    pub wrapped: Vec<u8>,
    pub kek_version: u32,
    pub state: KeyState,
    /// Encryptions made with this version so far (the nonce budget).
    pub encryptions: u64,
    pub created_at: OffsetDateTime,
}

#[async_trait]
/// The scope's data keys (wrapped under the master key).
pub trait OrgKeyStore: Send {
    /// The scope's own organisation row.
    async fn organization(&mut self) -> Result<Option<OrganizationRecord>, StoreError>;

    /// Every version of the scope's data key, oldest first.
    async fn org_keys(&mut self) -> Result<Vec<OrgKeyRecord>, StoreError>;

    async fn insert_org_key(&mut self, key: &OrgKeyRecord) -> Result<(), StoreError>;

    async fn update_org_key(
        &mut self,
        version: u32,
        wrapped: &[u8],
        kek_version: u32,
        state: KeyState,
    ) -> Result<(), StoreError>;

    /// Like `org_keys`, and locks the rows until the transaction ends (PostgreSQL `FOR UPDATE`;
    /// SQLite's single writer already excludes everyone else).
    async fn lock_org_keys(&mut self) -> Result<Vec<OrgKeyRecord>, StoreError>;

    /// Adds one to the version's encryption count and returns the new count. Fails when the
    /// version is no longer active, so nothing is ever sealed under a key being retired.
    async fn count_encryption(&mut self, version: u32) -> Result<u64, StoreError>;

    /// Destroys every version of the scope's data key; returns how many there were.
    async fn delete_org_keys(&mut self) -> Result<u64, StoreError>;

    /// Deletes the scope's organisation and every row of it in every table, its audit chain
    /// included (erasure, G2); returns the ids of the sessions that were in it, for revocation.
    async fn erase_organization(&mut self) -> Result<Vec<uuid::Uuid>, StoreError>;

    /// The lowest data-key version transit ciphertexts may use (`None`: transit never used).
    async fn transit_floor(&mut self) -> Result<Option<u32>, StoreError>;

    /// Raises it to `version` (inserting it the first time); never lowers it, even when two
    /// raises race.
    async fn set_transit_floor(&mut self, version: u32) -> Result<(), StoreError>;

    /// Whether the organisation requires its members to have a second factor (no row: no).
    async fn requires_second_factor(&mut self) -> Result<bool, StoreError>;

    /// Sets that requirement; returns whether it changed.
    async fn set_requires_second_factor(
        &mut self,
        required: bool,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError>;
}

//! The shared-secrets vault's rows: metadata and versions (values are sealed fields).

use crate::error::StoreError;
use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::ids::OrgId;
use crate::page::{Page, PageRequest};

/// A shared secret's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRecord {
    pub org_id: OrgId,
    pub id: Uuid,
    /// Unique among the organisation's secrets that are not deleted.
    pub name: String,
    pub description: Option<String>,
    /// The newest version's number (versions count from 1).
    pub current_version: u32,
    /// The audit actor id of who created it.
    pub created_by: String,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub expires_at: Option<OffsetDateTime>,
    pub deleted_at: Option<OffsetDateTime>,
}

/// One version of a secret's value (metadata only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretVersionRecord {
    pub org_id: OrgId,
    pub secret_id: Uuid,
    pub version: u32,
    pub created_by: String,
    pub created_at: OffsetDateTime,
}

#[async_trait]
/// The scope's secrets.
pub trait SecretStore: Send {
    /// Fails with `StoreError::Duplicate` when a secret that is not deleted has the name. Also
    /// inserts version `current_version`'s metadata (creator and time as the secret's).
    async fn insert_secret(&mut self, s: &SecretRecord) -> Result<(), StoreError>;

    /// The secret, deleted or not.
    async fn secret(&mut self, id: uuid::Uuid) -> Result<Option<SecretRecord>, StoreError>;

    /// Secrets that are neither deleted nor expired at `now`, newest first, by (created_at, id).
    async fn list_secrets(
        &mut self,
        now: OffsetDateTime,
        page: PageRequest,
    ) -> Result<Page<SecretRecord>, StoreError>;

    /// Adds version `v.version` if it is the next one (current + 1) and the secret is not
    /// deleted: moves `current_version` and `updated_at`. Returns whether it did.
    async fn add_secret_version(&mut self, v: &SecretVersionRecord) -> Result<bool, StoreError>;

    /// Every version's metadata, oldest first.
    async fn secret_versions(
        &mut self,
        secret: uuid::Uuid,
    ) -> Result<Vec<SecretVersionRecord>, StoreError>;

    /// Deletes, with their versions' metadata, up to `limit` secrets that expired at or before
    /// `now` or were deleted; returns their ids. Their sealed values are the caller's to delete.
    async fn purge_secrets(
        &mut self,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<Uuid>, StoreError>;

    /// Marks the secret deleted if it is not; returns whether this call did.
    async fn delete_secret(
        &mut self,
        id: uuid::Uuid,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError>;
}

//! Organisations' API keys, and the platform index from a key's digest to its organisation.

use crate::error::StoreError;
use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::ids::OrgId;
use crate::page::{Page, PageRequest};

/// An API key as stored: never the key, only its SHA-256 and what listings show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub id: Uuid,
    pub org_id: OrgId,
    pub name: String,
    /// `gk_{env}_` and the first four random characters.
    pub prefix: String,
    pub last4: String,
    pub digest: Vec<u8>,
    pub permissions: Vec<String>,
    pub namespace: Option<String>,
    /// Requests per minute, overriding the organisation's plan.
    pub rate_limit: Option<u32>,
    pub created_by: String,
    pub created_at: OffsetDateTime,
    pub expires_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
    pub last_used_at: Option<OffsetDateTime>,
}

impl ApiKeyRecord {
    #[must_use]
    pub fn is_usable(&self, now: OffsetDateTime) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| now < e)
    }
}

#[async_trait]
/// The platform index: a digest names its organisation and key, and holds no secret.
pub trait ApiKeyIndexStore: Send {
    /// Which organisation and key a key digest belongs to (a platform index holding no secret).
    async fn api_key_owner(
        &mut self,
        digest: &[u8],
    ) -> Result<Option<(OrgId, uuid::Uuid)>, StoreError>;
}

#[async_trait]
/// An organisation's API keys.
pub trait ApiKeyStore: Send {
    /// Inserts the key and its digest's entry in the platform index.
    async fn insert_api_key(&mut self, k: &ApiKeyRecord) -> Result<(), StoreError>;

    async fn api_key(&mut self, id: uuid::Uuid) -> Result<Option<ApiKeyRecord>, StoreError>;

    /// Newest first, by (created_at, id).
    async fn list_api_keys(&mut self, page: PageRequest) -> Result<Page<ApiKeyRecord>, StoreError>;

    /// Sets the expiry (rotation's grace period); returns whether the key exists.
    async fn set_api_key_expiry(
        &mut self,
        id: uuid::Uuid,
        expires_at: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Revokes the key if it is not; returns whether this call did.
    async fn revoke_api_key(
        &mut self,
        id: uuid::Uuid,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError>;
}

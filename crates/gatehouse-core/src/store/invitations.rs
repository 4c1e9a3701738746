//! Invitations to join the scope's organisation, by token digest.

use crate::error::StoreError;
use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::ids::{OrgId, UserId};
use crate::page::{Page, PageRequest};

/// An invitation to join an organisation, accepted with a one-time token (stored as its SHA-256).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvitationRecord {
    pub id: Uuid,
    pub org_id: OrgId,
    pub email: String,
    pub role: String,
    pub token_hash: Vec<u8>,
    pub invited_by: UserId,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub accepted_at: Option<OffsetDateTime>,
}

#[async_trait]
/// The scope's invitations.
pub trait InvitationStore: Send {
    async fn insert_invitation(&mut self, i: &InvitationRecord) -> Result<(), StoreError>;

    async fn invitation_by_token(
        &mut self,
        token_hash: &[u8],
    ) -> Result<Option<InvitationRecord>, StoreError>;

    /// Marks it accepted if it was not; returns whether this call did.
    async fn accept_invitation(
        &mut self,
        id: uuid::Uuid,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Invitations neither accepted nor expired at `now`, oldest first.
    async fn pending_invitations(
        &mut self,
        now: OffsetDateTime,
        page: PageRequest,
    ) -> Result<Page<InvitationRecord>, StoreError>;

    /// Deletes a pending invitation (revoked); returns whether there was one.
    async fn delete_invitation(&mut self, id: Uuid) -> Result<bool, StoreError>;

    /// Deletes every invitation to `email` in the scope, accepted or not (erasure); returns how
    /// many.
    async fn delete_invitations_to(&mut self, email: &str) -> Result<u64, StoreError>;
}

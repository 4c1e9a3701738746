//! Share links (F1): a record opened by whoever holds the link's token, and the organisation's
//! opt-out list (F2), both tenant rows.

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::StoreError;
use crate::ids::OrgId;
use crate::page::{Page, PageRequest};

/// A share link as stored: the SHA-256 of its token, never the token.
#[derive(Clone, PartialEq, Eq)]
pub struct ShareLinkRow {
    pub org_id: OrgId,
    pub id: Uuid,
    pub record_id: Uuid,
    pub digest: Vec<u8>,
    /// Argon2id PHC string, when the link asks for a password.
    pub password_hash: Option<String>,
    /// Moves on every password change: viewer passes carry the generation they were issued
    /// under and end when it moves.
    pub generation: u32,
    pub expires_at: OffsetDateTime,
    pub max_views: Option<u32>,
    /// Opens so far.
    pub views: u32,
    /// `user:{uuid}` or `key:{uuid}`.
    pub created_by: String,
    pub created_at: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
}

impl std::fmt::Debug for ShareLinkRow {
    // The password hash is an offline-guessing target: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShareLinkRow")
            .field("org_id", &self.org_id)
            .field("id", &self.id)
            .field("record_id", &self.record_id)
            .field("generation", &self.generation)
            .field("expires_at", &self.expires_at)
            .field("revoked_at", &self.revoked_at)
            .finish_non_exhaustive()
    }
}

impl ShareLinkRow {
    /// Whether the link opens at `now`: not revoked, not expired (its `expires_at` is the first
    /// instant it is refused).
    #[must_use]
    pub fn live_at(&self, now: OffsetDateTime) -> bool {
        self.revoked_at.is_none() && now < self.expires_at
    }
}

#[async_trait]
/// The platform's way in: a presented token's digest names its organisation and link.
pub trait ShareLinkIndexStore: Send {
    async fn share_link_owner(
        &mut self,
        digest: &[u8],
    ) -> Result<Option<(OrgId, Uuid)>, StoreError>;
}

#[async_trait]
/// The scope's share links.
pub trait ShareLinkStore: Send {
    async fn insert_share_link(&mut self, l: &ShareLinkRow) -> Result<(), StoreError>;

    async fn share_link(&mut self, id: Uuid) -> Result<Option<ShareLinkRow>, StoreError>;

    /// A record's links, newest first.
    async fn share_links_of(
        &mut self,
        record_id: Uuid,
        page: PageRequest,
    ) -> Result<Page<ShareLinkRow>, StoreError>;

    /// Counts one open if the link is live at `now` and below its view bound, in one
    /// statement (concurrent opens cannot both take the last view); returns whether it did.
    async fn count_share_view(&mut self, id: Uuid, now: OffsetDateTime)
    -> Result<bool, StoreError>;

    /// Adds opens counted in memory (links without a password or view bound) since the last
    /// flush.
    async fn add_share_views(&mut self, id: Uuid, views: u32) -> Result<(), StoreError>;

    /// Sets or clears the password and moves the generation; returns whether a live link was
    /// changed.
    async fn set_share_password(
        &mut self,
        id: Uuid,
        password_hash: Option<&str>,
    ) -> Result<bool, StoreError>;

    /// Revokes the link if it is not; returns whether this call did.
    async fn revoke_share_link(&mut self, id: Uuid, at: OffsetDateTime)
    -> Result<bool, StoreError>;

    /// Adds a recipient (by address digest) to the organisation's opt-out list for `list`;
    /// returns whether it was not there yet.
    async fn add_opt_out(
        &mut self,
        recipient: &[u8],
        list: &str,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Whether the recipient opted out of `list`.
    async fn opted_out(&mut self, recipient: &[u8], list: &str) -> Result<bool, StoreError>;
}

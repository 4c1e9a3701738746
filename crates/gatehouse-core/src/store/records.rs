//! The product's records (C3): typed, owned, at an access level, inside one organisation.

use crate::error::StoreError;
use crate::ids::OrgId;
use crate::page::{Page, PageRequest};
use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

/// Who may read a record besides its owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// The owner and the record's allowed list.
    Private,
    /// Every member holding the type's read permission.
    Organization,
    /// Anyone, anonymous callers of the check API included.
    Public,
}

impl Level {
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Private => "private",
            Self::Organization => "organization",
            Self::Public => "public",
        }
    }

    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "private" => Some(Self::Private),
            "organization" => Some(Self::Organization),
            "public" => Some(Self::Public),
            _ => None,
        }
    }
}

/// A record's row. Its content, when it has one, is a sealed field (kind `record`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRow {
    pub org_id: OrgId,
    pub id: Uuid,
    /// A declared record type.
    pub kind: String,
    /// The product's own id, unique per organisation and type.
    pub external_id: String,
    pub namespace: Option<String>,
    /// `user:{uuid}` or `key:{uuid}`.
    pub owner: String,
    pub level: Level,
    /// `user:{uuid}` / `key:{uuid}` entries who may read a private record.
    pub allowed: Vec<String>,
    pub tags: Vec<String>,
    pub has_content: bool,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub expires_at: Option<OffsetDateTime>,
}

impl RecordRow {
    /// Whether the record has expired at `now` (its `expires_at` is the first instant it is gone).
    #[must_use]
    pub fn expired_at(&self, now: OffsetDateTime) -> bool {
        self.expires_at.is_some_and(|t| t <= now)
    }
}

/// What a listing asks for, and what the caller may see of it (so the page holds only readable
/// records, and a full page means more may follow).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordQuery {
    pub kind: Option<String>,
    pub namespace: Option<String>,
    pub tag: Option<String>,
    pub owner: Option<String>,
    /// The caller as an owner or allowed-list entry (`user:{uuid}` or `key:{uuid}`).
    pub me: String,
    /// The types whose organisation-level records the caller may read.
    pub readable_types: Vec<String>,
    /// When given, records whose `expires_at` is at or before it are left out (G3: an expired
    /// record is gone for every reader from that instant, before any purge).
    pub now: Option<OffsetDateTime>,
    /// Every record matching the filters, whatever its level (an organisation's export, G1):
    /// the visibility fields are then ignored.
    pub everything: bool,
}

#[async_trait]
/// The scope's records.
pub trait RecordStore: Send {
    /// Fails with `StoreError::Duplicate` when the type and external id exist.
    async fn insert_record(&mut self, r: &RecordRow) -> Result<(), StoreError>;

    async fn record(&mut self, id: Uuid) -> Result<Option<RecordRow>, StoreError>;

    /// [`Self::record`], locked until the transaction ends so that two changes cannot undo one
    /// another (PostgreSQL `FOR UPDATE`; SQLite's writers take turns already). Only in a
    /// writing transaction.
    async fn lock_record(&mut self, id: Uuid) -> Result<Option<RecordRow>, StoreError>;

    /// The record of `kind` the product knows as `external_id`.
    async fn record_by_external(
        &mut self,
        kind: &str,
        external_id: &str,
    ) -> Result<Option<RecordRow>, StoreError>;

    /// Writes every mutable field; returns whether the record exists.
    async fn update_record(&mut self, r: &RecordRow) -> Result<bool, StoreError>;

    /// Returns whether the record existed.
    async fn delete_record(&mut self, id: Uuid) -> Result<bool, StoreError>;

    /// Deletes the record only if it has expired at `now` (checked by the statement itself, so a
    /// concurrent extension wins); returns whether it did.
    async fn delete_expired_record(
        &mut self,
        id: Uuid,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Deletes up to `limit` records that expired at or before `now` (G3's purge); returns their
    /// ids. Their sealed content is the caller's to delete.
    async fn purge_expired_records(
        &mut self,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<Uuid>, StoreError>;

    /// Readable records matching the query, newest first.
    async fn list_records(
        &mut self,
        q: &RecordQuery,
        page: PageRequest,
    ) -> Result<Page<RecordRow>, StoreError>;
}

/// `,a,b,` for a list of entries (none containing a comma), so a `,x,` search matches whole
/// entries only.
#[must_use]
pub fn joined(entries: &[String]) -> String {
    if entries.is_empty() {
        String::new()
    } else {
        format!(",{},", entries.join(","))
    }
}

/// The entries of a [`joined`] list.
#[must_use]
pub fn split_joined(text: &str) -> Vec<String> {
    text.split(',')
        .filter(|e| !e.is_empty())
        .map(str::to_owned)
        .collect()
}

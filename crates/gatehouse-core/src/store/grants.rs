//! Grants between organisations (C4): one organisation lets another read (or read and change)
//! its records that are not private, optionally only some types and namespaces, until a time.

use crate::error::StoreError;
use crate::ids::OrgId;
use crate::page::{Page, PageRequest};
use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{RecordQuery, RecordRow};

/// What a grant lets the grantee do with the records it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantAccess {
    Read,
    ReadWrite,
}

impl GrantAccess {
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::ReadWrite => "read_write",
        }
    }

    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "read" => Some(Self::Read),
            "read_write" => Some(Self::ReadWrite),
            _ => None,
        }
    }
}

/// A grant's row, owned by the granting organisation (`org_id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRow {
    pub org_id: OrgId,
    pub id: Uuid,
    pub grantee: OrgId,
    /// Record types covered; empty covers every type.
    pub types: Vec<String>,
    /// Namespaces covered; empty covers every record, one without a namespace included.
    pub namespaces: Vec<String>,
    pub access: GrantAccess,
    /// The actor that made it (`user:{uuid}` or `key:{uuid}`).
    pub created_by: String,
    pub created_at: OffsetDateTime,
    pub expires_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
}

impl GrantRow {
    /// Neither revoked nor expired at `now` (an expiry is the first second it no longer works).
    #[must_use]
    pub fn live_at(&self, now: OffsetDateTime) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|t| t > now)
    }

    /// Whether the grant reaches `record` (whatever the time): the granter's, not private, of a
    /// covered type and namespace.
    #[must_use]
    pub fn covers(&self, record: &RecordRow) -> bool {
        record.org_id == self.org_id
            && record.level != super::Level::Private
            && (self.types.is_empty() || self.types.contains(&record.kind))
            && (self.namespaces.is_empty()
                || record
                    .namespace
                    .as_ref()
                    .is_some_and(|n| self.namespaces.contains(n)))
    }
}

/// Another organisation's record that a live grant to the scope covers, and that grant (a
/// `read_write` one when several cover it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantedRecord {
    pub record: RecordRow,
    pub grant_id: Uuid,
    pub access: GrantAccess,
    /// That grant's expiry.
    pub expires_at: Option<OffsetDateTime>,
}

#[async_trait]
/// Grants the scope made (it manages them) and received (it reads them and what they cover).
pub trait GrantStore: Send {
    async fn insert_grant(&mut self, g: &GrantRow) -> Result<(), StoreError>;

    /// A grant the scope made.
    async fn grant(&mut self, id: Uuid) -> Result<Option<GrantRow>, StoreError>;

    /// [`Self::grant`], held until the transaction ends so that a revocation waits for a change
    /// made through the grant (PostgreSQL `FOR SHARE`; SQLite's writers take turns already).
    /// Only in a writing transaction.
    async fn lock_grant(&mut self, id: Uuid) -> Result<Option<GrantRow>, StoreError>;

    /// Grants the scope made, newest first, revoked and expired ones included.
    async fn grants_given(&mut self, page: PageRequest) -> Result<Page<GrantRow>, StoreError>;

    /// Grants made to the scope, newest first, revoked and expired ones included.
    async fn grants_received(&mut self, page: PageRequest) -> Result<Page<GrantRow>, StoreError>;

    /// Marks a grant the scope made revoked, unless it already is; returns whether it was.
    async fn revoke_grant(&mut self, id: Uuid, at: OffsetDateTime) -> Result<bool, StoreError>;

    /// The record `id` of another organisation, not expired at `now`, where a grant live at
    /// `now` covers it.
    async fn granted_record(
        &mut self,
        id: Uuid,
        now: OffsetDateTime,
    ) -> Result<Option<GrantedRecord>, StoreError>;

    /// `owner`'s record of `kind` known as `external_id`, not expired at `now`, where a grant
    /// live at `now` covers it.
    async fn granted_record_by_external(
        &mut self,
        owner: OrgId,
        kind: &str,
        external_id: &str,
        now: OffsetDateTime,
    ) -> Result<Option<GrantedRecord>, StoreError>;

    /// Other organisations' records not expired at `now` that grants live at `now` cover, of the
    /// types in
    /// `q.readable_types` and matching the query's filters, newest first.
    async fn list_granted_records(
        &mut self,
        q: &RecordQuery,
        now: OffsetDateTime,
        page: PageRequest,
    ) -> Result<Page<GrantedRecord>, StoreError>;
}

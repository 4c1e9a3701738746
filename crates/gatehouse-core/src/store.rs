//! What the domain needs from storage. Backends (SQLite, PostgreSQL) implement these traits with
//! their own SQL; one behaviour suite (`gatehouse-store-tests`) holds them to the same contract.
//!
//! Work happens in transactions. A transaction starts on the platform (users, organisations) and
//! may enter one tenant scope; once scoped it stays scoped, and every tenant-owned row it reads or
//! writes belongs to that organisation. On PostgreSQL the scope is also the row-level-security
//! setting of the transaction, so the database itself refuses other tenants' rows.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::error::StoreError;
use crate::ids::{OrgId, UserId};
use crate::page::{Page, PageRequest};
use crate::scope::TenantScope;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub id: UserId,
    pub email: String,
    pub name: String,
    /// PHC string; never leaves the domain.
    pub password_hash: String,
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrganizationRecord {
    pub id: OrgId,
    pub name: String,
    pub created_at: OffsetDateTime,
}

/// The built-in roles. Custom roles arrive with the identity work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Owner,
    Admin,
    Member,
    Viewer,
}

impl Role {
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Admin => "admin",
            Self::Member => "member",
            Self::Viewer => "viewer",
        }
    }

    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "owner" => Self::Owner,
            "admin" => Self::Admin,
            "member" => Self::Member,
            "viewer" => Self::Viewer,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipRecord {
    pub org_id: OrgId,
    pub user_id: UserId,
    pub role: Role,
    pub created_at: OffsetDateTime,
}

#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// `"sqlite"` or `"postgres"`, for logs and the readiness report.
    fn backend(&self) -> &'static str;

    /// A cheap round trip proving the store answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Starts a transaction on platform data. Dropping it without `commit` rolls back.
    async fn begin(&self) -> Result<Box<dyn PlatformTx>, StoreError>;

    /// Starts a transaction already inside `scope`.
    async fn begin_scoped(&self, scope: &TenantScope) -> Result<Box<dyn TenantTx>, StoreError>;
}

#[async_trait]
pub trait PlatformTx: Send {
    /// Fails with `StoreError::EmailTaken` when the (normalised) email is registered.
    async fn insert_user(&mut self, user: &UserRecord) -> Result<(), StoreError>;
    async fn user_by_email(&mut self, email: &str) -> Result<Option<UserRecord>, StoreError>;
    async fn user_by_id(&mut self, id: UserId) -> Result<Option<UserRecord>, StoreError>;
    async fn insert_organization(&mut self, org: &OrganizationRecord) -> Result<(), StoreError>;
    async fn organization_by_id(
        &mut self,
        id: OrgId,
    ) -> Result<Option<OrganizationRecord>, StoreError>;

    /// Continues this same transaction inside `scope`.
    async fn enter(self: Box<Self>, scope: &TenantScope) -> Result<Box<dyn TenantTx>, StoreError>;
    async fn commit(self: Box<Self>) -> Result<(), StoreError>;
}

#[async_trait]
pub trait TenantTx: Send {
    fn scope(&self) -> &TenantScope;

    /// The membership's `org_id` must be the scope's; anything else is refused.
    async fn insert_membership(&mut self, m: &MembershipRecord) -> Result<(), StoreError>;
    async fn membership(&mut self, user: UserId) -> Result<Option<MembershipRecord>, StoreError>;
    /// Oldest first, by (created_at, user_id).
    async fn list_memberships(
        &mut self,
        page: PageRequest,
    ) -> Result<Page<MembershipRecord>, StoreError>;

    async fn commit(self: Box<Self>) -> Result<(), StoreError>;
}

/// Refuses a record whose organisation is not the transaction's scope. Both backends call it
/// before writing, so a mismatched write never reaches SQL.
pub fn ensure_in_scope(scope: &TenantScope, org: OrgId) -> Result<(), StoreError> {
    if scope.org_id() == org {
        Ok(())
    } else {
        Err(StoreError::Backend(
            "refused: record belongs to another organisation than the transaction's scope".into(),
        ))
    }
}

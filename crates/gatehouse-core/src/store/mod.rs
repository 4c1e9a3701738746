//! What the domain needs from storage. Backends (SQLite, PostgreSQL) implement these traits with
//! their own SQL; one behaviour suite (`gatehouse-store-tests`) holds them to the same contract.
//!
//! Work happens in transactions. A transaction starts on the platform (users, organisations) and
//! may enter one tenant scope; once scoped it stays scoped, and every tenant-owned row it reads or
//! writes belongs to that organisation. On PostgreSQL the scope is also the row-level-security
//! setting of the transaction, so the database itself refuses other tenants' rows.
//!
//! The transaction traits are compositions of one role trait per noun, each in a file of the same
//! name here, in both backends and in the behaviour suite (`users.rs`, `sessions.rs`, ...), so a
//! backend is compared with the other file by file. A `dyn PlatformTx` or `dyn TenantTx` answers
//! every role's methods without importing the role traits.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::audit::Audited;
use crate::error::StoreError;
use crate::ids::OrgId;
use crate::scope::TenantScope;

mod api_keys;
mod apps;
mod audit;
mod chunks;
mod connectors;
mod grants;
mod housekeeping;
mod invitations;
mod key_material;
mod members;
mod oauth_states;
mod one_time_tokens;
mod operator_audit;
mod operators;
mod org_keys;
mod organizations;
mod outbox;
mod records;
mod roles;
mod sealed_fields;
mod second_factor;
mod secrets;
mod sessions;
mod share_links;
mod sso;
mod users;
mod webhooks;

pub use api_keys::{ApiKeyIndexStore, ApiKeyRecord, ApiKeyStore};
pub use apps::{AppRecord, AppStore};
pub use audit::AuditStore;
pub use chunks::{PowerOfTwoChunks, power_of_two_chunks};
pub use connectors::{
    ConnectorQueue, ConnectorRow, ConnectorStatus, ConnectorStore, OAuthProviderRow,
};
pub use grants::{GrantAccess, GrantRow, GrantStore, GrantedRecord};
pub use housekeeping::{Housekeeping, PruneJob, PruneStore};
pub use invitations::{InvitationRecord, InvitationStore};
pub use key_material::{KekVersionRecord, KeyMaterialStore, KeyState, PlatformKeyRecord};
pub use members::{MemberStore, MembershipRecord, Role};
pub use oauth_states::{OAuthStateRecord, OAuthStateStore, StatePurpose};
pub use one_time_tokens::{OneTimeTokenRecord, OneTimeTokenStore, TokenPurpose};
pub use operator_audit::OperatorAuditStore;
pub use operators::{OperatorFactor, OperatorRecord, OperatorStore};
pub use org_keys::{OrgKeyRecord, OrgKeyStore};
pub use organizations::{OrganizationRecord, OrganizationStore};
pub use outbox::{MailBacklog, MailQueue, MailRecord, OutboxStore};
pub use records::{Level, RecordQuery, RecordRow, RecordStore, joined, split_joined};
pub use roles::{CustomRoleRecord, CustomRoleStore};
pub use sealed_fields::{SealedFieldStore, SealedRecord};
pub use second_factor::{SecondFactorStore, TotpFactorRecord};
pub use secrets::{SecretRecord, SecretStore, SecretVersionRecord};
pub use sessions::{SessionRecord, SessionStore, SignedInWith, Tier};
pub use share_links::{ShareLinkIndexStore, ShareLinkRow, ShareLinkStore};
pub use sso::{
    ExternalIdentityRecord, SsoConfigRecord, SsoDirectory, SsoDomainRecord, SsoStore,
    external_identity_digest,
};
pub use users::{PasswordHashSample, UserRecord, UserStore};
pub use webhooks::{
    AttemptRow, DeliveryOutcome, DeliveryRow, DeliveryState, EndpointRow, WebhookMessageRow,
    WebhookQueue, WebhookStore,
};

#[async_trait]
pub trait Store:
    MailQueue + WebhookQueue + ConnectorQueue + Housekeeping + Send + Sync + std::fmt::Debug
{
    /// `"sqlite"` or `"postgres"`, for logs and the readiness report.
    fn backend(&self) -> &'static str;

    /// A cheap round trip proving the store answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Starts a transaction on platform data. Dropping it without `commit` rolls back.
    async fn begin(&self) -> Result<Box<dyn PlatformTx>, StoreError>;

    /// Starts a transaction on platform data for reading only: like `begin_read_scoped`, it
    /// never waits for, or makes wait, the single writer (SQLite `BEGIN DEFERRED`). Callers
    /// must not write through it. Lookups on the request path (an API key or a session missing
    /// from its cache, the account at sign-in) use it, so a busy audit writer cannot stall them.
    async fn begin_read(&self) -> Result<Box<dyn PlatformTx>, StoreError>;

    /// Records sessions' last-seen times (batched by the caller) in a transaction of its own:
    /// bookkeeping, not a change, so the one write path without an audit event.
    async fn touch_sessions(&self, seen: &[(uuid::Uuid, OffsetDateTime)])
    -> Result<(), StoreError>;

    /// Records API keys' last-used times (batched by the caller), like `touch_sessions`.
    async fn touch_api_keys(
        &self,
        used: &[(OrgId, uuid::Uuid, OffsetDateTime)],
    ) -> Result<(), StoreError>;

    /// Starts a transaction inside `scope` for reading only: it never waits for, or makes wait,
    /// the single writer (SQLite `BEGIN DEFERRED`). Callers must not write through it.
    async fn begin_read_scoped(&self, scope: &TenantScope)
    -> Result<Box<dyn TenantTx>, StoreError>;

    /// Starts a transaction already inside `scope`.
    async fn begin_scoped(&self, scope: &TenantScope) -> Result<Box<dyn TenantTx>, StoreError>;
}

/// A transaction on platform data: every platform role, then entering a scope or committing.
#[async_trait]
pub trait PlatformTx:
    UserStore
    + OrganizationStore
    + OperatorStore
    + SessionStore
    + KeyMaterialStore
    + SecondFactorStore
    + OneTimeTokenStore
    + OAuthStateStore
    + OutboxStore
    + OperatorAuditStore
    + ApiKeyIndexStore
    + ShareLinkIndexStore
    + PruneStore
    + AppStore
    + SsoDirectory
    + Send
{
    /// Continues this same transaction inside `scope`.
    async fn enter(self: Box<Self>, scope: &TenantScope) -> Result<Box<dyn TenantTx>, StoreError>;
    /// Commits; the proof shows an audit event was appended (see `crate::audit`).
    async fn commit(self: Box<Self>, proof: Audited) -> Result<(), StoreError>;
}

/// A transaction inside one organisation's scope: every tenant role, then committing.
#[async_trait]
pub trait TenantTx:
    MemberStore
    + InvitationStore
    + CustomRoleStore
    + ApiKeyStore
    + SecretStore
    + RecordStore
    + GrantStore
    + ShareLinkStore
    + WebhookStore
    + SsoStore
    + ConnectorStore
    + OrgKeyStore
    + SealedFieldStore
    + AuditStore
    + Send
{
    fn scope(&self) -> &TenantScope;

    /// Commits; the proof shows an audit event was appended (see `crate::audit`).
    async fn commit(self: Box<Self>, proof: Audited) -> Result<(), StoreError>;
}

/// Like [`ensure_in_scope`], for audit records and checkpoints, whose organisation is optional
/// (`None` is the operators' chain, never written from a tenant transaction).
pub fn ensure_chain_in_scope(scope: &TenantScope, chain: Option<OrgId>) -> Result<(), StoreError> {
    match chain {
        Some(org) => ensure_in_scope(scope, org),
        None => Err(StoreError::Backend(
            "refused: an operators' record written from an organisation's transaction".into(),
        )),
    }
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

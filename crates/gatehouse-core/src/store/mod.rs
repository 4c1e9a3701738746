//! What the domain needs from storage. Backends (SQLite, PostgreSQL) implement these traits with
//! their own SQL; one behaviour suite (`gatehouse-store-tests`) holds them to the same contract.
//!
//! Work happens in transactions. A transaction starts on the platform (users, organisations) and
//! may enter one tenant scope; once scoped it stays scoped, and every tenant-owned row it reads or
//! writes belongs to that organisation. On PostgreSQL the scope is also the row-level-security
//! setting of the transaction, so the database itself refuses other tenants' rows.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::audit::{
    AuditFilter, AuditRecord, Audited, ChainHead, CheckpointRecord, SigningKeyRecord,
};
use crate::error::StoreError;
use crate::ids::{OrgId, UserId};
use crate::page::{Page, PageRequest};
use crate::scope::TenantScope;

mod chunks;
mod identity;
mod second_factor;
mod vault;
pub use chunks::{PowerOfTwoChunks, power_of_two_chunks};
pub use identity::{
    ApiKeyRecord, CustomRoleRecord, InvitationRecord, OperatorRecord, SessionRecord, Tier,
};
pub use second_factor::{
    MailBacklog, MailRecord, OneTimeTokenRecord, PlatformKeyRecord, TokenPurpose, TotpFactorRecord,
};
pub use vault::{SecretRecord, SecretVersionRecord};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub id: UserId,
    pub email: String,
    pub name: String,
    /// PHC string; never leaves the domain.
    pub password_hash: String,
    pub created_at: OffsetDateTime,
    /// When the user proved they receive mail at `email`.
    pub email_verified_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrganizationRecord {
    pub id: OrgId,
    pub name: String,
    pub created_at: OffsetDateTime,
    /// Set when the organisation's keys were destroyed: its sealed data can never be read again.
    pub keys_shredded_at: Option<OffsetDateTime>,
}

/// Whether a key version may still be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    Active,
    /// No longer used; for data keys the wrapped material has been erased.
    Retired,
}

impl KeyState {
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Retired => "retired",
        }
    }

    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "retired" => Some(Self::Retired),
            _ => None,
        }
    }
}

/// A master-key version, known by a check value (an HMAC under the key), never the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KekVersionRecord {
    pub version: u32,
    pub check_value: Vec<u8>,
    pub state: KeyState,
    pub created_at: OffsetDateTime,
}

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

/// A sealed field: the envelope of one value of one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedRecord {
    pub org_id: OrgId,
    pub kind: String,
    pub record_id: String,
    pub field: String,
    pub dek_version: u32,
    pub envelope: Vec<u8>,
    pub updated_at: OffsetDateTime,
}

/// A membership's role: one of the built-ins, or a custom role defined by the organisation as a
/// named permission set (see `crate::identity::permissions`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Role {
    Owner,
    Admin,
    Member,
    Viewer,
    Custom(String),
}

impl Role {
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            Self::Owner => "owner",
            Self::Admin => "admin",
            Self::Member => "member",
            Self::Viewer => "viewer",
            Self::Custom(name) => name,
        }
    }

    /// A built-in name, or a custom role name: 1 to 40 of `a-z`, `0-9`, `_`, `-`, starting with a
    /// letter.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "owner" => Self::Owner,
            "admin" => Self::Admin,
            "member" => Self::Member,
            "viewer" => Self::Viewer,
            custom if valid_role_name(custom) => Self::Custom(custom.to_owned()),
            _ => return None,
        })
    }
}

fn valid_role_name(s: &str) -> bool {
    (1..=40).contains(&s.len())
        && s.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
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

    /// Takes up to `limit` undelivered messages due at `now` and leases them until
    /// `lease_until` (their next attempt moves there), so concurrent workers on several
    /// instances never take the same message. Bookkeeping in a transaction of its own.
    async fn claim_due_mail(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<MailRecord>, StoreError>;
    /// Marks a message delivered and erases its sealed body.
    async fn mail_delivered(&self, id: uuid::Uuid, at: OffsetDateTime) -> Result<(), StoreError>;
    /// Records a failed attempt and when to try again.
    async fn mail_failed(
        &self,
        id: uuid::Uuid,
        attempts: u32,
        next_attempt_at: OffsetDateTime,
        error: &str,
    ) -> Result<(), StoreError>;
    async fn mail_backlog(&self) -> Result<MailBacklog, StoreError>;

    /// Starts a transaction inside `scope` for reading only: it never waits for, or makes wait,
    /// the single writer (SQLite `BEGIN DEFERRED`). Callers must not write through it.
    async fn begin_read_scoped(&self, scope: &TenantScope)
    -> Result<Box<dyn TenantTx>, StoreError>;

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

    async fn kek_versions(&mut self) -> Result<Vec<KekVersionRecord>, StoreError>;
    async fn insert_kek_version(&mut self, kek: &KekVersionRecord) -> Result<(), StoreError>;
    async fn set_kek_state(&mut self, version: u32, state: KeyState) -> Result<(), StoreError>;
    /// Organisation ids in id order, after `after`, at most `limit`.
    async fn organization_ids(
        &mut self,
        after: Option<OrgId>,
        limit: u32,
    ) -> Result<Vec<OrgId>, StoreError>;
    async fn mark_keys_shredded(
        &mut self,
        org: OrgId,
        at: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// The operators' chain head as committed, without locking it.
    async fn peek_operator_audit_head(&mut self) -> Result<Option<ChainHead>, StoreError>;
    /// Locks the operators' audit chain for this transaction and returns its head.
    async fn operator_audit_head(&mut self) -> Result<Option<ChainHead>, StoreError>;
    /// Appends to the operators' chain and moves its head.
    async fn append_operator_audit(&mut self, event: &AuditRecord) -> Result<(), StoreError>;
    /// Operators' events after `after_seq`, in order, at most `limit`.
    async fn operator_audit_events(
        &mut self,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError>;

    async fn signing_keys(&mut self) -> Result<Vec<SigningKeyRecord>, StoreError>;
    async fn insert_signing_key(&mut self, key: &SigningKeyRecord) -> Result<(), StoreError>;
    async fn rewrap_signing_key(
        &mut self,
        version: u32,
        wrapped: &[u8],
        kek_version: u32,
    ) -> Result<(), StoreError>;
    /// The operators' chain checkpoints, by seq.
    async fn operator_checkpoints(&mut self) -> Result<Vec<CheckpointRecord>, StoreError>;
    async fn insert_operator_checkpoint(&mut self, c: &CheckpointRecord) -> Result<(), StoreError>;

    /// The operators' events matching `filter` with seq below `before`, newest first.
    async fn query_operator_audit(
        &mut self,
        filter: &AuditFilter,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError>;

    async fn set_password_hash(&mut self, user: UserId, hash: &str) -> Result<(), StoreError>;
    /// Every membership of `user`, across organisations, oldest first. (PostgreSQL: a policy lets
    /// the transaction read rows naming the user it declares, and nothing else.)
    async fn memberships_of_user(
        &mut self,
        user: UserId,
    ) -> Result<Vec<MembershipRecord>, StoreError>;

    /// Fails with `StoreError::EmailTaken` when the email is registered to another operator.
    async fn insert_operator(&mut self, op: &OperatorRecord) -> Result<(), StoreError>;
    async fn operator_by_email(
        &mut self,
        email: &str,
    ) -> Result<Option<OperatorRecord>, StoreError>;
    async fn operator_by_id(
        &mut self,
        id: uuid::Uuid,
    ) -> Result<Option<OperatorRecord>, StoreError>;
    async fn set_operator_password_hash(
        &mut self,
        id: uuid::Uuid,
        hash: &str,
    ) -> Result<(), StoreError>;

    async fn insert_session(&mut self, s: &SessionRecord) -> Result<(), StoreError>;
    async fn session(&mut self, id: uuid::Uuid) -> Result<Option<SessionRecord>, StoreError>;
    /// Replaces the refresh digest only if it is still `old`; returns whether it was replaced.
    async fn rotate_refresh(
        &mut self,
        id: uuid::Uuid,
        old: &[u8],
        new: &[u8],
        at: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// Moves a live session to another organisation (switching organisation).
    async fn set_session_org(&mut self, id: uuid::Uuid, org: OrgId) -> Result<(), StoreError>;
    /// Revokes the session if it is live; returns whether it was.
    async fn revoke_session(
        &mut self,
        id: uuid::Uuid,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// Revokes every live session of `subject` except `keep`; returns the ids revoked.
    async fn revoke_sessions_of(
        &mut self,
        subject: uuid::Uuid,
        keep: Option<uuid::Uuid>,
        at: OffsetDateTime,
    ) -> Result<Vec<uuid::Uuid>, StoreError>;
    /// Live (unrevoked, unexpired at `now`) sessions of `subject`, newest first.
    async fn live_sessions_of(
        &mut self,
        subject: uuid::Uuid,
        now: OffsetDateTime,
    ) -> Result<Vec<SessionRecord>, StoreError>;

    /// Which organisation and key a key digest belongs to (a platform index holding no secret).
    async fn api_key_owner(
        &mut self,
        digest: &[u8],
    ) -> Result<Option<(OrgId, uuid::Uuid)>, StoreError>;

    /// Marks the user's email verified (once); returns whether this call did.
    async fn set_email_verified(
        &mut self,
        user: UserId,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    async fn platform_keys(&mut self) -> Result<Vec<PlatformKeyRecord>, StoreError>;
    async fn insert_platform_key(&mut self, k: &PlatformKeyRecord) -> Result<(), StoreError>;
    async fn rewrap_platform_key(
        &mut self,
        version: u32,
        wrapped: &[u8],
        kek_version: u32,
    ) -> Result<(), StoreError>;

    async fn totp_factor(&mut self, user: UserId) -> Result<Option<TotpFactorRecord>, StoreError>;
    /// Stores an unconfirmed factor, replacing an unconfirmed one; fails with
    /// `StoreError::Duplicate` when the user has a confirmed factor.
    async fn put_pending_totp(&mut self, f: &TotpFactorRecord) -> Result<(), StoreError>;
    /// Confirms the unconfirmed factor whose sealed seed is `seed` (the one the code was checked
    /// against: a concurrent new enrolment replaces it, and then nothing is confirmed) with the
    /// step its first code was for; returns whether it did.
    async fn confirm_totp(
        &mut self,
        user: UserId,
        seed: &[u8],
        step: u64,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// Records `step` as used if the confirmed factor's last step is earlier; returns whether it
    /// was (false: a replay, or no confirmed factor).
    async fn use_totp_step(&mut self, user: UserId, step: u64) -> Result<bool, StoreError>;
    /// Removes the factor and its recovery codes; returns whether there was one.
    async fn delete_totp(&mut self, user: UserId) -> Result<bool, StoreError>;
    /// Replaces the user's recovery codes (digests) with a new set.
    async fn replace_recovery_codes(
        &mut self,
        user: UserId,
        digests: &[Vec<u8>],
        at: OffsetDateTime,
    ) -> Result<(), StoreError>;
    /// Spends an unused recovery code; returns whether it was unused.
    async fn use_recovery_code(
        &mut self,
        user: UserId,
        digest: &[u8],
        at: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// How many unused recovery codes the user has.
    async fn recovery_codes_left(&mut self, user: UserId) -> Result<u32, StoreError>;

    async fn insert_one_time_token(&mut self, t: &OneTimeTokenRecord) -> Result<(), StoreError>;
    async fn one_time_token(
        &mut self,
        digest: &[u8],
    ) -> Result<Option<OneTimeTokenRecord>, StoreError>;
    /// Spends the token if unused; returns whether this call did.
    async fn consume_one_time_token(
        &mut self,
        digest: &[u8],
        at: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// Spends every unused token of `subject` for `purpose`; returns how many.
    async fn consume_tokens_of(
        &mut self,
        subject: uuid::Uuid,
        purpose: TokenPurpose,
        at: OffsetDateTime,
    ) -> Result<u64, StoreError>;

    /// Records a fresh check on a live session: the password (`auth_at`) and, when a second
    /// factor was checked, `mfa_at`. Returns whether the session is live.
    async fn set_session_auth(
        &mut self,
        id: uuid::Uuid,
        auth_at: OffsetDateTime,
        mfa_at: Option<OffsetDateTime>,
    ) -> Result<bool, StoreError>;

    /// Queues a message; it commits (or rolls back) with the transaction's change.
    async fn enqueue_mail(&mut self, m: &MailRecord) -> Result<(), StoreError>;

    /// Continues this same transaction inside `scope`.
    async fn enter(self: Box<Self>, scope: &TenantScope) -> Result<Box<dyn TenantTx>, StoreError>;
    /// Commits; the proof shows an audit event was appended (see `crate::audit`).
    async fn commit(self: Box<Self>, proof: Audited) -> Result<(), StoreError>;
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

    /// Changes the member's role; returns whether the member exists.
    async fn set_member_role(&mut self, user: UserId, role: &Role) -> Result<bool, StoreError>;
    /// Removes the membership; returns whether there was one.
    async fn delete_membership(&mut self, user: UserId) -> Result<bool, StoreError>;
    /// The owners' user ids, locked until the transaction ends, so two concurrent demotions
    /// cannot both see "another owner remains".
    async fn lock_owners(&mut self) -> Result<Vec<UserId>, StoreError>;

    /// Fails with `StoreError::Duplicate` when the name exists.
    async fn insert_custom_role(&mut self, r: &CustomRoleRecord) -> Result<(), StoreError>;
    async fn custom_role(&mut self, name: &str) -> Result<Option<CustomRoleRecord>, StoreError>;
    async fn custom_roles(&mut self) -> Result<Vec<CustomRoleRecord>, StoreError>;

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

    /// Fails with `StoreError::Duplicate` when a secret that is not deleted has the name. Also
    /// inserts version `current_version`'s metadata (creator and time as the secret's).
    async fn insert_secret(&mut self, s: &SecretRecord) -> Result<(), StoreError>;
    /// The secret, deleted or not.
    async fn secret(&mut self, id: uuid::Uuid) -> Result<Option<SecretRecord>, StoreError>;
    /// Secrets that are not deleted, newest first, by (created_at, id).
    async fn list_secrets(&mut self, page: PageRequest) -> Result<Page<SecretRecord>, StoreError>;
    /// Adds version `v.version` if it is the next one (current + 1) and the secret is not
    /// deleted: moves `current_version` and `updated_at`. Returns whether it did.
    async fn add_secret_version(&mut self, v: &SecretVersionRecord) -> Result<bool, StoreError>;
    /// Every version's metadata, oldest first.
    async fn secret_versions(
        &mut self,
        secret: uuid::Uuid,
    ) -> Result<Vec<SecretVersionRecord>, StoreError>;
    /// Marks the secret deleted if it is not; returns whether this call did.
    async fn delete_secret(
        &mut self,
        id: uuid::Uuid,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// The lowest data-key version transit ciphertexts may use (`None`: transit never used).
    async fn transit_floor(&mut self) -> Result<Option<u32>, StoreError>;
    /// Raises it to `version` (inserting it the first time); never lowers it, even when two
    /// raises race.
    async fn set_transit_floor(&mut self, version: u32) -> Result<(), StoreError>;

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

    /// Inserts the sealed value unless one exists at (kind, record_id, field); returns whether it
    /// was inserted.
    async fn insert_sealed_if_absent(&mut self, sealed: &SealedRecord) -> Result<bool, StoreError>;
    /// Inserts or replaces the sealed value at (kind, record_id, field).
    async fn put_sealed(&mut self, sealed: &SealedRecord) -> Result<(), StoreError>;
    async fn sealed(
        &mut self,
        kind: &str,
        record_id: &str,
        field: &str,
    ) -> Result<Option<SealedRecord>, StoreError>;
    /// Sealed values on a data-key version below `version`, at most `limit`.
    async fn sealed_before_version(
        &mut self,
        version: u32,
        limit: u32,
    ) -> Result<Vec<SealedRecord>, StoreError>;
    /// Replaces `old` with a new envelope only if it is unchanged since read; returns whether it
    /// was replaced.
    async fn replace_sealed(
        &mut self,
        old: &SealedRecord,
        envelope: &[u8],
        dek_version: u32,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// Deletes the sealed value at (kind, record_id, field); returns whether there was one.
    async fn delete_sealed(
        &mut self,
        kind: &str,
        record_id: &str,
        field: &str,
    ) -> Result<bool, StoreError>;
    /// (data-key version, number of sealed values on it), by version.
    async fn sealed_counts(&mut self) -> Result<Vec<(u32, u64)>, StoreError>;

    /// The scope's chain head as committed, without locking it.
    async fn peek_audit_head(&mut self) -> Result<Option<ChainHead>, StoreError>;
    /// Locks the scope's audit chain for this transaction and returns its head.
    async fn audit_head(&mut self) -> Result<Option<ChainHead>, StoreError>;
    /// Appends to the scope's chain and moves its head.
    async fn append_audit(&mut self, event: &AuditRecord) -> Result<(), StoreError>;
    /// Appends `events` (in order, each continuing the one before) and moves the head once: a
    /// few statements for the whole batch instead of a few per event.
    async fn append_audit_batch(&mut self, events: &[AuditRecord]) -> Result<(), StoreError>;
    /// The scope's events after `after_seq`, in order, at most `limit`.
    async fn audit_events(
        &mut self,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError>;

    /// The scope's chain checkpoints, by seq.
    async fn audit_checkpoints(&mut self) -> Result<Vec<CheckpointRecord>, StoreError>;
    async fn insert_audit_checkpoint(&mut self, c: &CheckpointRecord) -> Result<(), StoreError>;

    /// The scope's events matching `filter` with seq below `before` (all when `None`), newest
    /// first, at most `limit`.
    async fn query_audit(
        &mut self,
        filter: &AuditFilter,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError>;

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

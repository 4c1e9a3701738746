//! Per-device sessions and their refresh-token rotation.

use crate::error::StoreError;
use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::ids::OrgId;

/// A session's tier fixes its lifetime, its token audience and whether it may be renewed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tier {
    Customer,
    Operator,
    Impersonation,
}

impl Tier {
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Customer => "customer",
            Self::Operator => "operator",
            Self::Impersonation => "impersonation",
        }
    }

    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "customer" => Some(Self::Customer),
            "operator" => Some(Self::Operator),
            "impersonation" => Some(Self::Impersonation),
            _ => None,
        }
    }
}

/// How a session's person proved who they are when it began.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SignedInWith {
    /// Their password (and a second factor, if they have one); operators and impersonations.
    #[default]
    Password,
    /// The single sign-on of this organisation (issue 24).
    Sso(OrgId),
    /// A platform-wide provider (social sign-in).
    Social,
}

impl SignedInWith {
    /// The stored name (`signed_in_with`).
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Password => "password",
            Self::Sso(_) => "sso",
            Self::Social => "social",
        }
    }

    /// From the stored name and `sso_org_id`; `None` for a pair no session can have.
    #[must_use]
    pub fn parse(name: &str, org: Option<OrgId>) -> Option<Self> {
        match (name, org) {
            ("password", None) => Some(Self::Password),
            ("sso", Some(org)) => Some(Self::Sso(org)),
            ("social", None) => Some(Self::Social),
            _ => None,
        }
    }

    /// The organisation whose single sign-on it was.
    #[must_use]
    pub fn sso_org(&self) -> Option<OrgId> {
        match self {
            Self::Sso(org) => Some(*org),
            _ => None,
        }
    }
}

/// One device's sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub id: Uuid,
    /// The user (customer and impersonation tiers) or the operator (operator tier).
    pub subject_id: Uuid,
    pub tier: Tier,
    /// The organisation the session's tokens are for; `None` for operators.
    pub org_id: Option<OrgId>,
    /// The operator behind an impersonation.
    pub impersonator_id: Option<Uuid>,
    pub reason: Option<String>,
    pub device_name: String,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    /// SHA-256 of the current refresh token.
    pub refresh_hash: Vec<u8>,
    /// SHA-256 of the refresh token the last rotation replaced: presented again, it is reuse.
    pub previous_refresh_hash: Option<Vec<u8>>,
    pub created_at: OffsetDateTime,
    pub last_seen_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
    /// The last time the subject's password was checked for this session.
    pub auth_at: OffsetDateTime,
    /// The last time a second factor was checked for this session.
    pub mfa_at: Option<OffsetDateTime>,
    /// How the session began: enforced single sign-on admits only its own organisation's.
    pub signed_in_with: SignedInWith,
}

impl SessionRecord {
    #[must_use]
    pub fn is_live(&self, now: OffsetDateTime) -> bool {
        self.revoked_at.is_none() && now < self.expires_at
    }
}

#[async_trait]
/// Sessions, a platform table (a session may move between organisations).
pub trait SessionStore: Send {
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

    /// Revokes every live (unrevoked, unexpired at `at`) session of `subject` whose tokens are
    /// for `org`, in one statement; returns each one's id and expiry.
    async fn revoke_org_sessions_of(
        &mut self,
        subject: uuid::Uuid,
        org: OrgId,
        at: OffsetDateTime,
    ) -> Result<Vec<(uuid::Uuid, OffsetDateTime)>, StoreError>;

    /// Revokes every unrevoked impersonation `operator` started; returns the ids revoked.
    async fn revoke_impersonations_by(
        &mut self,
        operator: uuid::Uuid,
        at: OffsetDateTime,
    ) -> Result<Vec<uuid::Uuid>, StoreError>;

    /// Live (unrevoked, unexpired at `now`) sessions of `subject`, newest first.
    async fn live_sessions_of(
        &mut self,
        subject: uuid::Uuid,
        now: OffsetDateTime,
    ) -> Result<Vec<SessionRecord>, StoreError>;

    /// Every session of `subject`, in any state, newest first (at most 1000): their export.
    async fn sessions_of(&mut self, subject: uuid::Uuid) -> Result<Vec<SessionRecord>, StoreError>;

    /// Deletes every session of `subject` (erasure); returns their ids, for revocation.
    async fn delete_sessions_of(
        &mut self,
        subject: uuid::Uuid,
    ) -> Result<Vec<uuid::Uuid>, StoreError>;

    /// Records a fresh check on a live session: the password (`auth_at`) and, when a second
    /// factor was checked, `mfa_at`. Returns whether the session is live.
    async fn set_session_auth(
        &mut self,
        id: uuid::Uuid,
        auth_at: OffsetDateTime,
        mfa_at: Option<OffsetDateTime>,
    ) -> Result<bool, StoreError>;
}

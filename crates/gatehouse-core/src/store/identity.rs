//! Identity records: operators, sessions, custom roles and invitations.

use time::OffsetDateTime;
use uuid::Uuid;

use crate::ids::{OrgId, UserId};

/// A platform operator: a separate account, never a member of any organisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorRecord {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub password_hash: String,
    pub created_at: OffsetDateTime,
}

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
}

impl SessionRecord {
    #[must_use]
    pub fn is_live(&self, now: OffsetDateTime) -> bool {
        self.revoked_at.is_none() && now < self.expires_at
    }
}

/// An organisation's named permission set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomRoleRecord {
    pub org_id: OrgId,
    pub name: String,
    /// Permission names from the catalogue.
    pub permissions: Vec<String>,
    pub created_at: OffsetDateTime,
}

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

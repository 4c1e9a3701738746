//! Memberships: who belongs to the scope's organisation, with which role.

use crate::error::StoreError;
use async_trait::async_trait;
use time::OffsetDateTime;

use crate::ids::{OrgId, UserId};
use crate::page::{Page, PageRequest};

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
    /// When an admin last ended the member's sessions here: a session that began before then
    /// may not switch into the organisation.
    pub sessions_ended_at: Option<OffsetDateTime>,
}

#[async_trait]
/// The scope's memberships.
pub trait MemberStore: Send {
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

    /// Notes that an admin ended the member's sessions at `at`; returns whether the member
    /// exists.
    async fn set_sessions_ended(
        &mut self,
        user: UserId,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Removes the membership; returns whether there was one.
    async fn delete_membership(&mut self, user: UserId) -> Result<bool, StoreError>;

    /// The owners' user ids, locked until the transaction ends, so two concurrent demotions
    /// cannot both see "another owner remains".
    async fn lock_owners(&mut self) -> Result<Vec<UserId>, StoreError>;
}

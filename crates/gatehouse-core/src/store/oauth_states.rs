//! OAuth authorization states (issue 24): one row per authorization sent to a provider, found by
//! the SHA-256 of the state's nonce and spent once by one conditional update. Platform rows (a
//! sign-in has no organisation yet); on PostgreSQL a statement sees the row whose digest it
//! declares, or its organisation's inside a scope.

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::StoreError;
use crate::ids::OrgId;

/// What a state was issued for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatePurpose {
    /// Connecting a person's account at a provider (B3).
    Connector,
    /// Signing in through a provider.
    Sso,
}

impl StatePurpose {
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Connector => "connector",
            Self::Sso => "sso",
        }
    }

    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "connector" => Some(Self::Connector),
            "sso" => Some(Self::Sso),
            _ => None,
        }
    }

    pub(crate) fn byte(self) -> u8 {
        match self {
            Self::Connector => 1,
            Self::Sso => 2,
        }
    }

    pub(crate) fn from_byte(b: u8) -> Option<Self> {
        match b {
            1 => Some(Self::Connector),
            2 => Some(Self::Sso),
            _ => None,
        }
    }
}

/// A state's row. The PKCE verifier and the OpenID nonce are sealed under the platform key,
/// bound to the digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthStateRecord {
    /// SHA-256 of the state's random nonce.
    pub digest: Vec<u8>,
    pub purpose: StatePurpose,
    pub org_id: Option<OrgId>,
    pub user_id: Option<Uuid>,
    pub provider: String,
    pub verifier_sealed: Vec<u8>,
    pub nonce_sealed: Vec<u8>,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub spent_at: Option<OffsetDateTime>,
}

#[async_trait]
/// Authorization states, by digest.
pub trait OAuthStateStore: Send {
    async fn insert_oauth_state(&mut self, s: &OAuthStateRecord) -> Result<(), StoreError>;

    /// Spends the state if it is unspent and unexpired at `at`, in one conditional update, and
    /// returns its row, now spent at `at`; `None` when it is unknown, already spent or expired
    /// (one answer).
    async fn spend_oauth_state(
        &mut self,
        digest: &[u8],
        at: OffsetDateTime,
    ) -> Result<Option<OAuthStateRecord>, StoreError>;
}

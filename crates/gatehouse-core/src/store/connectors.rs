//! Connectors (B3, issue 24): an organisation's own OAuth providers and its people's connected
//! accounts. Tokens and client secrets are sealed fields, never columns here.

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::StoreError;
use crate::ids::OrgId;
use crate::page::{Page, PageRequest};

/// An organisation's OAuth provider: discovery by `issuer`, or the endpoints named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthProviderRow {
    pub org_id: OrgId,
    pub id: Uuid,
    pub name: String,
    pub issuer: Option<String>,
    pub authorization_url: Option<String>,
    pub token_url: Option<String>,
    pub revocation_url: Option<String>,
    pub userinfo_url: Option<String>,
    pub jwks_url: Option<String>,
    pub client_id: String,
    /// `client_secret_basic` or `client_secret_post`.
    pub client_auth: String,
    /// Space-separated.
    pub scopes: String,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// Whether a connector's tokens can be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectorStatus {
    Active,
    /// The provider refused the refresh token: the person must connect again.
    NeedsReauth,
}

impl ConnectorStatus {
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::NeedsReauth => "needs_reauth",
        }
    }

    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "needs_reauth" => Some(Self::NeedsReauth),
            _ => None,
        }
    }
}

/// A person's account at a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectorRow {
    pub org_id: OrgId,
    pub id: Uuid,
    pub user_id: Uuid,
    /// The provider's name (an organisation's or the platform's).
    pub provider: String,
    pub status: ConnectorStatus,
    /// The scopes granted, space-separated.
    pub scopes: String,
    /// When the access token expires, when the provider said.
    pub expires_at: Option<OffsetDateTime>,
    /// When the refresh job should refresh it; `None` when it cannot (no refresh token, or
    /// `needs_reauth`).
    pub refresh_due_at: Option<OffsetDateTime>,
    /// Refresh attempts failed in a row (the backoff's step).
    pub failures: u32,
    /// The last refresh failure, in words (never a token).
    pub last_error: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

#[async_trait]
/// The scope's providers and connectors.
pub trait ConnectorStore: Send {
    /// Fails with `StoreError::Duplicate` when the organisation has a provider of that name.
    async fn insert_oauth_provider(&mut self, p: &OAuthProviderRow) -> Result<(), StoreError>;

    /// Every provider of the organisation, by name.
    async fn oauth_providers(&mut self) -> Result<Vec<OAuthProviderRow>, StoreError>;

    async fn oauth_provider(&mut self, name: &str) -> Result<Option<OAuthProviderRow>, StoreError>;

    /// Returns whether it was there.
    async fn delete_oauth_provider(&mut self, name: &str) -> Result<bool, StoreError>;

    /// Whether any connector of the organisation names its provider by one of `keys`.
    async fn oauth_provider_in_use(&mut self, keys: &[&str]) -> Result<bool, StoreError>;

    async fn insert_connector(&mut self, c: &ConnectorRow) -> Result<(), StoreError>;

    async fn connector(&mut self, id: Uuid) -> Result<Option<ConnectorRow>, StoreError>;

    /// As [`Self::connector`], and no other transaction changes or deletes the row until this one
    /// ends (PostgreSQL: `FOR UPDATE`, waiting for one that holds it and then reading what it
    /// committed; SQLite's writer is alone already). A disconnect, a removal and a refresh's
    /// recording take it before reading the tokens, so none revokes tokens another replaced.
    async fn lock_connector(&mut self, id: Uuid) -> Result<Option<ConnectorRow>, StoreError>;

    /// Connectors, of `user` only when given, newest first by (created_at, id).
    async fn connectors(
        &mut self,
        user: Option<Uuid>,
        page: PageRequest,
    ) -> Result<Page<ConnectorRow>, StoreError>;

    /// Writes every field but the ids, owner, provider and creation time; returns whether the
    /// connector exists.
    async fn update_connector(&mut self, c: &ConnectorRow) -> Result<bool, StoreError>;

    /// Returns whether it was there.
    async fn delete_connector(&mut self, id: Uuid) -> Result<bool, StoreError>;
}

/// The refresh job's search, across organisations (ids only).
#[async_trait]
pub trait ConnectorQueue: Send + Sync {
    /// Up to `limit` active connectors whose refresh is due at `now`, soonest first.
    async fn connectors_due(
        &self,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<(OrgId, Uuid)>, StoreError>;
}

//! Single sign-on (issue 24): an organisation's identity provider and the email domains it
//! proved by DNS (tenant rows), and the platform's two look-ups before any scope exists: which
//! organisation verified a domain, and which account an external identity (issuer and subject)
//! is linked to.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::error::StoreError;
use crate::ids::{OrgId, UserId};

/// An organisation's OpenID provider. The client secret is a sealed field beside it
/// (`SealedKind::SsoClientSecret`), never a column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsoConfigRecord {
    pub org_id: OrgId,
    /// The provider's issuer identifier (its discovery document lives under it).
    pub issuer: String,
    pub client_id: String,
    /// Space-separated, `openid` first.
    pub scopes: String,
    /// The role a person gets who joins through single sign-on (just in time).
    pub default_role: String,
    /// Members may no longer sign in to the organisation with a password (see the enforcement
    /// rules in `crate::sso`).
    pub enforced: bool,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// An email domain an organisation claimed, and whether it proved it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsoDomainRecord {
    pub org_id: OrgId,
    /// Lower case, without a trailing dot.
    pub domain: String,
    /// The value to publish in the challenge TXT record (not a secret: it is published).
    pub challenge: String,
    pub created_at: OffsetDateTime,
    /// Set once the record was found. A domain is verified by one organisation at most.
    pub verified_at: Option<OffsetDateTime>,
}

#[async_trait]
/// The scope's single sign-on configuration and domains.
pub trait SsoStore: Send {
    async fn sso_config(&mut self) -> Result<Option<SsoConfigRecord>, StoreError>;

    /// Inserts or replaces the scope's configuration (`org_id` must be the scope's).
    async fn put_sso_config(&mut self, config: &SsoConfigRecord) -> Result<(), StoreError>;

    /// Removes it; returns whether there was one.
    async fn delete_sso_config(&mut self) -> Result<bool, StoreError>;

    /// The scope's domains, by name.
    async fn sso_domains(&mut self) -> Result<Vec<SsoDomainRecord>, StoreError>;

    async fn sso_domain(&mut self, domain: &str) -> Result<Option<SsoDomainRecord>, StoreError>;

    /// Claims a domain; `StoreError::Duplicate` when the scope already claimed it.
    async fn insert_sso_domain(&mut self, domain: &SsoDomainRecord) -> Result<(), StoreError>;

    /// Marks a claimed domain verified as of `at`; returns whether this call did (it was
    /// claimed and not yet verified). `StoreError::Duplicate` when another organisation
    /// verified it first.
    async fn verify_sso_domain(
        &mut self,
        domain: &str,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Gives a domain up; returns whether it was claimed.
    async fn delete_sso_domain(&mut self, domain: &str) -> Result<bool, StoreError>;

    /// Removes the links the scope's sign-on made: to `user`'s account (their membership
    /// ended), or with `None` every one it made, whoever's account (the organisation's issuer
    /// changed or its provider was removed), in one statement; answers how many.
    async fn delete_links_made_here(&mut self, user: Option<UserId>) -> Result<u64, StoreError>;

    /// Revokes every live (unrevoked, unexpired at `at`) session the scope's sign-on began
    /// (`signed_in_with = Sso(scope)`), whoever's, in one statement: its provider was removed or
    /// changed issuer. Returns each one's id and expiry, for their revocation everywhere.
    async fn revoke_sessions_begun_here(
        &mut self,
        at: OffsetDateTime,
    ) -> Result<Vec<(uuid::Uuid, OffsetDateTime)>, StoreError>;
}

/// An external identity linked to an account: the provider's issuer and its subject for the
/// person. Issuer and subject together are unique.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalIdentityRecord {
    pub issuer: String,
    pub subject: String,
    pub user_id: UserId,
    /// The organisation whose single sign-on made the link; `None` for a platform provider.
    pub linked_by: Option<OrgId>,
    pub created_at: OffsetDateTime,
}

#[async_trait]
/// Platform look-ups for signing in through an external provider.
pub trait SsoDirectory: Send {
    /// The organisation that verified `domain`, if one did.
    async fn org_of_verified_domain(&mut self, domain: &str) -> Result<Option<OrgId>, StoreError>;

    /// The account linked to `subject` at `issuer`.
    async fn external_identity(
        &mut self,
        issuer: &str,
        subject: &str,
    ) -> Result<Option<ExternalIdentityRecord>, StoreError>;

    /// Links an identity; `StoreError::Duplicate` when that issuer and subject are linked.
    async fn insert_external_identity(
        &mut self,
        identity: &ExternalIdentityRecord,
    ) -> Result<(), StoreError>;

    /// The identities linked to `user`, oldest first (the person's export).
    async fn external_identities_of(
        &mut self,
        user: UserId,
    ) -> Result<Vec<ExternalIdentityRecord>, StoreError>;

    /// Removes `user`'s link whose [`external_identity_digest`] is `digest`; answers whether
    /// there was one.
    async fn delete_external_identity(
        &mut self,
        user: UserId,
        digest: &[u8],
    ) -> Result<bool, StoreError>;
}

/// The digest external identities are found by: SHA-256 over the issuer, a NUL, the subject
/// (neither may contain a NUL, so the pair is unambiguous).
#[must_use]
pub fn external_identity_digest(issuer: &str, subject: &str) -> Vec<u8> {
    gatehouse_crypto::sha256(&[issuer.as_bytes(), b"\0", subject.as_bytes()]).to_vec()
}

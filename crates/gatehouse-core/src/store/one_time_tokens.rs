//! Single-use tokens mailed to people (email verification, password reset), stored as digests.

use crate::error::StoreError;
use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

/// What a one-time token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenPurpose {
    /// The second step of a sign-in whose password was right.
    SignInChallenge,
    PasswordReset,
    EmailVerification,
}

impl TokenPurpose {
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::SignInChallenge => "sign_in_challenge",
            Self::PasswordReset => "password_reset",
            Self::EmailVerification => "email_verification",
        }
    }

    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "sign_in_challenge" => Some(Self::SignInChallenge),
            "password_reset" => Some(Self::PasswordReset),
            "email_verification" => Some(Self::EmailVerification),
            _ => None,
        }
    }
}

/// A single-use token: only its SHA-256 is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneTimeTokenRecord {
    pub digest: Vec<u8>,
    pub purpose: TokenPurpose,
    pub subject_id: Uuid,
    /// Purpose-specific JSON (a challenge's organisation and device; the address verified).
    pub detail: String,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub used_at: Option<OffsetDateTime>,
}

impl OneTimeTokenRecord {
    #[must_use]
    pub fn is_usable(&self, now: OffsetDateTime) -> bool {
        self.used_at.is_none() && now < self.expires_at
    }
}

#[async_trait]
/// One-time tokens, by digest.
pub trait OneTimeTokenStore: Send {
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

    /// Deletes every token of `subject`, used or not (erasure: a token's detail may name their
    /// address); returns how many.
    async fn delete_tokens_of(&mut self, subject: Uuid) -> Result<u64, StoreError>;

    /// Spends every unused token of `subject` for `purpose`; returns how many.
    async fn consume_tokens_of(
        &mut self,
        subject: uuid::Uuid,
        purpose: TokenPurpose,
        at: OffsetDateTime,
    ) -> Result<u64, StoreError>;
}

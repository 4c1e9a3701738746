//! Records for second factors, one-time tokens (sign-in challenges, password resets, email
//! verification), the platform data key and the mail outbox. All are platform rows: a user's
//! factor and mail are theirs, not any one organisation's.

use time::OffsetDateTime;
use uuid::Uuid;

use crate::ids::UserId;

/// A random key for platform-owned sealed values (TOTP seeds, queued mail), stored only wrapped
/// under the master key, like the signing keys, and rewrapped with them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformKeyRecord {
    pub version: u32,
    pub wrapped: Vec<u8>,
    pub kek_version: u32,
    pub created_at: OffsetDateTime,
}

/// A user's TOTP factor. Unconfirmed until a first code proves the authenticator has the seed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotpFactorRecord {
    pub user_id: UserId,
    /// The seed, sealed with the platform key; the context binds the user.
    pub envelope: Vec<u8>,
    pub created_at: OffsetDateTime,
    pub confirmed_at: Option<OffsetDateTime>,
    /// The last time step a code was accepted for: only later steps are accepted (no replay).
    pub last_step: u64,
}

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

/// One queued message. The whole message (recipient, subject, bodies) is one sealed envelope:
/// a reset link waiting in the outbox is as sensitive as a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailRecord {
    pub id: Uuid,
    /// Emptied once delivered.
    pub envelope: Vec<u8>,
    pub created_at: OffsetDateTime,
    pub attempts: u32,
    pub next_attempt_at: OffsetDateTime,
    pub sent_at: Option<OffsetDateTime>,
    pub last_error: Option<String>,
}

/// The outbox at a glance, for readiness and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailBacklog {
    /// Messages not yet delivered.
    pub pending: u64,
    /// Of those, how many have failed at least once.
    pub failing: u64,
    /// When the oldest undelivered message was queued.
    pub oldest: Option<OffsetDateTime>,
    /// The newest undelivered message's last failure.
    pub last_error: Option<String>,
}

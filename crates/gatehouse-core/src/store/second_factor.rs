//! TOTP factors and recovery codes.

use crate::error::StoreError;
use async_trait::async_trait;
use time::OffsetDateTime;

use crate::ids::UserId;

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

#[async_trait]
/// A person's second factor: one TOTP seed (sealed) and a set of recovery-code digests.
pub trait SecondFactorStore: Send {
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

    /// The stored values (digests) of the user's unused recovery codes: what a typed code is
    /// checked against when each stored value carries its own salt.
    async fn unused_recovery_codes(&mut self, user: UserId) -> Result<Vec<Vec<u8>>, StoreError>;

    /// How many unused recovery codes the user has.
    async fn recovery_codes_left(&mut self, user: UserId) -> Result<u32, StoreError>;
}

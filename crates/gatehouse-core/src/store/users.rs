//! People's accounts on the platform: sign-up, sign-in lookups, password and email state, and which organisations a person belongs to.

use crate::error::StoreError;
use async_trait::async_trait;
use time::OffsetDateTime;

use super::MembershipRecord;
use crate::ids::UserId;

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
    /// Set while an operator has the account disabled: no sign-in, refresh or API-key use.
    pub disabled_at: Option<OffsetDateTime>,
}

/// A bounded look at the stored password hashes (A1's self-check): the accounts among the first
/// `max_accounts` by id, and those of their hashes whose parameters are not the current ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordHashSample {
    /// Accounts looked at: all of them, or `max_accounts` when `accounts_capped`.
    pub accounts: u64,
    /// More accounts exist than were looked at.
    pub accounts_capped: bool,
    /// The hashes, among the accounts looked at, whose parameter list does not begin with the
    /// current parameters, at most `max_listed`.
    pub others: Vec<String>,
    /// More such hashes exist among the accounts looked at than were listed.
    pub others_capped: bool,
}

impl PasswordHashSample {
    /// From a backend's two reads: `counted` accounts among the first `max_accounts + 1`, and
    /// up to `max_listed + 1` other hashes among the first `max_accounts` (one more than wanted
    /// is how each read tells that it was capped).
    #[must_use]
    pub fn from_reads(
        counted: u64,
        max_accounts: u32,
        mut listed: Vec<String>,
        max_listed: u32,
    ) -> Self {
        let others_capped = listed.len() > max_listed as usize;
        listed.truncate(max_listed as usize);
        Self {
            accounts: counted.min(u64::from(max_accounts)),
            accounts_capped: counted > u64::from(max_accounts),
            others: listed,
            others_capped,
        }
    }
}

#[async_trait]
/// Users, a platform table.
pub trait UserStore: Send {
    /// Fails with `StoreError::EmailTaken` when the (normalised) email is registered.
    async fn insert_user(&mut self, user: &UserRecord) -> Result<(), StoreError>;

    async fn user_by_email(&mut self, email: &str) -> Result<Option<UserRecord>, StoreError>;

    async fn user_by_id(&mut self, id: UserId) -> Result<Option<UserRecord>, StoreError>;

    async fn set_password_hash(&mut self, user: UserId, hash: &str) -> Result<(), StoreError>;

    /// Marks the user's email verified (once); returns whether this call did.
    async fn set_email_verified(
        &mut self,
        user: UserId,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Disables the account as of `at`, or re-enables it with `None`; returns whether the state
    /// changed (disabling a disabled account keeps its first time).
    async fn set_user_disabled(
        &mut self,
        user: UserId,
        at: Option<OffsetDateTime>,
    ) -> Result<bool, StoreError>;

    /// Deletes the account, with its memberships, second factor and recovery codes (erasure,
    /// G2); returns whether it existed.
    async fn delete_user(&mut self, id: UserId) -> Result<bool, StoreError>;

    /// Every membership of `user`, across organisations, oldest first. (PostgreSQL: a policy lets
    /// the transaction read rows naming the user it declares, and nothing else.)
    async fn memberships_of_user(
        &mut self,
        user: UserId,
    ) -> Result<Vec<MembershipRecord>, StoreError>;

    /// A census of password hashes over the first `max_accounts` accounts in id order (the
    /// oldest, ids being time-ordered): how many there are, and their hashes that do not begin
    /// with `current` followed by `$` (the end of the parameters, so `p=1` does not take in
    /// `p=16`, and a hash naming a pepper by `keyid` matches only a `current` that names it), at
    /// most `max_listed`. Reads the whole table on neither backend.
    /// (PostgreSQL: the transaction declares the census job, the one reader of every account.)
    async fn password_hash_census(
        &mut self,
        current: &str,
        max_accounts: u32,
        max_listed: u32,
    ) -> Result<PasswordHashSample, StoreError>;
}

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

    /// Deletes the account, with its memberships, second factor and recovery codes (erasure,
    /// G2); returns whether it existed.
    async fn delete_user(&mut self, id: UserId) -> Result<bool, StoreError>;

    /// Every membership of `user`, across organisations, oldest first. (PostgreSQL: a policy lets
    /// the transaction read rows naming the user it declares, and nothing else.)
    async fn memberships_of_user(
        &mut self,
        user: UserId,
    ) -> Result<Vec<MembershipRecord>, StoreError>;
}

//! Platform operators: accounts separate from every organisation.

use crate::error::StoreError;
use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

/// A platform operator: a separate account, never a member of any organisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorRecord {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub password_hash: String,
    pub created_at: OffsetDateTime,
    /// The operator's TOTP factor; stored only once a first code has confirmed it.
    pub totp: Option<OperatorFactor>,
}

/// An operator's confirmed TOTP factor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorFactor {
    /// The seed, sealed with the platform key; the context binds the operator.
    pub envelope: Vec<u8>,
    pub confirmed_at: OffsetDateTime,
    /// The last time step a code was accepted for: only later steps are accepted (no replay).
    pub last_step: u64,
}

#[async_trait]
/// Operators, a platform table.
pub trait OperatorStore: Send {
    /// Fails with `StoreError::EmailTaken` when the email is registered to another operator.
    async fn insert_operator(&mut self, op: &OperatorRecord) -> Result<(), StoreError>;

    async fn operator_by_email(
        &mut self,
        email: &str,
    ) -> Result<Option<OperatorRecord>, StoreError>;

    async fn operator_by_id(
        &mut self,
        id: uuid::Uuid,
    ) -> Result<Option<OperatorRecord>, StoreError>;

    async fn set_operator_password_hash(
        &mut self,
        id: uuid::Uuid,
        hash: &str,
    ) -> Result<(), StoreError>;

    /// Puts (or, with `None`, removes) the operator's TOTP factor; returns whether the operator
    /// exists.
    async fn set_operator_totp(
        &mut self,
        id: uuid::Uuid,
        factor: Option<&OperatorFactor>,
    ) -> Result<bool, StoreError>;

    /// Records `step` as used if the factor's last step is earlier; returns whether it was
    /// (false: a replay, or no factor).
    async fn use_operator_totp_step(
        &mut self,
        id: uuid::Uuid,
        step: u64,
    ) -> Result<bool, StoreError>;
}

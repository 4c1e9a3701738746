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
}

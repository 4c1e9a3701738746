//! Custom roles: named permission sets an organisation defines.

use crate::error::StoreError;
use async_trait::async_trait;
use time::OffsetDateTime;

use crate::ids::OrgId;

/// An organisation's named permission set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomRoleRecord {
    pub org_id: OrgId,
    pub name: String,
    /// Permission names from the catalogue.
    pub permissions: Vec<String>,
    pub created_at: OffsetDateTime,
}

#[async_trait]
/// The scope's custom roles.
pub trait CustomRoleStore: Send {
    /// Fails with `StoreError::Duplicate` when the name exists.
    async fn insert_custom_role(&mut self, r: &CustomRoleRecord) -> Result<(), StoreError>;

    async fn custom_role(&mut self, name: &str) -> Result<Option<CustomRoleRecord>, StoreError>;

    async fn custom_roles(&mut self) -> Result<Vec<CustomRoleRecord>, StoreError>;

    /// Replaces the role's permissions; returns whether the role exists.
    async fn update_custom_role(
        &mut self,
        name: &str,
        permissions: &[String],
    ) -> Result<bool, StoreError>;

    /// Deletes the role; returns whether it existed.
    async fn delete_custom_role(&mut self, name: &str) -> Result<bool, StoreError>;

    /// How many members hold the role, and pending (unaccepted, unexpired at `now`) invitations
    /// would give it.
    async fn role_holders(&mut self, name: &str, now: OffsetDateTime) -> Result<u64, StoreError>;
}

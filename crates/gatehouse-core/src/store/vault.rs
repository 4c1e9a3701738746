//! Records of the shared-secrets vault (D2). Values are never here: each version's value is a
//! sealed field (`SealedKind::SharedSecret`, record = the secret's id, field = `v{version}`).

use time::OffsetDateTime;
use uuid::Uuid;

use crate::ids::OrgId;

/// A shared secret's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRecord {
    pub org_id: OrgId,
    pub id: Uuid,
    /// Unique among the organisation's secrets that are not deleted.
    pub name: String,
    pub description: Option<String>,
    /// The newest version's number (versions count from 1).
    pub current_version: u32,
    /// The audit actor id of who created it.
    pub created_by: String,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub expires_at: Option<OffsetDateTime>,
    pub deleted_at: Option<OffsetDateTime>,
}

/// One version of a secret's value (metadata only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretVersionRecord {
    pub org_id: OrgId,
    pub secret_id: Uuid,
    pub version: u32,
    pub created_by: String,
    pub created_at: OffsetDateTime,
}

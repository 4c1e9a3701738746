//! What an API key may do at use (B1, issue 18 finding 7): its own permissions, less whatever its
//! creator no longer holds. The creator is a member (bounded by their role's grants now) or
//! another key (bounded by that key's own permissions, and so on up the chain to a member). A key
//! whose creator left the organisation, or whose parent key was revoked or expired, acts with
//! nothing: it is suspended, and refused, until someone who holds its permissions makes a new one.

use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::Error;
use crate::ids::UserId;
use crate::kernel::Kernel;
use crate::store::{ApiKeyRecord, TenantTx};

/// Keys that made keys that made this one, at most: a longer chain is suspended.
const MAX_CHAIN: usize = 8;

impl Kernel {
    /// The permissions `key` acts with now; empty when it is suspended.
    pub(crate) async fn acting_permissions(
        &self,
        tx: &mut dyn TenantTx,
        key: &ApiKeyRecord,
        now: OffsetDateTime,
    ) -> Result<Vec<String>, Error> {
        let mut perms = key.permissions.clone();
        let mut creator = key.created_by.clone();
        for _ in 0..MAX_CHAIN {
            if perms.is_empty() {
                break;
            }
            let Ok(id) = Uuid::parse_str(&creator) else {
                return Ok(Vec::new());
            };
            if let Some(m) = tx.membership(UserId::from_uuid(id)).await? {
                let held = self.role_grants(tx, &m.role).await?;
                perms.retain(|p| held.contains(p));
                return Ok(perms);
            }
            match tx.api_key(id).await? {
                Some(parent) if parent.is_usable(now) => {
                    perms.retain(|p| parent.permissions.contains(p));
                    creator = parent.created_by;
                }
                _ => return Ok(Vec::new()),
            }
        }
        Ok(Vec::new())
    }
}

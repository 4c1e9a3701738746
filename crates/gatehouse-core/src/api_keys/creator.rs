//! What an API key may do at use (B1, issue 18 finding 7): its own permissions, less whatever its
//! creator no longer holds. The creator is a member (bounded by their role's grants now) or
//! another key (bounded by that key's own permissions, and so on up the chain to a member). A key
//! whose creator left the organisation, or whose parent key was revoked or expired, acts with
//! nothing: it is suspended, and refused, until someone who holds its permissions makes a new one.
//! A key whose chain leads to a member whose account an operator disabled is refused while the
//! account stays disabled (ASVS 7.4.5).
//!
//! The member at the end of the chain is the person the key acts for: while a second factor is
//! required of them and they have none, the key is refused with `second_factor_enrolment_required`
//! (issue 26), as they would be; it works again once they enrol. The cache entry remembers that
//! member, so their enrolling or removing a factor forgets it.

use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::Error;
use crate::ids::UserId;
use crate::kernel::Kernel;
use crate::store::{ApiKeyRecord, TenantTx};

/// Keys that made keys that made this one, at most: a longer chain is suspended.
const MAX_CHAIN: usize = 8;

/// What a key acts with now, and for whom.
#[derive(Debug, Clone, Default)]
pub(crate) struct Acting {
    /// Empty when the key is suspended.
    pub permissions: Vec<String>,
    /// The member at the end of its creator chain, when it reaches one.
    pub member: Option<UserId>,
}

impl Kernel {
    /// The permissions `key` acts with now (empty when it is suspended) and the member it acts
    /// for.
    pub(crate) async fn acting_permissions(
        &self,
        tx: &mut dyn TenantTx,
        key: &ApiKeyRecord,
        now: OffsetDateTime,
    ) -> Result<Acting, Error> {
        let mut perms = key.permissions.clone();
        let mut creator = key.created_by.clone();
        for _ in 0..MAX_CHAIN {
            if perms.is_empty() {
                break;
            }
            let Ok(id) = Uuid::parse_str(&creator) else {
                return Ok(Acting::default());
            };
            let user = UserId::from_uuid(id);
            if let Some(m) = tx.membership(user).await? {
                let held = self.role_grants(tx, &m.role).await?;
                perms.retain(|p| held.contains(p));
                return Ok(Acting {
                    permissions: perms,
                    member: Some(user),
                });
            }
            match tx.api_key(id).await? {
                Some(parent) if parent.is_usable(now) => {
                    perms.retain(|p| parent.permissions.contains(p));
                    creator = parent.created_by;
                }
                _ => return Ok(Acting::default()),
            }
        }
        Ok(Acting::default())
    }

    /// Whether `user`'s account is disabled. A transaction of its own: the key was read inside
    /// its organisation, where accounts are not visible. Only a key missing from the cache pays
    /// for it, and every disable and re-enable empties the cache of the account's organisations
    /// on every instance (the membership fan-out).
    pub(crate) async fn account_disabled(&self, user: UserId) -> Result<bool, Error> {
        let mut tx = self.store().begin_read().await?;
        Ok(tx
            .user_by_id(user)
            .await?
            .is_some_and(|u| u.disabled_at.is_some()))
    }
}

//! Transit keys: each data-key version's transit root (`gatehouse_crypto::TransitKey`), derived
//! from the unwrapped data key and cached beside it. Transit ciphertexts live with the caller,
//! where re-encryption cannot reach them, so a version stays usable for transit until the
//! organisation raises its transit floor (`TenantTx::transit_floor`); re-encryption retires no
//! version at or above the floor.

use std::sync::{Arc, PoisonError};

use gatehouse_crypto::TransitKey;

use super::Keyring;
use crate::error::Error;
use crate::store::{KeyState, TenantTx};

impl Keyring {
    /// The transit root of data-key `version` of the transaction's organisation.
    pub async fn transit_key(
        &self,
        tx: &mut dyn TenantTx,
        version: u32,
    ) -> Result<Arc<TransitKey>, Error> {
        let org = tx.scope().org_id();
        // As for sealing: the key row is read on every use, so a retired or shredded version
        // stops working at once everywhere.
        let record = tx
            .org_keys()
            .await?
            .into_iter()
            .find(|k| k.version == version && k.state == KeyState::Active);
        let Some(record) = record else {
            self.evict_org(org);
            return Err(self.missing_key(tx, version).await);
        };
        if let Some(k) = self
            .transit
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(org, version))
        {
            return Ok(Arc::clone(k));
        }
        let raw = self.unwrap_raw(org, &record)?;
        let key = Arc::new(TransitKey::derive(&raw));
        self.transit
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((org, version), Arc::clone(&key));
        Ok(key)
    }

    /// The newest active data-key version (creating version 1 for an organisation with none).
    pub async fn newest_version(&self, tx: &mut dyn TenantTx) -> Result<u32, Error> {
        let newest = tx
            .org_keys()
            .await?
            .into_iter()
            .filter(|k| k.state == KeyState::Active)
            .map(|k| k.version)
            .max();
        match newest {
            Some(v) => Ok(v),
            None => self.add_dek_version(tx).await,
        }
    }
}

//! Transit keys: each data-key version's transit root (`gatehouse_crypto::TransitKey`), derived
//! from the unwrapped data key. Transit ciphertexts live with the caller, where re-encryption
//! cannot reach them, so a version stays usable for transit until the organisation raises its
//! transit floor (`TenantTx::transit_floor`); re-encryption retires no version at or above it.
//!
//! Transit is a data-plane hot path, so an organisation's transit state (floor, newest version,
//! the roots of the usable versions) is cached for at most one second. Changes made in this
//! process (rotation, a raised floor, retirement, shredding) drop the entry at once; changes made
//! by another process or instance apply here within that second.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use gatehouse_crypto::TransitKey;

use super::Keyring;
use crate::error::Error;
use crate::ids::OrgId;
use crate::store::{KeyState, TenantTx};

const TTL: Duration = Duration::from_secs(1);

/// What transit needs of one organisation's keys.
#[derive(Debug, Clone)]
pub struct TransitState {
    /// The lowest version a ciphertext may use.
    pub floor: u32,
    /// The version new ciphertexts use.
    pub newest: u32,
    /// The roots of the active versions from `floor` to `newest`.
    pub keys: HashMap<u32, Arc<TransitKey>>,
}

#[derive(Debug)]
pub(super) struct Cached {
    state: Arc<TransitState>,
    loaded: Instant,
}

impl Keyring {
    /// The organisation's cached transit state, if fresh.
    #[must_use]
    pub fn cached_transit(&self, org: OrgId) -> Option<Arc<TransitState>> {
        let map = self.transit.read().unwrap_or_else(PoisonError::into_inner);
        map.get(&org)
            .filter(|c| c.loaded.elapsed() < TTL)
            .map(|c| Arc::clone(&c.state))
    }

    /// Reads the transit state inside `tx` (the floor must already be set) and caches it.
    pub async fn load_transit(
        &self,
        tx: &mut dyn TenantTx,
        floor: u32,
    ) -> Result<Arc<TransitState>, Error> {
        let org = tx.scope().org_id();
        let records = tx.org_keys().await?;
        let newest = records
            .iter()
            .filter(|k| k.state == KeyState::Active)
            .map(|k| k.version)
            .max()
            .ok_or_else(|| self.missing_key_sync(org))?;
        let mut keys = HashMap::new();
        for r in records
            .iter()
            .filter(|k| k.state == KeyState::Active && k.version >= floor)
        {
            let raw = self.unwrap_raw(org, r)?;
            keys.insert(r.version, Arc::new(TransitKey::derive(&raw)));
        }
        let state = Arc::new(TransitState {
            floor,
            newest,
            keys,
        });
        self.transit
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                org,
                Cached {
                    state: Arc::clone(&state),
                    loaded: Instant::now(),
                },
            );
        Ok(state)
    }

    fn missing_key_sync(&self, org: OrgId) -> Error {
        Error::Unreadable(format!("organisation {org} has no active data key"))
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

    /// Drops the organisation's cached transit state (after a change to its keys or floor).
    pub fn forget_transit(&self, org: OrgId) {
        self.transit
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&org);
    }
}

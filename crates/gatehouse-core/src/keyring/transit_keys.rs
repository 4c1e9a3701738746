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
    /// `None` once forgotten: a load that started before the change must not put its stale
    /// state back (see `generation`).
    state: Option<Arc<TransitState>>,
    loaded: Instant,
    /// Bumped by every `forget_transit`.
    generation: u64,
}

impl Keyring {
    /// The organisation's cached transit state, if fresh.
    #[must_use]
    pub fn cached_transit(&self, org: OrgId) -> Option<Arc<TransitState>> {
        let found = {
            let map = self.transit.read().unwrap_or_else(PoisonError::into_inner);
            map.get(&org)
                .filter(|c| c.loaded.elapsed() < TTL)
                .and_then(|c| c.state.clone())
        };
        crate::telemetry::metrics::cache("transit", found.is_some());
        found
    }

    /// The organisation's cache generation, read before loading: `load_transit` stores its
    /// result only if no `forget_transit` happened meanwhile.
    #[must_use]
    pub fn transit_generation(&self, org: OrgId) -> u64 {
        self.transit
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&org)
            .map_or(0, |c| c.generation)
    }

    /// Reads the transit state inside `tx` (the floor must already be set) and caches it.
    pub async fn load_transit(
        &self,
        tx: &mut dyn TenantTx,
        floor: u32,
        generation: u64,
    ) -> Result<Arc<TransitState>, Error> {
        let org = tx.scope().org_id();
        let records = tx.org_keys().await?;
        let Some(newest) = records
            .iter()
            .filter(|k| k.state == KeyState::Active)
            .map(|k| k.version)
            .max()
        else {
            return Err(match tx.organization().await? {
                Some(o) if o.keys_shredded_at.is_some() => Error::KeysShredded,
                _ => Error::Unreadable(format!("organisation {org} has no active data key")),
            });
        };
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
        let mut map = self.transit.write().unwrap_or_else(PoisonError::into_inner);
        // Expired entries go, so a shredded organisation's roots do not linger in memory.
        map.retain(|_, c| c.loaded.elapsed() < TTL || c.state.is_none());
        let current = map.get(&org).map_or(0, |c| c.generation);
        if current == generation {
            map.insert(
                org,
                Cached {
                    state: Some(Arc::clone(&state)),
                    loaded: Instant::now(),
                    generation,
                },
            );
        }
        Ok(state)
    }

    /// How long another instance may keep using its cached transit state.
    #[must_use]
    pub fn transit_cache_bound() -> Duration {
        TTL
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
        let mut map = self.transit.write().unwrap_or_else(PoisonError::into_inner);
        let generation = map.get(&org).map_or(0, |c| c.generation).wrapping_add(1);
        map.insert(
            org,
            Cached {
                state: None,
                loaded: Instant::now(),
                generation,
            },
        );
    }
}

//! Data keys confirmed active, for the data plane's hot read paths (a connector's token handed
//! out). Opening a sealed value normally reads the organisation's key rows in the caller's
//! transaction, so a key retired or shredded by another process is never used again; a hot path
//! that holds no transaction may instead open with a cached key whose row was read as active
//! within the last second, as transit does (`transit_keys.rs`). Changes made in this process
//! (re-encryption's retirement, a master-key rewrap, shredding) forget the organisation's
//! confirmations at once; changes made by another process or instance apply here within that
//! second. The keys themselves stay in the keyring's cache (`Keyring::deks`, zeroed on drop).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use gatehouse_crypto::SecretBytes;

use super::Keyring;
use super::fields::field_context;
use crate::error::Error;
use crate::ids::OrgId;
use crate::store::SealedRecord;

/// How long a key row read as active is trusted without reading it again.
const TTL: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
pub(super) struct Confirmed {
    at: RwLock<HashMap<(OrgId, u32), Instant>>,
    /// Moves at every forget: a read that began before it does not record what it read.
    generation: AtomicU64,
}

impl Confirmed {
    pub(super) fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// `version` of `org` was read as active in a read that began at `read_at`.
    pub(super) fn note(&self, org: OrgId, version: u32, read_at: u64) {
        let mut at = self.at.write().unwrap_or_else(PoisonError::into_inner);
        if self.generation.load(Ordering::SeqCst) != read_at {
            return;
        }
        // Expired confirmations go, so the map holds at most the organisations used in a second.
        at.retain(|_, t| t.elapsed() < TTL);
        at.insert((org, version), Instant::now());
    }

    fn fresh(&self, org: OrgId, version: u32) -> bool {
        self.at
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(org, version))
            .is_some_and(|t| t.elapsed() < TTL)
    }

    pub(super) fn forget(&self, org: OrgId) {
        let mut at = self.at.write().unwrap_or_else(PoisonError::into_inner);
        self.generation.fetch_add(1, Ordering::SeqCst);
        at.retain(|(o, _), _| *o != org);
    }
}

impl Keyring {
    /// Opens `record` (sealed for `org`) without a transaction when its data key is cached and
    /// its row was read as active within the last second; `None` otherwise (open it through a
    /// transaction, which confirms the key again).
    pub(crate) fn open_confirmed(
        &self,
        org: OrgId,
        record: &SealedRecord,
    ) -> Option<Result<SecretBytes, Error>> {
        if !self.confirmed.fresh(org, record.dek_version) {
            return None;
        }
        let key = self
            .deks
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(org, record.dek_version))
            .map(Arc::clone)?;
        Some(
            key.open_envelope(
                &record.envelope,
                &field_context(org, &record.kind, &record.record_id, &record.field),
            )
            .map_err(|e| Error::Unreadable(e.to_string())),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_confirmation_is_forgotten_with_its_organisation_and_a_stale_read_is_not_noted() {
        let c = Confirmed::default();
        let (a, b) = (
            OrgId::from_uuid(uuid::Uuid::from_u128(1)),
            OrgId::from_uuid(uuid::Uuid::from_u128(2)),
        );
        c.note(a, 1, c.generation());
        c.note(b, 1, c.generation());
        assert!(c.fresh(a, 1) && c.fresh(b, 1) && !c.fresh(a, 2));
        // A retirement or shredding in this process: that organisation's keys are read again.
        c.forget(a);
        assert!(!c.fresh(a, 1) && c.fresh(b, 1));
        // A read that began before the change does not confirm what it read.
        let before = c.generation();
        c.forget(a);
        c.note(a, 1, before);
        assert!(!c.fresh(a, 1));
    }
}

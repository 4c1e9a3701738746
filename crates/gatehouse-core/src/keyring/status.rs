//! What `gatehouse keys status` shows: master-key versions, and per organisation its data-key
//! versions with how many values each still seals.

use super::Keyring;
use crate::error::Error;
use crate::ids::OrgId;
use crate::scope::TenantScope;
use crate::store::{KekVersionRecord, KeyState};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DekVersionStatus {
    pub version: u32,
    pub state: KeyState,
    pub kek_version: u32,
    pub encryptions: u64,
    pub sealed_values: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgKeyStatus {
    pub org_id: OrgId,
    pub shredded: bool,
    pub versions: Vec<DekVersionStatus>,
    /// Sealed values below the newest version: the re-encryption job's remaining work.
    pub pending_reencryption: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyringStatus {
    pub kek_current: u32,
    pub kek_versions: Vec<KekVersionRecord>,
    pub orgs: Vec<OrgKeyStatus>,
}

impl Keyring {
    pub async fn status(&self) -> Result<KeyringStatus, Error> {
        let mut tx = self.store.begin().await?;
        let kek_versions = tx.kek_versions().await?;
        drop(tx);
        let mut orgs = Vec::new();
        for org in self.organization_ids().await? {
            orgs.push(self.org_status(org).await?);
        }
        Ok(KeyringStatus {
            kek_current: self.kek_version,
            kek_versions,
            orgs,
        })
    }

    pub async fn org_status(&self, org: OrgId) -> Result<OrgKeyStatus, Error> {
        let mut tx = self
            .store
            .begin_read_scoped(&TenantScope::granted(org))
            .await?;
        let shredded = tx
            .organization()
            .await?
            .is_some_and(|o| o.keys_shredded_at.is_some());
        let counts = tx.sealed_counts().await?;
        let keys = tx.org_keys().await?;
        let count_of = |v: u32| {
            counts
                .iter()
                .find(|(version, _)| *version == v)
                .map_or(0, |(_, n)| *n)
        };
        let newest = keys
            .iter()
            .filter(|k| k.state == KeyState::Active)
            .map(|k| k.version)
            .max()
            .unwrap_or(0);
        Ok(OrgKeyStatus {
            org_id: org,
            shredded,
            pending_reencryption: counts
                .iter()
                .filter(|(v, _)| *v < newest)
                .map(|(_, n)| n)
                .sum(),
            versions: keys
                .iter()
                .map(|k| DekVersionStatus {
                    version: k.version,
                    state: k.state,
                    kek_version: k.kek_version,
                    encryptions: k.encryptions,
                    sealed_values: count_of(k.version),
                })
                .collect(),
        })
    }
}

//! The keyring (D1): the one owner of key material.
//!
//! - The **master key** (KEK) is supplied from outside (environment, file, or the development file)
//!   and known to the store only by a check value per version, so a wrong key is refused at start.
//! - Each organisation has **data keys** (DEKs): random 256-bit keys stored only wrapped under the
//!   KEK (AES-256-GCM; the header binds KEK and DEK versions, the context binds the organisation),
//!   unwrapped on first use and cached in memory in types that zero or cleanse on drop.
//! - Every sealed field is an envelope (see `gatehouse_crypto::aead`) whose associated data binds
//!   organisation, kind, record id and field, stored in one table so re-encryption can walk it.
//! - Nonces are random, so each DEK version has an encryption budget: every seal counts one
//!   encryption in the same transaction, and reaching `max_encryptions_per_key` (default 2^30, a
//!   quarter of the 2^32 bound for random 96-bit nonces) adds a new version for later writes.
//!
//! Nothing outside this module sees key bytes: callers seal and open through a `TenantTx`.

mod confirmed;
mod fields;
pub mod kek;
mod link_keys;
mod personal;
mod platform;
mod rotation;
mod signing;
mod status;
mod transit_keys;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};

use gatehouse_crypto::{AeadKey, EnvelopeHeader, Key32, context, random_key};

use crate::clock::Clock;
use crate::error::Error;
use crate::ids::OrgId;
use crate::store::{KekVersionRecord, KeyState, OrgKeyRecord, Store, TenantTx};

pub use fields::{FieldRef, SealedKind};
pub use kek::{KekError, LocalKek, MasterKek};
pub use personal::PersonalData;
pub use rotation::ReencryptReport;
pub use signing::TokenKey;
pub use status::{KeyringStatus, OrgKeyStatus};
pub use transit_keys::TransitState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyringSettings {
    /// Encryptions per data-key version before a new version is added.
    pub max_encryptions_per_key: u64,
    /// How long a link key still verifies after a newer one was made (see `link_keys.rs`).
    pub link_key_overlap: time::Duration,
}

impl Default for KeyringSettings {
    fn default() -> Self {
        Self {
            max_encryptions_per_key: 1 << 30,
            link_key_overlap: time::Duration::days(30),
        }
    }
}

/// Why the keyring could not start. Each message says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyringError {
    #[error(
        "the master key does not match any master-key version this database was sealed with \
         (known versions: {known:?}); supply the right GATEHOUSE_MASTER_KEY or master_key_file"
    )]
    WrongMasterKey { known: Vec<u32> },
    #[error(
        "the master key is version {version}, which was retired by a rotation; supply the current \
         master key"
    )]
    RetiredMasterKey { version: u32 },
    #[error("the keyring could not start: {0}")]
    Other(String),
}

#[derive(Debug)]
pub struct Keyring {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    kek: Arc<dyn MasterKek>,
    kek_version: u32,
    deks: RwLock<HashMap<(OrgId, u32), Arc<AeadKey>>>,
    /// Which cached data keys were read as active lately (see `confirmed.rs`).
    confirmed: confirmed::Confirmed,
    transit: RwLock<HashMap<OrgId, transit_keys::Cached>>,
    /// The current checkpoint-signing key, loaded at start.
    signer: OnceLock<(u32, gatehouse_crypto::SigningKey)>,
    /// The platform data key (see `platform.rs`), loaded at start.
    platform: OnceLock<(u32, Arc<AeadKey>)>,
    links: link_keys::LinkKeys,
    settings: KeyringSettings,
}

fn dek_context(org: OrgId) -> Vec<u8> {
    context("gatehouse.dek.v1", &[org.as_uuid().as_bytes()])
}

impl Keyring {
    /// Opens the keyring with a master key held in memory. A database with no master-key version
    /// yet records this key as version 1.
    pub async fn start(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        master: &Key32,
        settings: KeyringSettings,
    ) -> Result<Self, KeyringError> {
        let kek = LocalKek::new(master).map_err(|e| KeyringError::Other(e.to_string()))?;
        Self::start_with(store, clock, Arc::new(kek), settings).await
    }

    /// Opens the keyring with the configured master key, wherever it is held. A database with no
    /// master-key version yet records this key as version 1.
    pub async fn start_with(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        kek: Arc<dyn MasterKek>,
        settings: KeyringSettings,
    ) -> Result<Self, KeyringError> {
        let other = |e: &dyn std::fmt::Display| KeyringError::Other(e.to_string());
        // A block, so the transaction ends (commit or rollback) before the signer's begins:
        // SQLite has one writer at a time.
        let kek_version = {
            let mut tx = store.begin().await.map_err(|e| other(&e))?;
            // Before looking: another instance starting at this moment either registered the
            // key already (and it is found) or waits until this one has.
            tx.lock_key_material().await.map_err(|e| other(&e))?;
            let versions = tx.kek_versions().await.map_err(|e| other(&e))?;
            let mut found = None;
            for v in &versions {
                if kek.recognises(&v.check_value).map_err(|e| other(&e))? {
                    found = Some(v);
                    break;
                }
            }
            match found {
                Some(v) if v.state == KeyState::Retired => {
                    return Err(KeyringError::RetiredMasterKey { version: v.version });
                }
                Some(v) => v.version,
                None if versions.is_empty() => {
                    tx.insert_kek_version(&KekVersionRecord {
                        version: 1,
                        check_value: kek.new_check_value(1).map_err(|e| other(&e))?,
                        state: KeyState::Active,
                        created_at: clock.now(),
                    })
                    .await
                    .map_err(|e| other(&e))?;
                    let proof = crate::audit::append_operator(
                        tx.as_mut(),
                        clock.as_ref(),
                        crate::audit::AuditEvent::success(
                            crate::audit::Actor::system("keyring"),
                            "keyring.master_key_registered",
                            "master_key",
                            1,
                        ),
                    )
                    .await
                    .map_err(|e| other(&e))?;
                    tx.commit(proof).await.map_err(|e| other(&e))?;
                    1
                }
                None => {
                    return Err(KeyringError::WrongMasterKey {
                        known: versions.iter().map(|v| v.version).collect(),
                    });
                }
            }
        };
        let keyring = Self {
            store,
            clock,
            kek,
            kek_version,
            deks: RwLock::new(HashMap::new()),
            confirmed: confirmed::Confirmed::default(),
            transit: RwLock::new(HashMap::new()),
            signer: OnceLock::new(),
            platform: OnceLock::new(),
            links: link_keys::LinkKeys::default(),
            settings,
        };
        let signer = keyring.load_signer().await.map_err(|e| other(&e))?;
        let _ = keyring.signer.set(signer);
        let platform = keyring.load_platform_key().await.map_err(|e| other(&e))?;
        let _ = keyring.platform.set(platform);
        keyring.reload_link_keys().await.map_err(|e| other(&e))?;
        Ok(keyring)
    }

    /// A write transaction holding the key-material lock, for creating the first key of a
    /// kind: look (again) inside it, and create only when still absent, so that of several
    /// instances starting at once one creates and the rest use what it stored.
    pub(crate) async fn begin_key_creation(
        &self,
    ) -> Result<Box<dyn crate::store::PlatformTx>, Error> {
        let mut tx = self.store.begin().await?;
        tx.lock_key_material().await?;
        Ok(tx)
    }

    #[must_use]
    pub fn kek_version(&self) -> u32 {
        self.kek_version
    }

    #[must_use]
    pub fn settings(&self) -> KeyringSettings {
        self.settings
    }

    fn cached(&self, org: OrgId, version: u32) -> Option<Arc<AeadKey>> {
        let found = self
            .deks
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(org, version))
            .cloned();
        crate::telemetry::metrics::cache("data_key", found.is_some());
        found
    }

    fn evict_org(&self, org: OrgId) {
        self.deks
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|(o, _), _| *o != org);
        self.confirmed.forget(org);
        self.forget_transit(org);
    }

    /// The data key `version` of the transaction's organisation, unwrapped.
    async fn dek(&self, tx: &mut dyn TenantTx, version: u32) -> Result<Arc<AeadKey>, Error> {
        let org = tx.scope().org_id();
        let read_at = self.confirmed.generation();
        // The key row is read on every use, cache or not: another process (the CLI, another
        // instance) may have retired or shredded it, and a cached key must not outlive that
        // (`open_confirmed` trusts this read for a second).
        let record = tx
            .org_keys()
            .await?
            .into_iter()
            .find(|k| k.version == version && k.state == KeyState::Active);
        let Some(record) = record else {
            self.evict_org(org);
            return Err(self.missing_key(tx, version).await);
        };
        if let Some(k) = self.cached(org, version) {
            self.confirmed.note(org, version, read_at);
            return Ok(k);
        }
        let key = self.unwrap_record(org, &record)?;
        self.deks
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((org, version), Arc::clone(&key));
        self.confirmed.note(org, version, read_at);
        Ok(key)
    }

    fn unwrap_record(&self, org: OrgId, record: &OrgKeyRecord) -> Result<Arc<AeadKey>, Error> {
        let raw = self.unwrap_raw(org, record)?;
        AeadKey::new(&raw)
            .map(Arc::new)
            .map_err(|e| Error::Internal(e.to_string()))
    }

    fn unwrap_raw(&self, org: OrgId, record: &OrgKeyRecord) -> Result<Key32, Error> {
        if record.kek_version != self.kek_version {
            return Err(Error::Unreadable(format!(
                "data key {} is wrapped under master-key version {} but this keyring holds version {}; \
                 finish `gatehouse keys rotate-master`",
                record.version, record.kek_version, self.kek_version
            )));
        }
        self.kek
            .unwrap(&record.wrapped, &dek_context(org))
            .map_err(|e| Error::Unreadable(format!("data key {}: {e}", record.version)))
    }

    async fn missing_key(&self, tx: &mut dyn TenantTx, version: u32) -> Error {
        match tx.organization().await {
            Ok(Some(o)) if o.keys_shredded_at.is_some() => Error::KeysShredded,
            Ok(_) => Error::Unreadable(format!("data key version {version} does not exist")),
            Err(e) => e.into(),
        }
    }

    /// The newest active data key, creating version 1 for an organisation that has none.
    async fn current_dek(&self, tx: &mut dyn TenantTx) -> Result<(u32, Arc<AeadKey>), Error> {
        let newest = tx
            .org_keys()
            .await?
            .into_iter()
            .filter(|k| k.state == KeyState::Active)
            .map(|k| k.version)
            .max();
        let version = match newest {
            Some(v) => v,
            None => self.add_dek_version(tx).await?,
        };
        Ok((version, self.dek(tx, version).await?))
    }

    /// Adds a data-key version for the transaction's organisation; new writes use it.
    async fn add_dek_version(&self, tx: &mut dyn TenantTx) -> Result<u32, Error> {
        let org = tx.scope().org_id();
        if let Some(o) = tx.organization().await?
            && o.keys_shredded_at.is_some()
        {
            return Err(Error::KeysShredded);
        }
        let version = tx
            .org_keys()
            .await?
            .iter()
            .map(|k| k.version)
            .max()
            .unwrap_or(0)
            + 1;
        let raw = random_key().map_err(|e| Error::Internal(e.to_string()))?;
        let wrapped = self
            .kek
            .wrap(
                EnvelopeHeader {
                    kek_version: self.kek_version,
                    dek_version: version,
                },
                &dek_context(org),
                &raw,
            )
            .map_err(|e| Error::Internal(e.to_string()))?;
        tx.insert_org_key(&OrgKeyRecord {
            org_id: org,
            version,
            wrapped,
            kek_version: self.kek_version,
            state: KeyState::Active,
            encryptions: 0,
            created_at: self.clock.now(),
        })
        .await?;
        tracing::info!(org_id = %org, version, "added a data-key version");
        Ok(version)
    }
}

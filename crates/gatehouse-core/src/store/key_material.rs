//! The platform's wrapped key material: master-key versions (known by check values), audit signing keys and platform keys.

use crate::error::StoreError;
use async_trait::async_trait;
use time::OffsetDateTime;

use crate::audit::SigningKeyRecord;

/// Whether a key version may still be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    Active,
    /// No longer used; for data keys the wrapped material has been erased.
    Retired,
}

impl KeyState {
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Retired => "retired",
        }
    }

    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "retired" => Some(Self::Retired),
            _ => None,
        }
    }
}

/// A master-key version, known by a check value (an HMAC under the key), never the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KekVersionRecord {
    pub version: u32,
    pub check_value: Vec<u8>,
    pub state: KeyState,
    pub created_at: OffsetDateTime,
}

/// A random key for platform-owned sealed values (TOTP seeds, queued mail), stored only wrapped
/// under the master key, like the signing keys, and rewrapped with them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformKeyRecord {
    pub version: u32,
    pub wrapped: Vec<u8>,
    pub kek_version: u32,
    pub created_at: OffsetDateTime,
}

#[async_trait]
/// Key material owned by the keyring; nothing here is ever stored unwrapped.
pub trait KeyMaterialStore: Send {
    /// Waits for, then holds until this transaction ends, the lock every transaction that may
    /// create the first key of a kind takes before it looks: several instances starting at once
    /// on a new database take turns, and each after the first finds the keys the first stored
    /// (and uses them) instead of inserting its own. PostgreSQL: a transaction-scoped advisory
    /// lock. SQLite: nothing to do, a write transaction already excludes every other writer,
    /// in this process or another.
    async fn lock_key_material(&mut self) -> Result<(), StoreError>;

    async fn kek_versions(&mut self) -> Result<Vec<KekVersionRecord>, StoreError>;

    async fn insert_kek_version(&mut self, kek: &KekVersionRecord) -> Result<(), StoreError>;

    async fn set_kek_state(&mut self, version: u32, state: KeyState) -> Result<(), StoreError>;

    async fn signing_keys(&mut self) -> Result<Vec<SigningKeyRecord>, StoreError>;

    async fn insert_signing_key(&mut self, key: &SigningKeyRecord) -> Result<(), StoreError>;

    async fn rewrap_signing_key(
        &mut self,
        version: u32,
        wrapped: &[u8],
        kek_version: u32,
    ) -> Result<(), StoreError>;

    async fn platform_keys(&mut self) -> Result<Vec<PlatformKeyRecord>, StoreError>;

    async fn insert_platform_key(&mut self, k: &PlatformKeyRecord) -> Result<(), StoreError>;

    async fn rewrap_platform_key(
        &mut self,
        version: u32,
        wrapped: &[u8],
        kek_version: u32,
    ) -> Result<(), StoreError>;

    /// The link keys (see the keyring's `link_keys.rs`), in the platform key's shape.
    async fn link_keys(&mut self) -> Result<Vec<PlatformKeyRecord>, StoreError>;

    async fn insert_link_key(&mut self, k: &PlatformKeyRecord) -> Result<(), StoreError>;

    async fn rewrap_link_key(
        &mut self,
        version: u32,
        wrapped: &[u8],
        kek_version: u32,
    ) -> Result<(), StoreError>;
}

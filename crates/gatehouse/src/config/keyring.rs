//! `[keyring]`: the data keys' nonce budget and the background re-encryption job.

use std::time::Duration;

use gatehouse_core::keyring::KeyringSettings;
use serde::{Deserialize, Serialize};

use super::{ConfigError, refuse};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeyringConfig {
    /// Encryptions per data-key version before a new version is added (random 96-bit nonces:
    /// must stay well below 2^32).
    pub max_encryptions_per_key: u64,
    /// How often the background job moves sealed values to the newest data key.
    pub reencrypt_interval_secs: u64,
    /// Values re-encrypted per transaction.
    pub reencrypt_batch: u32,
    /// How long, after `gatehouse keys rotate-link-key`, links signed with the older key (share
    /// viewer passes, unsubscribe links already in inboxes) still verify.
    pub link_key_overlap_days: u32,
}

impl Default for KeyringConfig {
    fn default() -> Self {
        Self {
            max_encryptions_per_key: KeyringSettings::default().max_encryptions_per_key,
            reencrypt_interval_secs: 60,
            reencrypt_batch: 500,
            link_key_overlap_days: 30,
        }
    }
}

#[derive(Debug, Clone)]
pub struct KeyringJobSettings {
    pub keyring: KeyringSettings,
    pub reencrypt_every: Duration,
    pub reencrypt_batch: u32,
}

pub(super) fn validate(c: &KeyringConfig) -> Result<KeyringJobSettings, ConfigError> {
    if c.max_encryptions_per_key == 0 || c.max_encryptions_per_key > 1 << 31 {
        return refuse(
            "keyring.max_encryptions_per_key: must be between 1 and 2147483648 (2^31), well below \
             the 2^32 bound for random 96-bit nonces",
        );
    }
    if c.reencrypt_interval_secs == 0 || c.reencrypt_batch == 0 {
        return refuse(
            "keyring.reencrypt_interval_secs and keyring.reencrypt_batch: must be at least 1",
        );
    }
    if c.link_key_overlap_days > 3650 {
        return refuse("keyring.link_key_overlap_days: must be at most 3650 (ten years)");
    }
    Ok(KeyringJobSettings {
        keyring: KeyringSettings {
            max_encryptions_per_key: c.max_encryptions_per_key,
            link_key_overlap: time::Duration::days(i64::from(c.link_key_overlap_days)),
        },
        reencrypt_every: Duration::from_secs(c.reencrypt_interval_secs),
        reencrypt_batch: c.reencrypt_batch,
    })
}

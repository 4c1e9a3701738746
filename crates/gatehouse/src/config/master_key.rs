//! `GATEHOUSE_MASTER_KEY`, `master_key_file` or `[master_key_pkcs11]`: where the master key comes
//! from (never the TOML file; see `refuse_secrets_in_file`).

use std::path::PathBuf;

use gatehouse_crypto::Key32;

use super::{ConfigError, RawConfig, pkcs11, refuse};
use crate::keyfile;

/// Where the master key comes from. The key itself is read when the app is built.
#[derive(Debug, Clone)]
pub enum MasterKey {
    Environment(Key32),
    File(PathBuf, Key32),
    /// Development only: generated on first start into the data directory.
    GeneratedDevelopment(PathBuf),
    /// `master_key = "shares"`: `serve` starts sealed until operators submit enough shares.
    Shares,
    /// An AES-256 key inside an HSM, used through PKCS#11; its bytes never reach Gatehouse.
    Pkcs11(gatehouse_infra::pkcs11::Pkcs11Settings),
}

pub(super) const SHARES: &str = "shares";

pub(super) fn validate(
    raw: &RawConfig,
    env: Option<&str>,
    pin_env: Option<&str>,
    production: bool,
) -> Result<MasterKey, ConfigError> {
    if let Some(setting) = &raw.master_key {
        if setting != SHARES {
            return refuse(
                "master_key: the only value is \"shares\" (the key itself never goes here)",
            );
        }
        if env.is_some() || raw.master_key_file.is_some() || raw.master_key_pkcs11.is_set() {
            return refuse(
                "master_key: \"shares\" is set together with GATEHOUSE_MASTER_KEY, \
                 master_key_file or [master_key_pkcs11]; supply the master key one way only",
            );
        }
        return Ok(MasterKey::Shares);
    }
    if raw.master_key_pkcs11.is_set() {
        if env.is_some() || raw.master_key_file.is_some() {
            return refuse(
                "master_key_pkcs11: set together with GATEHOUSE_MASTER_KEY or master_key_file; \
                 supply the master key one way only",
            );
        }
        return pkcs11::validate("master_key_pkcs11", &raw.master_key_pkcs11, pin_env)
            .map(MasterKey::Pkcs11);
    }
    if let Some(text) = env {
        if raw.master_key_file.is_some() {
            return refuse(
                "master_key_file: set together with GATEHOUSE_MASTER_KEY; supply the master key \
                 one way only",
            );
        }
        let key = Key32::from_base64(text)
            .map_err(|e| ConfigError(format!("GATEHOUSE_MASTER_KEY: {e}")))?;
        return Ok(MasterKey::Environment(key));
    }
    if let Some(path) = &raw.master_key_file {
        let key = keyfile::read(path).map_err(|e| ConfigError(format!("master_key_file: {e}")))?;
        return Ok(MasterKey::File(path.clone(), key));
    }
    if production {
        return refuse(
            "master_key: production mode needs a master key supplied with GATEHOUSE_MASTER_KEY \
             (base64 of 32 random bytes), master_key_file or [master_key_pkcs11]; the generated \
             development key is refused",
        );
    }
    Ok(MasterKey::GeneratedDevelopment(
        raw.data_dir.join("master.key"),
    ))
}

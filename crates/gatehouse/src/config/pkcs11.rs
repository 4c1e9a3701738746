//! `[master_key_pkcs11]` (D1): the master key is an AES-256 key inside an HSM, used through the
//! HSM's PKCS#11 module; Gatehouse never sees its bytes. The PIN comes from
//! `GATEHOUSE_PKCS11_PIN` or `pin_file` (mode 0600), never from the TOML file.

use std::path::PathBuf;

use gatehouse_crypto::SecretString;
use gatehouse_infra::pkcs11::Pkcs11Settings;
use serde::{Deserialize, Serialize};

use super::{ConfigError, refuse};
use crate::keyfile;

/// The environment variable that may carry the PIN instead of `pin_file`.
pub const PIN_ENV: &str = "GATEHOUSE_PKCS11_PIN";

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Pkcs11Config {
    /// The vendor's PKCS#11 library, an absolute path (SoftHSM2:
    /// `/usr/lib/softhsm/libsofthsm2.so`). Setting it makes the HSM the master key's source.
    pub module: Option<PathBuf>,
    /// The label of the token (partition, slot) that holds the key.
    pub token_label: Option<String>,
    /// The label (`CKA_LABEL`) of the AES-256 key on that token.
    pub key_label: Option<String>,
    /// A file (mode 0600) holding the user PIN; or set `GATEHOUSE_PKCS11_PIN`.
    pub pin_file: Option<PathBuf>,
}

impl Pkcs11Config {
    #[must_use]
    pub fn is_set(&self) -> bool {
        *self != Self::default()
    }
}

/// Checks a `[master_key_pkcs11]` section (or the same settings given to `keys rotate-master`)
/// and reads the PIN. `name` prefixes each message, so it names the setting the operator wrote.
pub(crate) fn validate(
    name: &str,
    raw: &Pkcs11Config,
    pin_env: Option<&str>,
) -> Result<Pkcs11Settings, ConfigError> {
    let Some(module) = &raw.module else {
        return refuse(format!(
            "{name}.module: required (the absolute path of the HSM's PKCS#11 library)"
        ));
    };
    if !module.is_absolute() {
        return refuse(format!(
            "{name}.module: {} is not an absolute path; a relative library path would be looked \
             up in the loader's search path, which an attacker may control",
            module.display()
        ));
    }
    if !module.is_file() {
        return refuse(format!(
            "{name}.module: {} does not exist or is not a file",
            module.display()
        ));
    }
    let label = |field: &str, value: &Option<String>, max: usize| match value.as_deref() {
        Some(v) if !v.trim().is_empty() && v.len() <= max => Ok(v.to_owned()),
        Some(v) if v.len() > max => refuse(format!("{name}.{field}: longer than {max} bytes")),
        _ => refuse(format!("{name}.{field}: required and not empty")),
    };
    // PKCS#11 token labels are 32 bytes, padded with spaces.
    let token_label = label("token_label", &raw.token_label, 32)?;
    let key_label = label("key_label", &raw.key_label, 256)?;
    let pin = match (&raw.pin_file, pin_env) {
        (Some(_), Some(_)) => {
            return refuse(format!(
                "{name}.pin_file: set together with {PIN_ENV}; supply the PIN one way only"
            ));
        }
        (Some(path), None) => {
            keyfile::secret_text(path).map_err(|e| ConfigError(format!("{name}.pin_file: {e}")))?
        }
        (None, Some(pin)) => SecretString::from(pin.to_owned()),
        (None, None) => {
            return refuse(format!(
                "{name}: the token's user PIN is needed; set {PIN_ENV} or {name}.pin_file"
            ));
        }
    };
    if pin.expose().is_empty() {
        return refuse(format!("{name}: the PIN is empty"));
    }
    Ok(Pkcs11Settings {
        module: module.clone(),
        token_label,
        key_label,
        pin,
        setting: name.to_owned(),
    })
}

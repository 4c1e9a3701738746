//! `[backup]`: who can open backups (D3). Archives are always encrypted, in the age format: to
//! X25519 recipients (`age1...`, from `age-keygen`), or to a passphrase read from a file.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{ConfigError, refuse};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct BackupConfig {
    /// age X25519 recipients (public keys). Any one of their identities opens the archive.
    pub recipients: Vec<String>,
    /// A file (mode 0600) holding a passphrase, used instead of recipients (age's scrypt
    /// recipient, which must stand alone).
    pub passphrase_file: Option<PathBuf>,
}

pub(super) fn validate(c: &BackupConfig) -> Result<BackupConfig, ConfigError> {
    if !c.recipients.is_empty() && c.passphrase_file.is_some() {
        return refuse(
            "backup: set recipients or passphrase_file, not both (an age passphrase must be the \
             archive's only recipient)",
        );
    }
    if c.recipients.len() > 20 {
        return refuse("backup.recipients: at most 20");
    }
    for r in &c.recipients {
        if recipient(r).is_err() {
            return refuse(format!(
                "backup.recipients: {r:?} is not an age recipient (age1... from age-keygen, or \
                 age1pq1... from age-keygen -pq)"
            ));
        }
    }
    Ok(c.clone())
}

/// An age recipient: post-quantum hybrid (`age1pq1...`, ML-KEM-768 with X25519, read by age 1.3
/// and later) or classic X25519 (`age1...`). The classic kind is deprecated by the age crate but
/// kept: it is the only kind older age releases read (Debian 12 ships age 1.1).
pub(crate) fn recipient(text: &str) -> Result<Box<dyn age::Recipient + Send>, String> {
    if text.starts_with("age1pq1") {
        return text
            .parse::<age::pq::Recipient>()
            .map(|r| Box::new(r) as Box<dyn age::Recipient + Send>)
            .map_err(|e| e.to_string());
    }
    #[allow(deprecated)]
    let classic = text.parse::<age::x25519::Recipient>();
    classic
        .map(|r| Box::new(r) as Box<dyn age::Recipient + Send>)
        .map_err(|e| e.to_string())
}

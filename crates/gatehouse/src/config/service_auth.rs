//! `[service_auth]`: the secrets the deployment's own services send on `/internal/v1`.

use std::path::PathBuf;

use gatehouse_crypto::SecretString;
use serde::{Deserialize, Serialize};

use super::{ConfigError, refuse};
use crate::keyfile;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceAuthConfig {
    /// Files each holding a service secret (base64 of 32 random bytes, mode 0600), sent by your
    /// services as `X-Service-Auth` on `/internal/v1`. Two during a rotation; none disables the
    /// service API.
    pub secret_files: Vec<PathBuf>,
}

/// One service secret: the service's name (the file's stem, as the audit trail records it) and
/// the text the header must carry (the file's base64).
#[derive(Debug, Clone)]
pub struct ServiceSecret {
    pub name: String,
    pub secret: SecretString,
}

/// Reads each secret file once (mode 0600, base64 of 32 bytes).
pub(super) fn validate(c: &ServiceAuthConfig) -> Result<Vec<ServiceSecret>, ConfigError> {
    if c.secret_files.len() > 2 {
        return refuse(
            "service_auth.secret_files: at most two (the current secret and, while rotating, the next)",
        );
    }
    c.secret_files
        .iter()
        .map(|path| {
            let secret = keyfile::secret_text(path)
                .and_then(|text| {
                    gatehouse_crypto::Key32::from_base64(text.expose())
                        .map(|_| text)
                        .map_err(|e| format!("{} {e}", path.display()))
                })
                .map_err(|e| ConfigError(format!("service_auth.secret_files: {e}")))?;
            let name = path.file_stem().map_or_else(
                || "service".to_owned(),
                |s| s.to_string_lossy().into_owned(),
            );
            Ok(ServiceSecret { name, secret })
        })
        .collect()
}

//! `[tls]` (D4): Gatehouse terminates TLS itself when a certificate and its key are configured.
//! Both files are read and turned into a server configuration at load, so a missing file, a key
//! that others can read, a key that does not match the certificate or an unknown minimum version
//! is refused before anything listens. `serve` reads them again on SIGHUP and when they change.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ConfigError;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM: the server certificate first, then any intermediates.
    pub cert_file: Option<PathBuf>,
    /// PEM: the certificate's private key (PKCS#8, SEC1 or PKCS#1), mode 0600 or stricter.
    pub key_file: Option<PathBuf>,
    /// `"1.3"` (the default) or `"1.2"` to also accept TLS 1.2 clients.
    pub min_version: String,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            cert_file: None,
            key_file: None,
            min_version: "1.3".to_owned(),
        }
    }
}

/// The oldest protocol version offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMinVersion {
    Tls12,
    Tls13,
}

/// Validated `[tls]`: the files `serve` reads (again on reload) and the minimum version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub min_version: TlsMinVersion,
}

/// `None` when TLS is not configured (plain HTTP, subject to the production rules).
pub fn validate(c: &TlsConfig) -> Result<Option<TlsSettings>, ConfigError> {
    let min_version = match c.min_version.as_str() {
        "1.3" => TlsMinVersion::Tls13,
        "1.2" => TlsMinVersion::Tls12,
        other => {
            return Err(ConfigError(format!(
                "tls.min_version: {other:?} is not a supported minimum; use \"1.3\" (the \
                 default) or \"1.2\" (older protocols are refused)"
            )));
        }
    };
    match (&c.cert_file, &c.key_file) {
        (None, None) if min_version == TlsMinVersion::Tls13 => Ok(None),
        (None, None) => Err(ConfigError(
            "tls.min_version: has no effect without tls.cert_file and tls.key_file".to_owned(),
        )),
        (Some(_), None) | (None, Some(_)) => Err(ConfigError(
            "tls.cert_file and tls.key_file: set both or neither".to_owned(),
        )),
        (Some(cert), Some(key)) => {
            let settings = TlsSettings {
                cert_file: cert.clone(),
                key_file: key.clone(),
                min_version,
            };
            // The same code that serves: whatever it would refuse is refused now.
            crate::tls::server_config(&settings).map_err(ConfigError)?;
            Ok(Some(settings))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    use super::*;
    use crate::config::{Config, Mode, RawConfig};

    const KEY_B64: &str = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY="; // 32 bytes

    fn temp() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("gh-tls-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn config(cert: &Path, key: &Path, min: &str) -> TlsConfig {
        TlsConfig {
            cert_file: Some(cert.to_path_buf()),
            key_file: Some(key.to_path_buf()),
            min_version: min.to_owned(),
        }
    }

    fn refusal(c: &TlsConfig) -> String {
        match validate(c) {
            Ok(_) => panic!("expected a refusal"),
            Err(e) => e.0,
        }
    }

    #[test]
    fn off_by_default_and_a_dev_certificate_is_accepted_at_either_minimum() {
        assert_eq!(validate(&TlsConfig::default()).unwrap(), None);
        let dir = temp();
        let files = crate::dev_cert_cmd::generate(&dir).unwrap();
        let s = validate(&config(&files.cert, &files.key, "1.3"))
            .unwrap()
            .unwrap();
        assert_eq!(s.min_version, TlsMinVersion::Tls13);
        let s = validate(&config(&files.cert, &files.key, "1.2"))
            .unwrap()
            .unwrap();
        assert_eq!(s.min_version, TlsMinVersion::Tls12);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn refusals_name_the_setting() {
        let dir = temp();
        let files = crate::dev_cert_cmd::generate(&dir).unwrap();
        let msg = refusal(&config(&files.cert, &files.key, "1.1"));
        assert!(
            msg.starts_with("tls.min_version:") && msg.contains("\"1.1\""),
            "{msg}"
        );
        let msg = refusal(&config(&files.cert, &files.key, "TLSv1.3"));
        assert!(msg.starts_with("tls.min_version:"), "{msg}");
        let msg = refusal(&TlsConfig {
            key_file: None,
            ..config(&files.cert, &files.key, "1.3")
        });
        assert!(msg.contains("set both or neither"), "{msg}");
        let msg = refusal(&TlsConfig {
            cert_file: None,
            ..config(&files.cert, &files.key, "1.3")
        });
        assert!(msg.contains("set both or neither"), "{msg}");
        let msg = refusal(&TlsConfig {
            min_version: "1.2".into(),
            ..TlsConfig::default()
        });
        assert!(msg.starts_with("tls.min_version:"), "{msg}");

        // Missing files.
        let msg = refusal(&config(&dir.join("nope.pem"), &files.key, "1.3"));
        assert!(msg.starts_with("tls.cert_file:"), "{msg}");
        let msg = refusal(&config(&files.cert, &dir.join("nope.pem"), "1.3"));
        assert!(msg.starts_with("tls.key_file:"), "{msg}");

        // A key others can read.
        std::fs::set_permissions(&files.key, std::fs::Permissions::from_mode(0o640)).unwrap();
        let msg = refusal(&config(&files.cert, &files.key, "1.3"));
        assert!(
            msg.starts_with("tls.key_file:") && msg.contains("chmod 600"),
            "{msg}"
        );
        std::fs::set_permissions(&files.key, std::fs::Permissions::from_mode(0o600)).unwrap();

        // Not PEM, or the wrong kind of PEM.
        let junk = dir.join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        std::fs::set_permissions(&junk, std::fs::Permissions::from_mode(0o600)).unwrap();
        let msg = refusal(&config(&junk, &files.key, "1.3"));
        assert!(
            msg.starts_with("tls.cert_file:") && msg.contains("no PEM certificate"),
            "{msg}"
        );
        let msg = refusal(&config(&files.cert, &junk, "1.3"));
        assert!(
            msg.starts_with("tls.key_file:") && msg.contains("no PEM private key"),
            "{msg}"
        );
        // The CA's key does not match the server certificate.
        let msg = refusal(&config(&files.cert, &files.ca_key, "1.3"));
        assert!(
            msg.starts_with("tls.key_file:") && msg.contains("does not match"),
            "{msg}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn production_accepts_tls_off_loopback_without_a_proxy() {
        let dir = temp();
        let files = crate::dev_cert_cmd::generate(&dir).unwrap();
        let mut raw = RawConfig {
            mode: Mode::Production,
            listen: "0.0.0.0:8443".into(),
            data_dir: dir.join("data"),
            ..RawConfig::default()
        };
        raw.identity.issuer = "https://id.example.com".into();
        raw.mail.base_url = "https://app.example.com".into();
        raw.mail.transport = crate::config::MailTransportKind::Smtp;
        raw.mail.smtp.host = "mail.example.com".into();
        let msg = Config::from_raw(raw.clone(), Some(KEY_B64)).unwrap_err().0;
        assert!(
            msg.starts_with("listen:") && msg.contains("tls.cert_file"),
            "{msg}"
        );
        raw.tls = config(&files.cert, &files.key, "1.3");
        let c = Config::from_raw(raw.clone(), Some(KEY_B64)).unwrap();
        assert_eq!(
            c.tls.map(|t| t.cert_file),
            Some(files.cert.clone()),
            "TLS on listen satisfies the production rule"
        );
        // The operators' listener is served with the same certificate.
        raw.admin_listen = Some("0.0.0.0:8444".into());
        Config::from_raw(raw, Some(KEY_B64)).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

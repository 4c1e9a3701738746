//! TLS for `serve` (D4): rustls on the aws-lc-rs provider, TLS 1.3 only by default, TLS 1.2 as
//! an explicit minimum with ECDHE key exchange and AEAD ciphers only; ALPN offers `http/1.1`
//! alone (the server speaks HTTP/1.1 only).
//!
//! Serving: `crate::conn` accepts TCP connections for every listener and, when TLS is
//! configured, runs each handshake in the connection's own task with a deadline, after the
//! connection caps have been checked. Chosen over `axum-server`, whose TLS support pulls in
//! `rustls-pemfile` (unmaintained, an audit warning) and HTTP/2 support we do not serve.
//!
//! Reload: [`TlsReloader`] holds the current `ServerConfig`; every new handshake takes the one
//! current at its start. SIGHUP, or a change to either file (polled every two seconds), builds
//! a new one from the files; a file that does not load is logged and the old configuration
//! stays, so a botched renewal never stops the server.

use std::future::Future;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::crypto::aws_lc_rs::{self as provider, cipher_suite};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::tls::{TlsMinVersion, TlsSettings};

/// How often the certificate and key files are checked for changes, by default.
const POLL_EVERY: Duration = Duration::from_secs(2);

/// The suites offered: TLS 1.3's three, and for TLS 1.2 only ECDHE with AES-GCM or
/// ChaCha20-Poly1305 (no CBC, no RSA key exchange, no SHA-1 MACs). Listed rather than taken from
/// the provider's defaults so that a change there cannot widen what we offer.
fn cipher_suites() -> Vec<rustls::SupportedCipherSuite> {
    vec![
        cipher_suite::TLS13_AES_256_GCM_SHA384,
        cipher_suite::TLS13_AES_128_GCM_SHA256,
        cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
        cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        cipher_suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        cipher_suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ]
}

/// Reads both files and builds the server configuration. Errors are sentences naming the
/// setting (`tls.cert_file: ...`).
pub(crate) fn server_config(settings: &TlsSettings) -> Result<ServerConfig, String> {
    server_config_and_leaf(settings).map(|(c, _)| c)
}

/// The server configuration and the leaf certificate it serves (the posture report reads the
/// expiry of the certificate actually in force, not of whatever the file holds now).
fn server_config_and_leaf(
    settings: &TlsSettings,
) -> Result<(ServerConfig, CertificateDer<'static>), String> {
    let certs = read_certs(&settings.cert_file)?;
    let leaf = certs
        .first()
        .cloned()
        .ok_or_else(|| "tls.cert_file: no certificate".to_owned())?;
    let key = read_key(&settings.key_file)?;
    let provider = CryptoProvider {
        cipher_suites: cipher_suites(),
        ..provider::default_provider()
    };
    let versions: &[&rustls::SupportedProtocolVersion] = match settings.min_version {
        TlsMinVersion::Tls13 => &[&rustls::version::TLS13],
        TlsMinVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
    };
    let mut config = ServerConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(versions)
        .map_err(|e| format!("tls: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => format!(
                "tls.key_file: {} does not match the certificate in {}",
                settings.key_file.display(),
                settings.cert_file.display()
            ),
            other => format!(
                "tls.cert_file / tls.key_file: {} with {}: {other}",
                settings.cert_file.display(),
                settings.key_file.display()
            ),
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    // All suites offered are strong; the server's order (AES-256-GCM first) decides.
    config.ignore_client_order = true;
    Ok((config, leaf))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = std::fs::read(path)
        .map_err(|e| format!("tls.cert_file: cannot read {}: {e}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("tls.cert_file: {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "tls.cert_file: {} holds no PEM certificate (\"-----BEGIN CERTIFICATE-----\")",
            path.display()
        ));
    }
    Ok(certs)
}

/// Reads the private key, refusing a file that group or others can read (like the other secret
/// files). The file's bytes are zeroed once parsed.
fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let meta = std::fs::metadata(path)
        .map_err(|e| format!("tls.key_file: cannot read {}: {e}", path.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(format!(
            "tls.key_file: {} is readable by group or others (mode {:o}); run chmod 600 on it",
            path.display(),
            meta.permissions().mode() & 0o777
        ));
    }
    let pem = zeroize::Zeroizing::new(
        std::fs::read(path)
            .map_err(|e| format!("tls.key_file: cannot read {}: {e}", path.display()))?,
    );
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => format!(
            "tls.key_file: {} holds no PEM private key (\"-----BEGIN PRIVATE KEY-----\")",
            path.display()
        ),
        other => format!("tls.key_file: {}: {other}", path.display()),
    })
}

/// The current server configuration, replaced on reload.
#[derive(Debug)]
pub struct TlsReloader {
    settings: TlsSettings,
    current: RwLock<Arc<ServerConfig>>,
    /// The leaf certificate `current` serves.
    leaf: RwLock<CertificateDer<'static>>,
    /// Milliseconds between checks of the files.
    poll_every_ms: AtomicU64,
}

impl TlsReloader {
    /// Loads the files once; a failure is a start-up error.
    pub fn load(settings: &TlsSettings) -> Result<Self, String> {
        let (config, leaf) = server_config_and_leaf(settings)?;
        Ok(Self {
            settings: settings.clone(),
            current: RwLock::new(Arc::new(config)),
            leaf: RwLock::new(leaf),
            poll_every_ms: AtomicU64::new(
                u64::try_from(POLL_EVERY.as_millis()).unwrap_or(u64::MAX),
            ),
        })
    }

    /// How often the files are checked for changes (two seconds unless set; tests set it to
    /// tell a reload by SIGHUP from one by polling). Takes effect after the current wait.
    pub fn set_poll_interval(&self, every: Duration) {
        let ms = u64::try_from(every.as_millis()).unwrap_or(u64::MAX).max(1);
        self.poll_every_ms.store(ms, Ordering::Relaxed);
    }

    /// Reads the files again and, when they load, makes them the configuration for every
    /// handshake from now on. On failure the previous configuration stays in use.
    pub fn reload(&self) -> Result<(), String> {
        let (config, leaf) = server_config_and_leaf(&self.settings)?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(config);
        *self.leaf.write().unwrap_or_else(PoisonError::into_inner) = leaf;
        Ok(())
    }

    /// When the certificate in force stops being valid.
    pub fn leaf_not_after(&self) -> Result<time::OffsetDateTime, String> {
        let leaf = self
            .leaf
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref())
            .map_err(|e| format!("the certificate does not parse: {e}"))?;
        Ok(cert.validity().not_after.to_datetime())
    }

    /// `1.3` or `1.2`: the oldest protocol version served.
    #[must_use]
    pub fn min_version_str(&self) -> &'static str {
        match self.settings.min_version {
            TlsMinVersion::Tls13 => "1.3",
            TlsMinVersion::Tls12 => "1.2",
        }
    }

    #[must_use]
    pub fn cert_file(&self) -> &Path {
        &self.settings.cert_file
    }

    pub(crate) fn current(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Reloads, logging the outcome; never fails.
    fn reload_logged(&self, why: &str) {
        match self.reload() {
            Ok(()) => tracing::info!(
                reason = why,
                cert_file = %self.settings.cert_file.display(),
                "reloaded the TLS certificate and key"
            ),
            Err(e) => tracing::warn!(
                reason = why,
                error = %e,
                "could not reload the TLS certificate and key; still serving the previous ones"
            ),
        }
    }

    /// What identifies the files' current contents without reading them: inode, size and
    /// modification time of both (a rename into place changes the inode).
    fn fingerprint(&self) -> Option<[(u64, u64, i64, i64); 2]> {
        let one = |p: &Path| {
            std::fs::metadata(p)
                .ok()
                .map(|m| (m.ino(), m.size(), m.mtime(), m.mtime_nsec()))
        };
        Some([
            one(&self.settings.cert_file)?,
            one(&self.settings.key_file)?,
        ])
    }
}

/// Runs for ever: reloads on SIGHUP and when either file changes. A change seen while the files
/// are half-replaced (a new certificate, the old key) fails to load and is tried again at the
/// next change.
/// The SIGHUP handler is installed when this is called, before the server accepts anything, so
/// an early SIGHUP reloads rather than ending the process.
pub(crate) fn reload_job(tls: Arc<TlsReloader>) -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let hangup = match signal(SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; the TLS files are reloaded when they change");
            None
        }
    };
    reload_loop(tls, hangup)
}

async fn reload_loop(tls: Arc<TlsReloader>, mut hangup: Option<tokio::signal::unix::Signal>) {
    let mut seen = tls.fingerprint();
    loop {
        let poll = Duration::from_millis(tls.poll_every_ms.load(Ordering::Relaxed));
        let hup = async {
            match hangup.as_mut() {
                Some(s) => s.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            Some(()) = hup => {
                seen = tls.fingerprint();
                tls.reload_logged("SIGHUP");
            }
            () = tokio::time::sleep(poll) => {
                let now = tls.fingerprint();
                if now.is_some() && now != seen {
                    seen = now;
                    tls.reload_logged("file changed");
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn tls12_suites_are_ecdhe_with_aead_only() {
        for suite in cipher_suites() {
            let name = format!("{:?}", suite.suite());
            match suite {
                rustls::SupportedCipherSuite::Tls13(_) => assert!(name.starts_with("TLS13_")),
                rustls::SupportedCipherSuite::Tls12(_) => {
                    assert!(name.starts_with("TLS_ECDHE_"), "{name}");
                    assert!(
                        name.contains("_GCM_") || name.contains("CHACHA20_POLY1305"),
                        "{name}"
                    );
                }
            }
        }
    }

    #[test]
    fn builds_at_either_minimum_with_http11_alpn_and_no_early_data() {
        let dir = std::env::temp_dir().join(format!("gh-tls-{}", uuid::Uuid::new_v4()));
        let files = crate::dev_cert_cmd::generate(&dir).unwrap();
        let mut settings = TlsSettings {
            cert_file: files.cert.clone(),
            key_file: files.key.clone(),
            min_version: TlsMinVersion::Tls13,
        };
        let c = server_config(&settings).unwrap();
        assert_eq!(c.alpn_protocols, vec![b"http/1.1".to_vec()]);
        assert_eq!(
            c.crypto_provider().cipher_suites.len(),
            cipher_suites().len()
        );
        assert_eq!(c.max_early_data_size, 0, "no 0-RTT");
        settings.min_version = TlsMinVersion::Tls12;
        server_config(&settings).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

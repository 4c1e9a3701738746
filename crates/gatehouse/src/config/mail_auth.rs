//! `[mail.dkim]` (the key outgoing mail is signed with) and `[mail.domain_check]` (what
//! `GET /v1/mail/domains/{domain}/check` and `gatehouse mail check-domain` compare a domain's
//! records with). F4.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use gatehouse_core::mail::dns_records::{dns_name, domain_name};
use gatehouse_core::mail::{DkimSigning, DomainCheckSettings};
use gatehouse_infra::dkim::DkimSigner;
use rustls::pki_types::PrivatePkcs8KeyDer;
use rustls::pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};

use super::{ConfigError, refuse};
use crate::keyfile;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DkimConfig {
    /// PEM (PKCS#8) RSA private key of 2048 to 4096 bits, mode 0600
    /// (`openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048`). Unset: mail is not
    /// signed.
    pub private_key_file: Option<PathBuf>,
    /// The key's selector: its public half is published at `{selector}._domainkey.{domain}`.
    pub selector: String,
    /// The signing domain (`d=`): the From address's domain or a parent of it, so DMARC counts
    /// the signature. Empty: the From address's domain.
    pub domain: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DomainCheckConfig {
    /// The sending service's SPF domains (for example `_spf.mailer.example`); each must be
    /// included by a checked domain's SPF record. Empty: not checked.
    pub spf_include: Vec<String>,
    /// The DKIM selector to look for. Empty: `mail.dkim.selector`.
    pub dkim_selector: String,
    /// Name servers to ask (UDP, "address:port"); the system's when empty.
    pub dns_servers: Vec<String>,
}

/// What `[mail.dkim]` and `[mail.domain_check]` come to.
#[derive(Debug, Clone, Default)]
pub struct MailAuthSetup {
    pub dkim: Option<Arc<DkimSigner>>,
    pub domain_check: DomainCheckSettings,
    pub dns_servers: Vec<SocketAddr>,
}

fn selector_ok(s: &str) -> bool {
    // A selector is one or more DNS labels (RFC 6376 section 3.1).
    domain_name(&format!("{s}.x")).is_ok_and(|n| n == format!("{s}.x"))
}

pub(super) fn validate(
    dkim: &DkimConfig,
    check: &DomainCheckConfig,
    from: &str,
) -> Result<MailAuthSetup, ConfigError> {
    let signer = match &dkim.private_key_file {
        None if !dkim.selector.is_empty() || !dkim.domain.is_empty() => {
            return refuse(
                "mail.dkim.selector and mail.dkim.domain: set mail.dkim.private_key_file too, or \
                 neither (mail would not be signed)",
            );
        }
        None => None,
        Some(path) => Some(Arc::new(signer(dkim, path, from)?)),
    };
    for s in &check.spf_include {
        if dns_name(s).is_err() {
            return refuse(format!(
                "mail.domain_check.spf_include: {s:?} is not a domain name"
            ));
        }
    }
    let selector = match (check.dkim_selector.as_str(), dkim.selector.as_str()) {
        ("", "") => None,
        ("", s) | (s, _) => Some(s.to_ascii_lowercase()),
    };
    if let Some(s) = &selector
        && !selector_ok(s)
    {
        return refuse(format!(
            "mail.domain_check.dkim_selector: {s:?} is not a DNS label"
        ));
    }
    let mut dns_servers = Vec::with_capacity(check.dns_servers.len());
    for s in &check.dns_servers {
        dns_servers.push(s.parse::<SocketAddr>().map_err(|_| {
            ConfigError(format!(
                "mail.domain_check.dns_servers: {s:?} is not an address and port such as \
                 \"10.0.0.2:53\""
            ))
        })?);
    }
    Ok(MailAuthSetup {
        domain_check: DomainCheckSettings {
            spf_include: check
                .spf_include
                .iter()
                .map(|s| s.trim_end_matches('.').to_ascii_lowercase())
                .collect(),
            dkim_selector: selector,
            dkim_signer: signer.as_ref().map(|s| DkimSigning {
                domain: s.domain().to_owned(),
                selector: s.selector().to_owned(),
                public_key: s.public_key_der(),
            }),
        },
        dkim: signer,
        dns_servers,
    })
}

fn signer(c: &DkimConfig, path: &std::path::Path, from: &str) -> Result<DkimSigner, ConfigError> {
    let selector = c.selector.to_ascii_lowercase();
    if !selector_ok(&selector) {
        return refuse(format!(
            "mail.dkim.selector: {:?} must be set to a DNS label such as \"gh2026\"",
            c.selector
        ));
    }
    let from_domain = gatehouse_infra::mail::address_domain(from)
        .and_then(|d| domain_name(&d).ok())
        .ok_or_else(|| {
            ConfigError(format!(
                "mail.from: {from:?} has no domain DKIM can sign for (an ASCII name with at least \
                 two labels; IDNs in their xn-- form)"
            ))
        })?;
    let domain = if c.domain.is_empty() {
        from_domain.clone()
    } else {
        domain_name(&c.domain)
            .map_err(|e| ConfigError(format!("mail.dkim.domain: {:?} {e}", c.domain)))?
    };
    if from_domain != domain && !from_domain.ends_with(&format!(".{domain}")) {
        return refuse(format!(
            "mail.dkim.domain: {domain:?} is neither the From address's domain ({from_domain:?}) \
             nor a parent of it, so DMARC would not count the signature"
        ));
    }
    let pem = keyfile::secret_text(path)
        .map_err(|e| ConfigError(format!("mail.dkim.private_key_file: {e}")))?;
    let mut der = PrivatePkcs8KeyDer::from_pem_slice(pem.expose().as_bytes()).map_err(|e| {
        ConfigError(format!(
            "mail.dkim.private_key_file: {} is not a PKCS#8 PEM key (\"BEGIN PRIVATE KEY\"): {e}",
            path.display()
        ))
    })?;
    let key = gatehouse_crypto::RsaSigningKey::from_pkcs8_der(der.secret_pkcs8_der());
    // aws-lc holds its own copy; this one goes now rather than with the allocator.
    zeroize::Zeroize::zeroize(&mut der);
    let key = key.map_err(|e| ConfigError(format!("mail.dkim.private_key_file: {e}")))?;
    Ok(DkimSigner::new(key, domain, selector))
}

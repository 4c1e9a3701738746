//! `gatehouse dev-cert [--out DIR] [--name NAME ...]`: a local certificate authority and a server
//! certificate signed by it, for `localhost`, `127.0.0.1` and `::1` or for the names given, for
//! trying TLS (D4, and TLS to a private PostgreSQL or Redis) on a development machine.
//! Certificates are made by `rcgen` (on aws-lc-rs); nothing here encodes X.509 itself.
//!
//! The CA is name-constrained to the certificate's names, so even if its key leaks after someone
//! trusted `ca.pem`, it cannot vouch for any other site. Keys are written with mode 0600; no file
//! that exists is overwritten.

use std::fs::OpenOptions;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CidrSubnet, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    NameConstraints, SerialNumber,
};

/// Where `dev-cert` writes when `--out` is not given.
pub const DEFAULT_OUT: &str = "gatehouse-dev-tls";

/// The names the server certificate is valid for.
pub const NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// The four files written.
#[derive(Debug, Clone)]
pub struct DevCertFiles {
    /// The CA certificate: what clients trust.
    pub ca: PathBuf,
    pub ca_key: PathBuf,
    /// The server certificate (`tls.cert_file`).
    pub cert: PathBuf,
    /// Its key (`tls.key_file`).
    pub key: PathBuf,
}

fn serial() -> Result<SerialNumber, String> {
    let mut bytes = [0u8; 16];
    gatehouse_crypto::fill_random(&mut bytes).map_err(|e| e.to_string())?;
    // Positive and without a leading zero byte, as DER INTEGER serials should be.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from_slice(&bytes))
}

fn rc(e: rcgen::Error) -> String {
    format!("dev-cert: {e}")
}

/// Makes a new CA and server certificate for [`NAMES`] into `dir` (created with mode 0700 when
/// missing). Refuses to overwrite any of the four files.
pub fn generate(dir: &Path) -> Result<DevCertFiles, String> {
    generate_for(dir, &NAMES.map(str::to_owned))
}

/// The CA may vouch for these names only: a DNS name as itself (and its subdomains), an address
/// as exactly that address.
fn constraints(names: &[String]) -> Result<Vec<GeneralSubtree>, String> {
    if names.is_empty() {
        return Err("dev-cert: give at least one --name".to_owned());
    }
    Ok(names
        .iter()
        .map(|n| match n.parse::<IpAddr>() {
            Ok(ip @ IpAddr::V4(_)) => {
                GeneralSubtree::IpAddress(CidrSubnet::from_addr_prefix(ip, 32))
            }
            Ok(ip @ IpAddr::V6(_)) => {
                GeneralSubtree::IpAddress(CidrSubnet::from_addr_prefix(ip, 128))
            }
            Err(_) => GeneralSubtree::DnsName(n.clone()),
        })
        .collect())
}

/// [`generate`] for the server names `names` (DNS names or IP addresses).
pub fn generate_for(dir: &Path, names: &[String]) -> Result<DevCertFiles, String> {
    let permitted = constraints(names)?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let files = DevCertFiles {
        ca: dir.join("ca.pem"),
        ca_key: dir.join("ca-key.pem"),
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    };
    for path in [&files.ca, &files.ca_key, &files.cert, &files.key] {
        if path.exists() {
            return Err(format!(
                "{} already exists; remove the old files or choose another --out",
                path.display()
            ));
        }
    }
    let now = gatehouse_core::Clock::now(&gatehouse_core::SystemClock);
    let not_before = now - time::Duration::hours(1);

    let ca_key = KeyPair::generate().map_err(rc)?;
    let mut ca = CertificateParams::default();
    let ca_serial = serial()?;
    // A name of its own: verifiers find a certificate's issuer by name, so two development CAs
    // named alike would be mistaken for one another (and reported as a bad signature).
    let tag = ca_serial
        .as_ref()
        .iter()
        .skip(1)
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    ca.distinguished_name = DistinguishedName::new();
    ca.distinguished_name.push(
        DnType::CommonName,
        format!("Gatehouse development CA {tag}"),
    );
    ca.distinguished_name
        .push(DnType::OrganizationName, "Gatehouse (development only)");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca.name_constraints = Some(NameConstraints {
        permitted_subtrees: permitted,
        excluded_subtrees: Vec::new(),
    });
    ca.serial_number = Some(ca_serial);
    ca.not_before = not_before;
    ca.not_after = now + time::Duration::days(730);
    let ca_cert = ca.self_signed(&ca_key).map_err(rc)?;

    let key = KeyPair::generate().map_err(rc)?;
    let mut leaf = CertificateParams::new(names.to_vec()).map_err(rc)?;
    leaf.distinguished_name = DistinguishedName::new();
    leaf.distinguished_name.push(
        DnType::CommonName,
        names.first().map_or("localhost", String::as_str),
    );
    leaf.is_ca = IsCa::ExplicitNoCa;
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.use_authority_key_identifier_extension = true;
    leaf.serial_number = Some(serial()?);
    leaf.not_before = not_before;
    leaf.not_after = now + time::Duration::days(365);
    let issuer = Issuer::new(ca, &ca_key);
    let cert = leaf.signed_by(&key, &issuer).map_err(rc)?;

    write_new(
        &files.ca_key,
        &zeroize::Zeroizing::new(ca_key.serialize_pem()),
        0o600,
    )?;
    write_new(&files.ca, &ca_cert.pem(), 0o644)?;
    write_new(
        &files.key,
        &zeroize::Zeroizing::new(key.serialize_pem()),
        0o600,
    )?;
    write_new(&files.cert, &cert.pem(), 0o644)?;
    Ok(files)
}

fn write_new(path: &Path, text: &str, mode: u32) -> Result<(), String> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// A path as a TOML string (quoted and escaped).
fn toml_path(p: &Path) -> String {
    toml::Value::String(p.display().to_string()).to_string()
}

/// The command: writes the files and prints how to use them. `names` empty: [`NAMES`].
pub(crate) fn run(out: &Path, names: &[String]) -> Result<(), String> {
    let names = if names.is_empty() {
        NAMES.map(str::to_owned).to_vec()
    } else {
        names.to_vec()
    };
    let files = generate_for(out, &names)?;
    let abs = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        "Wrote a development CA ({ca}, key {ca_key}) and a certificate for {names} signed by it \
         ({cert}, key {key}).\n\
         For development only: trust {ca} only in the clients you test with, for example\n  \
         curl --cacert {ca} https://{host}:8080/health/ready\n\n\
         Add to gatehouse.toml:\n\n\
         [tls]\n\
         cert_file = {cert_toml}\n\
         key_file = {key_toml}\n\
         # min_version = \"1.2\"  # only if clients need TLS 1.2; the default is \"1.3\"",
        ca = abs(&files.ca).display(),
        ca_key = abs(&files.ca_key).display(),
        cert = abs(&files.cert).display(),
        key = abs(&files.key).display(),
        names = names.join(", "),
        host = match names.first().map(String::as_str) {
            Some(n) if n.contains(':') => format!("[{n}]"),
            Some(n) => n.to_owned(),
            None => "localhost".to_owned(),
        },
        cert_toml = toml_path(&abs(&files.cert)),
        key_toml = toml_path(&abs(&files.key)),
    )
    .map_err(|e| e.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn writes_four_files_keys_private_and_never_overwrites() {
        let dir = std::env::temp_dir().join(format!("gh-devcert-{}", uuid::Uuid::new_v4()));
        let files = generate(&dir).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&files.key), 0o600);
        assert_eq!(mode(&files.ca_key), 0o600);
        assert_eq!(mode(&files.cert), 0o644);
        assert_eq!(mode(&dir), 0o700);
        for p in [&files.ca, &files.cert] {
            let text = std::fs::read_to_string(p).unwrap();
            assert!(text.starts_with("-----BEGIN CERTIFICATE-----"), "{text}");
        }
        let err = generate(&dir).unwrap_err();
        assert!(err.contains("already exists"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_certificate_for_chosen_names_is_valid_for_those_names_only() {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
        let dir = std::env::temp_dir().join(format!("gh-devcert-{}", uuid::Uuid::new_v4()));
        let files = generate_for(&dir, &["db.gatehouse.test".to_owned()]).unwrap();
        let read = |p: &Path| CertificateDer::from_pem_file(p).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(read(&files.ca)).unwrap();
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(roots.into(), provider)
                .build()
                .unwrap();
        let now = gatehouse_core::Clock::now(&gatehouse_core::SystemClock);
        let now = UnixTime::since_unix_epoch(std::time::Duration::from_secs(
            u64::try_from(now.unix_timestamp()).unwrap(),
        ));
        let leaf = read(&files.cert);
        let check = |name: &str| {
            let name = ServerName::try_from(name.to_owned()).unwrap();
            rustls::client::danger::ServerCertVerifier::verify_server_cert(
                verifier.as_ref(),
                &leaf,
                &[],
                &name,
                &[],
                now,
            )
        };
        check("db.gatehouse.test").unwrap();
        for other in ["localhost", "127.0.0.1"] {
            let e = check(other).unwrap_err();
            assert!(
                matches!(
                    e,
                    rustls::Error::InvalidCertificate(
                        rustls::CertificateError::NotValidForNameContext { .. }
                            | rustls::CertificateError::NotValidForName
                    )
                ),
                "{other}: {e}"
            );
        }
        assert!(generate_for(&dir.join("none"), &[]).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

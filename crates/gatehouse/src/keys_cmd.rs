//! `gatehouse keys ...`: status, master-key and organisation rotation, crypto-shredding.

use std::io::Write;
use std::path::{Path, PathBuf};

use gatehouse_core::OrgId;
use gatehouse_core::keyring::Keyring;
use gatehouse_crypto::{Key32, random_key};

use crate::app::App;
use crate::config::{Config, MasterKey};
use crate::keyfile;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum KeysCommand {
    /// Master-key versions, and per organisation its data-key versions and what each still seals.
    Status,
    /// Add a master-key version and rewrap every data key under it; the old version is retired.
    RotateMaster {
        /// File with the new master key (base64 of 32 bytes, mode 0600). Without it, a development
        /// key is generated and replaces the development key file.
        #[arg(long, conflicts_with = "new_pkcs11_key_label")]
        new_key_file: Option<PathBuf>,
        /// Rotate to this AES-256 key inside an HSM (PKCS#11). Module, token and PIN come from
        /// the flags below, or else from `[master_key_pkcs11]` and `GATEHOUSE_PKCS11_PIN`.
        #[arg(long)]
        new_pkcs11_key_label: Option<String>,
        /// The HSM's PKCS#11 library (absolute path), when not the configured one.
        #[arg(long, requires = "new_pkcs11_key_label")]
        new_pkcs11_module: Option<PathBuf>,
        /// The label of the token holding the new key, when not the configured one.
        #[arg(long, requires = "new_pkcs11_key_label")]
        new_pkcs11_token_label: Option<String>,
        /// A file (mode 0600) with the token's user PIN; else `GATEHOUSE_PKCS11_PIN`.
        #[arg(long, requires = "new_pkcs11_key_label")]
        new_pkcs11_pin_file: Option<PathBuf>,
    },
    /// Add a data-key version for an organisation and re-encrypt its sealed values to it.
    RotateOrg {
        #[arg(long)]
        org: String,
        /// Values re-encrypted per transaction.
        #[arg(long, default_value_t = 500)]
        batch: u32,
    },
    /// Add an access-token signing key. New tokens are signed with it at once by this process and
    /// within 30 seconds by running servers; the previous key stays published in the JWKS
    /// document until every token it signed has expired.
    RotateSigning,
    /// Add a link key (share viewer passes, unsubscribe links). New links are signed with it at
    /// once; links signed with older keys keep verifying for `keyring.link_key_overlap_days`.
    RotateLinkKey,
    /// Split the master key (read from master_key_file) into shares for a sealed start (D2):
    /// any --threshold of the --shares rebuild it. Each share is printed once.
    Split {
        #[arg(long)]
        shares: u8,
        #[arg(long)]
        threshold: u8,
    },
    /// Rebuild a split master key from K shares read from standard input (one per line) into a
    /// new key file (mode 0600), for the commands that need the key while `serve` is unsealed
    /// only in memory: restore, rotation, operators, audit verify. Delete the file afterwards.
    Combine {
        /// The key file to create; refused if it exists.
        #[arg(long)]
        out: PathBuf,
    },
    /// Destroy an organisation's data keys: everything it sealed becomes unreadable, for good.
    Shred {
        #[arg(long)]
        org: String,
        /// Confirms that this cannot be undone.
        #[arg(long)]
        yes: bool,
    },
}

fn out(line: &str) {
    let _ = writeln!(std::io::stdout(), "{line}");
}

fn parse_org(text: &str) -> Result<OrgId, String> {
    OrgId::parse(text).ok_or_else(|| format!("--org: {text:?} is not an organisation id"))
}

pub(crate) async fn run(config: &Config, command: KeysCommand) -> Result<(), String> {
    // Combining needs no database and no key: it makes the key.
    if let KeysCommand::Combine { out: path } = &command {
        return combine(path);
    }
    let app = App::build(config).await.map_err(|e| e.to_string())?;
    let keyring = app.kernel().keyring();
    match command {
        KeysCommand::Status => status(keyring).await,
        KeysCommand::RotateOrg { org, batch } => rotate_org(keyring, parse_org(&org)?, batch).await,
        KeysCommand::Shred { org, yes } => {
            if !yes {
                return Err("shred destroys keys for good; repeat with --yes to confirm".into());
            }
            let org = parse_org(&org)?;
            let n = keyring.shred(org).await.map_err(|e| e.to_string())?;
            out(&format!(
                "{org}: destroyed {n} data-key version(s); its sealed data is unreadable"
            ));
            Ok(())
        }
        KeysCommand::RotateSigning => {
            let v = keyring
                .rotate_token_key()
                .await
                .map_err(|e| e.to_string())?;
            out(&format!(
                "token-signing key {v} added (kid \"{v}\"); it signs new tokens"
            ));
            Ok(())
        }
        KeysCommand::RotateLinkKey => {
            let v = keyring.rotate_link_key().await.map_err(|e| e.to_string())?;
            out(&format!(
                "link key {v} added; it signs new links, older keys verify for the overlap period"
            ));
            Ok(())
        }
        KeysCommand::RotateMaster {
            new_pkcs11_key_label: Some(key_label),
            new_pkcs11_module,
            new_pkcs11_token_label,
            new_pkcs11_pin_file,
            ..
        } => {
            let raw = crate::config::pkcs11::Pkcs11Config {
                module: new_pkcs11_module.or(config.raw_pkcs11().module.clone()),
                token_label: new_pkcs11_token_label.or(config.raw_pkcs11().token_label.clone()),
                key_label: Some(key_label),
                pin_file: new_pkcs11_pin_file.or(config.raw_pkcs11().pin_file.clone()),
            };
            rotate_master_to_hsm(keyring, &raw).await
        }
        KeysCommand::RotateMaster { new_key_file, .. } => {
            rotate_master(config, keyring, new_key_file.as_deref()).await
        }
        KeysCommand::Split { shares, threshold } => {
            crate::unseal::split_command(config, keyring, shares, threshold)
        }
        KeysCommand::Combine { .. } => Ok(()),
    }
}

async fn status(keyring: &Keyring) -> Result<(), String> {
    let st = keyring.status().await.map_err(|e| e.to_string())?;
    out(&format!("master key: version {} in use", st.kek_current));
    for k in &st.kek_versions {
        out(&format!(
            "  master version {}: {}",
            k.version,
            k.state.as_str()
        ));
    }
    for org in &st.orgs {
        if org.shredded {
            out(&format!(
                "org {}: SHREDDED (keys destroyed; sealed data unreadable)",
                org.org_id
            ));
            continue;
        }
        out(&format!(
            "org {}: {} value(s) awaiting re-encryption",
            org.org_id, org.pending_reencryption
        ));
        for v in &org.versions {
            out(&format!(
                "  data key version {}: {}, wrapped under master version {}, {} encryption(s), {} sealed value(s)",
                v.version,
                v.state.as_str(),
                v.kek_version,
                v.encryptions,
                v.sealed_values
            ));
        }
    }
    Ok(())
}

async fn rotate_org(keyring: &Keyring, org: OrgId, batch: u32) -> Result<(), String> {
    let version = keyring.rotate_org(org).await.map_err(|e| e.to_string())?;
    out(&format!(
        "{org}: data key version {version} added; new writes use it"
    ));
    loop {
        let report = keyring
            .reencrypt_org(org, batch, Some(1))
            .await
            .map_err(|e| e.to_string())?;
        if report.finished {
            out(&format!(
                "{org}: re-encryption finished; {} old version(s) retired",
                report.retired_versions
            ));
            return Ok(());
        }
        out(&format!(
            "{org}: re-encrypted {}, {} to go",
            report.moved, report.remaining
        ));
    }
}

/// Rotates to a key inside an HSM. The new key's handle is opened (and the PIN checked) before
/// anything is written.
async fn rotate_master_to_hsm(
    keyring: &Keyring,
    raw: &crate::config::pkcs11::Pkcs11Config,
) -> Result<(), String> {
    let pin_env = zeroize::Zeroizing::new(std::env::var(crate::config::pkcs11::PIN_ENV).ok());
    let settings = crate::config::pkcs11::validate(
        "rotate-master --new-pkcs11-* (or [master_key_pkcs11])",
        raw,
        pin_env.as_deref(),
    )
    .map_err(|e| e.to_string())?;
    let kek = crate::app::open_pkcs11(&settings)
        .await
        .map_err(|e| e.to_string())?;
    let version = keyring
        .rotate_master_to(kek)
        .await
        .map_err(|e| e.to_string())?;
    out(&format!(
        "master key version {version} is now current and every data key is wrapped under HSM key \
         {:?} on token {:?}; set [master_key_pkcs11] (module {}, token_label, key_label) and \
         remove the old master key setting before the next start",
        settings.key_label,
        settings.token_label,
        settings.module.display()
    ));
    Ok(())
}

async fn rotate_master(
    config: &Config,
    keyring: &Keyring,
    new_key_file: Option<&Path>,
) -> Result<(), String> {
    if let Some(path) = new_key_file {
        let new = keyfile::read(path)?;
        let version = keyring
            .rotate_master(&new)
            .await
            .map_err(|e| e.to_string())?;
        out(&format!(
            "master key version {version} is now current and every data key is wrapped under it; \
             configure it as GATEHOUSE_MASTER_KEY or master_key_file ({}) before the next start",
            path.display()
        ));
        return Ok(());
    }
    let MasterKey::GeneratedDevelopment(dev_path) = &config.master_key else {
        return Err(
            "rotate-master needs --new-key-file with the new master key (base64 of 32 random \
             bytes, mode 0600) or --new-pkcs11-key-label naming a key inside an HSM"
                .into(),
        );
    };
    // The new key is on disk before any data key is wrapped under it, and a rerun after a crash
    // picks the same file up again.
    let next = dev_path.with_extension("key.next");
    let new: Key32 = if next.exists() {
        keyfile::read(&next)?
    } else {
        let k = random_key().map_err(|e| e.to_string())?;
        keyfile::write_new(&next, &k)?;
        k
    };
    let version = keyring
        .rotate_master(&new)
        .await
        .map_err(|e| e.to_string())?;
    std::fs::rename(&next, dev_path)
        .map_err(|e| format!("cannot move {} into place: {e}", next.display()))?;
    out(&format!(
        "development master key rotated to version {version}; {} holds the new key",
        dev_path.display()
    ));
    Ok(())
}

/// `keys combine`: K shares from standard input, one per line (blank lines ignored), into a new
/// key file. Each share is checked alone (checksum, key id) before any is combined.
fn combine(path: &Path) -> Result<(), String> {
    use std::io::BufRead as _;
    let mut shares = Vec::new();
    for (n, line) in std::io::stdin().lock().lines().enumerate() {
        let line = zeroize::Zeroizing::new(line.map_err(|e| format!("standard input: {e}"))?);
        if line.trim().is_empty() {
            continue;
        }
        let share =
            crate::shares::Share::parse(&line).map_err(|e| format!("line {}: {e}", n + 1))?;
        shares.push(share);
    }
    let key = crate::shares::combine(&shares).map_err(|e| e.to_string())?;
    keyfile::write_new(path, &key)?;
    out(&format!(
        "the master key is rebuilt into {} (mode 0600); use it as master_key_file for the command \
         that needs it, then delete the file",
        path.display()
    ));
    Ok(())
}

//! The master key's seal over a backup's manifest. age encrypts to public recipients, so anyone
//! who knows a recipient can write an archive that decrypts; the seal (an envelope of the
//! manifest's digest made by the master key, in memory or inside the HSM) shows that the archive
//! was written by a holder of the deployment's master key. Its digests cover every row, so the
//! seal covers the whole archive.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use gatehouse_core::backup::{
    BackupError, Manifest, Seal, SnapshotInfo, SnapshotSink, Table, Value, manifest_digest,
};
use gatehouse_core::keyring::{KekError, MasterKek};
use gatehouse_crypto::{EnvelopeHeader, Key32};

use super::Checked;
use crate::config::{Config, MasterKey};

fn context() -> Vec<u8> {
    gatehouse_crypto::context("gatehouse.backup.seal.v1", &[])
}

/// Seals manifests with the configured master key; under `master_key = "shares"` there is no key
/// outside a running server, and archives go unsealed.
pub(super) struct Sealer {
    kek: Option<Arc<dyn MasterKek>>,
}

impl Sealer {
    pub(super) async fn for_config(config: &Config) -> Result<Self, String> {
        match &config.master_key {
            MasterKey::Shares => Ok(Self { kek: None }),
            MasterKey::GeneratedDevelopment(path) if !path.exists() => Err(format!(
                "no master key: {} does not exist. Supply the master key of the deployment \
                 (copy its development key file there, or set GATEHOUSE_MASTER_KEY, \
                 master_key_file or [master_key_pkcs11])",
                path.display()
            )),
            _ => {
                let (kek, _) = crate::app::master_kek(config)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(Self { kek: Some(kek) })
            }
        }
    }

    pub(super) fn seals(&self) -> bool {
        self.kek.is_some()
    }

    /// The seal over `m`, refusing a configured key that the snapshot's `kek_versions` rows
    /// (`checks`) do not know: the archive would not restore with it.
    pub(super) fn seal(
        &self,
        m: &Manifest,
        checks: &[Vec<u8>],
    ) -> Result<Option<Seal>, BackupError> {
        let Some(kek) = &self.kek else {
            return Ok(None);
        };
        let mut known = checks.is_empty();
        for c in checks {
            if kek
                .recognises(c)
                .map_err(|e| BackupError::Store(format!("master key: {e}")))?
            {
                known = true;
                break;
            }
        }
        if !known {
            return Err(BackupError::Refused(
                "the configured master key is not one this database's data keys are wrapped \
                 under; supply the deployment's master key"
                    .into(),
            ));
        }
        let digest = Key32::from_bytes(manifest_digest(m)?);
        let envelope = kek
            .wrap(
                EnvelopeHeader {
                    kek_version: 0,
                    dek_version: 0,
                },
                &context(),
                &digest,
            )
            .map_err(|e| BackupError::Store(format!("cannot seal the manifest: {e}")))?;
        Ok(Some(Seal {
            envelope: B64.encode(envelope),
        }))
    }
}

/// Checks an archive's seal with the configured master key, or its absence against
/// `--accept-unsealed`.
pub(super) async fn check(
    config: &Config,
    facts: &Checked,
    accept_unsealed: bool,
) -> Result<(), String> {
    let Some(seal) = &facts.seal else {
        // Even then the archive must name master-key versions, one of which the configured key
        // is (checked by `master_key_matches`): an archive with none ties to no key at all.
        if accept_unsealed && !facts.kek_checks.is_empty() {
            super::out("seal: none; accepted with --accept-unsealed");
            return Ok(());
        }
        return Err(
            "the archive carries no master-key seal, so nothing shows that a holder of the \
             master key wrote it (age shows who can read an archive, not who wrote it). Every \
             deployment with a key file, the environment key or an HSM seals its archives: treat \
             an unsealed one as forged unless it was made under master_key = \"shares\" and you \
             know where it came from; then repeat with --accept-unsealed"
                .into(),
        );
    };
    let Some(kek) = Sealer::for_config(config).await?.kek else {
        return Err(
            "master_key = \"shares\": the seal can only be checked with the master key; rebuild \
             it with `gatehouse keys combine` and configure it as master_key_file"
                .into(),
        );
    };
    let refused = || {
        "the archive's seal does not open with the configured master key: it was not written by \
         this deployment, or its manifest was altered"
            .to_owned()
    };
    // An envelope of 32 bytes is well under 256 bytes; nothing longer goes to the key's holder.
    if seal.envelope.len() > 344 {
        return Err(refused());
    }
    let envelope = B64
        .decode(seal.envelope.as_bytes())
        .map_err(|_| refused())?;
    let opened = match kek.unwrap(&envelope, &context()) {
        Ok(k) => k,
        Err(KekError::Device(e)) => {
            return Err(format!(
                "master key: the HSM failed while opening the seal: {e}"
            ));
        }
        Err(KekError::Open(_)) => return Err(refused()),
    };
    let expected = manifest_digest(&facts.manifest).map_err(|e| e.to_string())?;
    if !gatehouse_crypto::ct_eq(opened.expose().as_slice(), expected.as_slice()) {
        return Err(refused());
    }
    super::out("seal: made by the configured master key");
    Ok(())
}

/// A sink that passes everything on and keeps the check values of the active master-key
/// versions, so `create` can tell whether the configured key is the database's.
pub(super) struct Watch<S> {
    inner: S,
    current: Option<(usize, usize)>,
    checks: Vec<Vec<u8>>,
}

impl<S> Watch<S> {
    pub(super) fn new(inner: S) -> Self {
        Self {
            inner,
            current: None,
            checks: Vec::new(),
        }
    }

    pub(super) fn into_parts(self) -> (S, Vec<Vec<u8>>) {
        (self.inner, self.checks)
    }
}

impl<S: SnapshotSink> SnapshotSink for Watch<S> {
    fn start(&mut self, info: &SnapshotInfo) -> Result<(), BackupError> {
        self.inner.start(info)
    }

    fn begin_table(&mut self, table: &Table) -> Result<(), BackupError> {
        let at = |n: &str| table.columns.iter().position(|c| c.name == n);
        self.current = match (table.name.as_str(), at("check_value"), at("state")) {
            ("kek_versions", Some(c), Some(s)) => Some((c, s)),
            _ => None,
        };
        self.inner.begin_table(table)
    }

    fn row(&mut self, row: &[Value]) -> Result<(), BackupError> {
        if let Some((c, s)) = self.current
            && row.get(s) == Some(&Value::Text("active".into()))
            && let Some(Value::Blob(b)) = row.get(c)
        {
            self.checks.push(b.clone());
        }
        self.inner.row(row)
    }

    fn end_table(&mut self) -> Result<(), BackupError> {
        self.current = None;
        self.inner.end_table()
    }
}

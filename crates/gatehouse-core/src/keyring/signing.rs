//! The checkpoint-signing key: Ed25519, its seed random and stored only wrapped under the master
//! key. Verification unwraps the seed and checks it yields the stored public key, so a key
//! planted in the database by someone without the master key is not trusted.

use gatehouse_crypto::{EnvelopeHeader, Key32, SigningKey, context, random_key, verify_ed25519};

use super::Keyring;
use crate::audit::{self, Actor, AuditEvent, SigningKeyRecord};
use crate::error::Error;
use crate::store::PlatformTx;

fn signing_context(version: u32) -> Vec<u8> {
    context("gatehouse.signing.v1", &[&version.to_be_bytes()])
}

impl Keyring {
    fn unwrap_seed(&self, record: &SigningKeyRecord) -> Result<Key32, Error> {
        if record.kek_version != self.kek_version {
            return Err(Error::Unreadable(format!(
                "signing key {} is wrapped under master-key version {}, not {}",
                record.version, record.kek_version, self.kek_version
            )));
        }
        self.kek
            .unwrap(&record.wrapped, &signing_context(record.version))
            .map_err(|e| Error::Unreadable(format!("signing key {}: {e}", record.version)))
    }

    /// Loads the newest signing key, creating version 1 when there is none.
    pub(super) async fn load_signer(&self) -> Result<(u32, SigningKey), Error> {
        let mut tx = self.store.begin().await?;
        let existing = tx
            .signing_keys()
            .await?
            .into_iter()
            .max_by_key(|k| k.version);
        let record = match existing {
            Some(k) => k,
            None => {
                let record = self.create_signing_key(tx.as_mut()).await?;
                let proof = audit::append_operator(
                    tx.as_mut(),
                    self.clock.as_ref(),
                    AuditEvent::success(
                        Actor::system("keyring"),
                        "keyring.signing_key_created",
                        "signing_key",
                        record.version,
                    ),
                )
                .await?;
                tx.commit(proof).await?;
                record
            }
        };
        let seed = self.unwrap_seed(&record)?;
        let key = SigningKey::from_seed(&seed).map_err(|e| Error::Internal(e.to_string()))?;
        if key.public_key() != record.public_key {
            return Err(Error::Unreadable(
                "the stored checkpoint public key does not match its wrapped seed".into(),
            ));
        }
        Ok((record.version, key))
    }

    async fn create_signing_key(&self, tx: &mut dyn PlatformTx) -> Result<SigningKeyRecord, Error> {
        let seed = random_key().map_err(|e| Error::Internal(e.to_string()))?;
        let key = SigningKey::from_seed(&seed).map_err(|e| Error::Internal(e.to_string()))?;
        let record = SigningKeyRecord {
            version: 1,
            public_key: key.public_key(),
            wrapped: self
                .kek
                .wrap(
                    EnvelopeHeader {
                        kek_version: self.kek_version,
                        dek_version: 1,
                    },
                    &signing_context(1),
                    &seed,
                )
                .map_err(|e| Error::Internal(e.to_string()))?,
            kek_version: self.kek_version,
            created_at: self.clock.now(),
        };
        tx.insert_signing_key(&record).await?;
        Ok(record)
    }

    /// Signs `message` with the current checkpoint key; returns its version and the signature.
    pub fn sign_checkpoint(&self, message: &[u8]) -> Result<(u32, Vec<u8>), Error> {
        let guard = self
            .signer
            .get()
            .ok_or_else(|| Error::Internal("the checkpoint signer is not loaded".into()))?;
        Ok((guard.0, guard.1.sign(message)))
    }

    /// Checks a checkpoint signature against the trusted key of `version` among `keys`.
    pub fn verify_checkpoint(
        &self,
        keys: &[SigningKeyRecord],
        version: u32,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), String> {
        let record = keys
            .iter()
            .find(|k| k.version == version)
            .ok_or_else(|| format!("signed with unknown key version {version}"))?;
        let seed = self.unwrap_seed(record).map_err(|e| e.to_string())?;
        let key = SigningKey::from_seed(&seed).map_err(|e| e.to_string())?;
        if key.public_key() != record.public_key {
            return Err("its signing key's public half was replaced".into());
        }
        if verify_ed25519(&record.public_key, message, signature) {
            Ok(())
        } else {
            Err("the signature does not verify".into())
        }
    }

    /// Rewraps every signing key under `new_kek` (part of master-key rotation).
    pub(super) async fn rewrap_signing_keys(
        &self,
        tx: &mut dyn PlatformTx,
        new_kek: &gatehouse_crypto::AeadKey,
        new_version: u32,
    ) -> Result<(), Error> {
        for k in tx.signing_keys().await? {
            if k.kek_version == new_version {
                continue;
            }
            let seed = self.unwrap_seed(&k)?;
            let wrapped = new_kek
                .wrap(
                    EnvelopeHeader {
                        kek_version: new_version,
                        dek_version: k.version,
                    },
                    &signing_context(k.version),
                    &seed,
                )
                .map_err(|e| Error::Internal(e.to_string()))?;
            tx.rewrap_signing_key(k.version, &wrapped, new_version)
                .await?;
        }
        Ok(())
    }
}

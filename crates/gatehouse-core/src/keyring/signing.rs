//! Signing keys: Ed25519, each seed random and stored only wrapped under the master key. One
//! purpose signs audit checkpoints, the other access tokens. Loading unwraps the seed and checks
//! it yields the stored public key, so a key planted in the database by someone without the master
//! key is never trusted.

use gatehouse_crypto::{
    EnvelopeHeader, JwtSigner, Key32, SigningKey, context, random_key, verify_ed25519,
};
use time::OffsetDateTime;

use super::{Keyring, MasterKek};
use crate::audit::{self, Actor, AuditEvent, SigningKeyRecord, SigningPurpose};
use crate::error::Error;
use crate::store::PlatformTx;

/// A token-signing key ready to sign and to publish.
#[derive(Debug)]
pub struct TokenKey {
    pub version: u32,
    pub created_at: OffsetDateTime,
    pub signer: JwtSigner,
}

/// The token-signing keys among `all`.
fn tokens(all: Vec<SigningKeyRecord>) -> Vec<SigningKeyRecord> {
    all.into_iter()
        .filter(|k| k.purpose == SigningPurpose::Token)
        .collect()
}

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

    /// Unwraps a key's seed and checks it yields the stored public key.
    fn trusted_seed(&self, record: &SigningKeyRecord) -> Result<Key32, Error> {
        let seed = self.unwrap_seed(record)?;
        let key = SigningKey::from_seed(&seed).map_err(|e| Error::Internal(e.to_string()))?;
        if key.public_key() != record.public_key {
            return Err(Error::Unreadable(format!(
                "the stored public key of signing key {} does not match its wrapped seed",
                record.version
            )));
        }
        Ok(seed)
    }

    /// Loads the newest checkpoint key, creating one when there is none.
    pub(super) async fn load_signer(&self) -> Result<(u32, SigningKey), Error> {
        let mut tx = self.begin_key_creation().await?;
        let existing = tx
            .signing_keys()
            .await?
            .into_iter()
            .filter(|k| k.purpose == SigningPurpose::Audit)
            .max_by_key(|k| k.version);
        let record = match existing {
            Some(k) => k,
            None => {
                let (record, proof) = self
                    .create_signing_key(tx.as_mut(), SigningPurpose::Audit)
                    .await?;
                tx.commit(proof).await?;
                record
            }
        };
        let seed = self.trusted_seed(&record)?;
        let key = SigningKey::from_seed(&seed).map_err(|e| Error::Internal(e.to_string()))?;
        Ok((record.version, key))
    }

    async fn create_signing_key(
        &self,
        tx: &mut dyn PlatformTx,
        purpose: SigningPurpose,
    ) -> Result<(SigningKeyRecord, audit::Audited), Error> {
        let version = tx
            .signing_keys()
            .await?
            .iter()
            .map(|k| k.version)
            .max()
            .unwrap_or(0)
            .saturating_add(1);
        let seed = random_key().map_err(|e| Error::Internal(e.to_string()))?;
        let key = SigningKey::from_seed(&seed).map_err(|e| Error::Internal(e.to_string()))?;
        let record = SigningKeyRecord {
            version,
            purpose,
            public_key: key.public_key(),
            wrapped: self
                .kek
                .wrap(
                    EnvelopeHeader {
                        kek_version: self.kek_version,
                        dek_version: version,
                    },
                    &signing_context(version),
                    &seed,
                )
                .map_err(|e| Error::Internal(e.to_string()))?,
            kek_version: self.kek_version,
            created_at: self.clock.now(),
        };
        tx.insert_signing_key(&record).await?;
        let event = AuditEvent::success(
            Actor::system("keyring"),
            "keyring.signing_key_created",
            "signing_key",
            record.version,
        )
        .with_details(format!("{{\"purpose\":\"{}\"}}", purpose.as_str()));
        let proof = audit::append_operator(tx, self.clock.as_ref(), event).await?;
        Ok((record, proof))
    }

    /// Adds a token-signing key; new tokens are signed with it, older keys stay published until
    /// their last token expires. Returns its version (the `kid`).
    pub async fn rotate_token_key(&self) -> Result<u32, Error> {
        let mut tx = self.begin_key_creation().await?;
        let (record, proof) = self
            .create_signing_key(tx.as_mut(), SigningPurpose::Token)
            .await?;
        tx.commit(proof).await?;
        Ok(record.version)
    }

    /// Every token-signing key, oldest first, as signers (the newest signs; all verify until
    /// retired by age). Creates the first when there is none.
    pub async fn token_keys(&self) -> Result<Vec<TokenKey>, Error> {
        let mut records = tokens(self.store.begin_read().await?.signing_keys().await?);
        if records.is_empty() {
            // Looked at again under the lock: another instance may have made it meanwhile.
            let mut tx = self.begin_key_creation().await?;
            records = tokens(tx.signing_keys().await?);
            if records.is_empty() {
                let (record, proof) = self
                    .create_signing_key(tx.as_mut(), SigningPurpose::Token)
                    .await?;
                tx.commit(proof).await?;
                records.push(record);
            }
        }
        records
            .iter()
            .map(|r| {
                let seed = self.trusted_seed(r)?;
                Ok(TokenKey {
                    version: r.version,
                    created_at: r.created_at,
                    signer: JwtSigner::from_seed(r.version.to_string(), &seed)
                        .map_err(|e| Error::Internal(e.to_string()))?,
                })
            })
            .collect()
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
        new_kek: &dyn MasterKek,
        new_version: u32,
    ) -> Result<(), Error> {
        for k in tx.signing_keys().await? {
            if k.kek_version == new_version {
                continue;
            }
            let seed = self.unwrap_seed(&k)?;
            let wrapped = super::kek::wrap_verified(
                new_kek,
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

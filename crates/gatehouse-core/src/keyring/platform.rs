//! The platform data key: seals values that belong to no organisation (a user's TOTP seed, mail
//! waiting in the outbox). Random, stored only wrapped under the master key, and rewrapped with
//! the signing keys when the master key rotates, so its envelopes never need re-encrypting.
//!
//! Its nonces are random like the data keys', but platform seals are rare (one per enrolment or
//! message), far below the 2^32 bound, so no per-version budget is kept.

use std::sync::Arc;

use gatehouse_crypto::{AeadKey, EnvelopeHeader, SecretBytes, context, random_key};

use super::{Keyring, MasterKek};
use crate::audit::{self, Actor, AuditEvent};
use crate::error::Error;
use crate::store::{PlatformKeyRecord, PlatformTx};

fn wrap_context(version: u32) -> Vec<u8> {
    context("gatehouse.platform-key.v1", &[&version.to_be_bytes()])
}

fn value_context(kind: &str, record_id: &str) -> Vec<u8> {
    context(
        "gatehouse.platform-value.v1",
        &[kind.as_bytes(), record_id.as_bytes()],
    )
}

impl Keyring {
    /// Loads the newest platform key, creating version 1 on a store that has none.
    pub(super) async fn load_platform_key(&self) -> Result<(u32, Arc<AeadKey>), Error> {
        let mut tx = self.begin_key_creation().await?;
        let newest = tx
            .platform_keys()
            .await?
            .into_iter()
            .max_by_key(|k| k.version);
        let record = match newest {
            Some(k) => k,
            None => {
                let raw = random_key().map_err(|e| Error::Internal(e.to_string()))?;
                let record = PlatformKeyRecord {
                    version: 1,
                    wrapped: self
                        .kek
                        .wrap(
                            EnvelopeHeader {
                                kek_version: self.kek_version,
                                dek_version: 1,
                            },
                            &wrap_context(1),
                            &raw,
                        )
                        .map_err(|e| Error::Internal(e.to_string()))?,
                    kek_version: self.kek_version,
                    created_at: self.clock.now(),
                };
                tx.insert_platform_key(&record).await?;
                let proof = audit::append_operator(
                    tx.as_mut(),
                    self.clock.as_ref(),
                    AuditEvent::success(
                        Actor::system("keyring"),
                        "keyring.platform_key_created",
                        "platform_key",
                        1,
                    ),
                )
                .await?;
                tx.commit(proof).await?;
                record
            }
        };
        if record.kek_version != self.kek_version {
            return Err(Error::Unreadable(format!(
                "platform key {} is wrapped under master-key version {}, not {}; finish \
                 `gatehouse keys rotate-master`",
                record.version, record.kek_version, self.kek_version
            )));
        }
        let raw = self
            .kek
            .unwrap(&record.wrapped, &wrap_context(record.version))
            .map_err(|e| Error::Unreadable(format!("platform key {}: {e}", record.version)))?;
        let key = AeadKey::new(&raw).map_err(|e| Error::Internal(e.to_string()))?;
        Ok((record.version, Arc::new(key)))
    }

    fn platform_key(&self) -> Result<&(u32, Arc<AeadKey>), Error> {
        self.platform
            .get()
            .ok_or_else(|| Error::Internal("the platform key is not loaded".to_owned()))
    }

    /// Seals a platform-owned value; the envelope is bound to `kind` and `record_id`.
    pub fn seal_platform(
        &self,
        kind: &str,
        record_id: &str,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, Error> {
        let (version, key) = self.platform_key()?;
        key.seal_envelope(
            EnvelopeHeader {
                kek_version: self.kek_version,
                dek_version: *version,
            },
            &value_context(kind, record_id),
            plaintext,
        )
        .map_err(|e| Error::Internal(e.to_string()))
    }

    /// Opens a value sealed by [`Self::seal_platform`] for the same `kind` and `record_id`.
    pub fn open_platform(
        &self,
        kind: &str,
        record_id: &str,
        envelope: &[u8],
    ) -> Result<SecretBytes, Error> {
        let (_, key) = self.platform_key()?;
        key.open_envelope(envelope, &value_context(kind, record_id))
            .map_err(|e| Error::Unreadable(format!("{kind} {record_id}: {e}")))
    }

    pub(super) async fn rewrap_platform_keys(
        &self,
        tx: &mut dyn PlatformTx,
        new_kek: &dyn MasterKek,
        new_version: u32,
    ) -> Result<(), Error> {
        for k in tx.platform_keys().await? {
            if k.kek_version == new_version {
                continue;
            }
            let raw = self
                .kek
                .unwrap(&k.wrapped, &wrap_context(k.version))
                .map_err(|e| Error::Unreadable(format!("platform key {}: {e}", k.version)))?;
            let wrapped = super::kek::wrap_verified(
                new_kek,
                EnvelopeHeader {
                    kek_version: new_version,
                    dek_version: k.version,
                },
                &wrap_context(k.version),
                &raw,
            )
            .map_err(|e| Error::Internal(e.to_string()))?;
            tx.rewrap_platform_key(k.version, &wrapped, new_version)
                .await?;
        }
        Ok(())
    }
}

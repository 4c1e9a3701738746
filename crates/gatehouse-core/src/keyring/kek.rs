//! The master key (KEK) as an object the keyring asks to wrap and unwrap, so the key itself may
//! live where Gatehouse cannot read it: in this process (`LocalKek`, from the environment or a
//! file) or inside an HSM (the PKCS#11 source in gatehouse-infra). Core never links a PKCS#11
//! module; it only sees this trait.
//!
//! Every implementation writes the same envelope (`gatehouse_crypto::aead`): AES-256-GCM, the
//! header binding KEK and DEK versions, the context as associated data. So data wrapped under a
//! file key and data wrapped under an HSM key differ only in which key opens them, and rotation
//! between the two is the ordinary rewrap.

use gatehouse_crypto::{AeadError, AeadKey, EnvelopeHeader, Key32, key_check_value};

/// Why the master key could not wrap or unwrap.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KekError {
    /// Wrong key, wrong context or modified bytes (deliberately one error), or not an envelope.
    #[error("{0}")]
    Open(AeadError),
    /// The key's holder failed (an HSM that is unreachable, logged out, or refused the call).
    #[error("the master key's HSM failed: {0}")]
    Device(String),
}

impl From<AeadError> for KekError {
    fn from(e: AeadError) -> Self {
        Self::Open(e)
    }
}

/// Wraps `key` under `kek` and opens the result again before handing it out. Rotation retires
/// the old master key at its end, so a wrapping the new key could not open (a faulty token, an IV
/// the token replaced) would lose what it protects for good.
pub fn wrap_verified(
    kek: &dyn MasterKek,
    versions: EnvelopeHeader,
    context: &[u8],
    key: &Key32,
) -> Result<Vec<u8>, KekError> {
    let wrapped = kek.wrap(versions, context, key)?;
    let back = kek.unwrap(&wrapped, context)?;
    if !gatehouse_crypto::ct_eq(back.expose().as_slice(), key.expose().as_slice()) {
        return Err(KekError::Device(
            "the master key opened what it had just wrapped to other bytes".into(),
        ));
    }
    Ok(wrapped)
}

/// A master key the keyring can use without holding its bytes.
///
/// Calls are synchronous. An implementation that talks to a device keeps the async executor
/// moving itself (the PKCS#11 one runs its calls under `block_in_place`); the keyring calls it
/// only at start, when a data key is first used in this process (unwrapped keys are cached),
/// when a key version is added, and during `rotate-master`.
pub trait MasterKek: Send + Sync + std::fmt::Debug {
    /// Seals `key` into an envelope with `versions` in its header and `context` bound to it.
    fn wrap(
        &self,
        versions: EnvelopeHeader,
        context: &[u8],
        key: &Key32,
    ) -> Result<Vec<u8>, KekError>;

    /// Opens what [`Self::wrap`] sealed with the same `context`.
    fn unwrap(&self, wrapped: &[u8], context: &[u8]) -> Result<Key32, KekError>;

    /// A value stored in `kek_versions` for master-key version `version`, from which
    /// [`Self::recognises`] later tells this key from any other without the key leaving its
    /// holder.
    fn new_check_value(&self, version: u32) -> Result<Vec<u8>, KekError>;

    /// Whether `check_value` (one stored by any kind of master key) was made by this key.
    fn recognises(&self, check_value: &[u8]) -> Result<bool, KekError>;

    /// Where the key is, for messages and logs (never a secret).
    fn describe(&self) -> String;
}

/// A master key held in this process: from `GATEHOUSE_MASTER_KEY`, a key file, or the
/// development file.
pub struct LocalKek {
    key: AeadKey,
    check: [u8; 32],
}

impl std::fmt::Debug for LocalKek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LocalKek([redacted])")
    }
}

impl LocalKek {
    pub fn new(master: &Key32) -> Result<Self, KekError> {
        Ok(Self {
            key: AeadKey::new(master)?,
            check: key_check_value(master),
        })
    }
}

impl MasterKek for LocalKek {
    fn wrap(
        &self,
        versions: EnvelopeHeader,
        context: &[u8],
        key: &Key32,
    ) -> Result<Vec<u8>, KekError> {
        Ok(self.key.wrap(versions, context, key)?)
    }

    fn unwrap(&self, wrapped: &[u8], context: &[u8]) -> Result<Key32, KekError> {
        Ok(self.key.unwrap(wrapped, context)?)
    }

    fn new_check_value(&self, _version: u32) -> Result<Vec<u8>, KekError> {
        Ok(self.check.to_vec())
    }

    fn recognises(&self, check_value: &[u8]) -> Result<bool, KekError> {
        Ok(gatehouse_crypto::ct_eq(check_value, &self.check))
    }

    fn describe(&self) -> String {
        "a master key held in memory".to_owned()
    }
}

/// The context of an HSM key's check value (see `new_check_value` in the PKCS#11 source): its
/// own label, so a check envelope never opens as a wrapped key or the reverse.
#[must_use]
pub fn check_context() -> Vec<u8> {
    gatehouse_crypto::context("gatehouse.kek-check.v1", &[])
}

/// The plaintext of an HSM key's check envelope.
pub const CHECK_PLAINTEXT: &[u8] = b"gatehouse master key check v1";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_key_recognises_only_its_own_check_value() {
        let a = LocalKek::new(&Key32::from_bytes([1; 32])).unwrap();
        let b = LocalKek::new(&Key32::from_bytes([2; 32])).unwrap();
        let check = a.new_check_value(1).unwrap();
        assert!(a.recognises(&check).unwrap());
        assert!(!b.recognises(&check).unwrap());
        let v = EnvelopeHeader {
            kek_version: 1,
            dek_version: 2,
        };
        let wrapped = a.wrap(v, b"ctx", &Key32::from_bytes([9; 32])).unwrap();
        assert_eq!(a.unwrap(&wrapped, b"ctx").unwrap().expose(), &[9; 32]);
        assert!(matches!(b.unwrap(&wrapped, b"ctx"), Err(KekError::Open(_))));
        assert!(a.unwrap(&wrapped, b"other").is_err());
    }
}

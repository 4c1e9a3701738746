//! Ed25519 signatures (aws-lc-rs), for audit checkpoints.

use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

use crate::secret::Key32;

/// An Ed25519 key pair made from a 32-byte seed. The seed is the caller's `Key32` (zeroed on
/// drop); aws-lc holds the expanded key.
pub struct SigningKey(Ed25519KeyPair);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey([redacted])")
    }
}

impl SigningKey {
    pub fn from_seed(seed: &Key32) -> Result<Self, crate::AeadError> {
        Ed25519KeyPair::from_seed_unchecked(seed.expose())
            .map(Self)
            .map_err(|_| crate::AeadError::SealFailed)
    }

    #[must_use]
    pub fn public_key(&self) -> Vec<u8> {
        self.0.public_key().as_ref().to_vec()
    }

    #[must_use]
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.0.sign(message).as_ref().to_vec()
    }
}

/// Whether `signature` is a valid Ed25519 signature of `message` under `public_key`.
#[must_use]
pub fn verify_ed25519(public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    UnparsedPublicKey::new(&ED25519, public_key)
        .verify(message, signature)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify() {
        let k = SigningKey::from_seed(&Key32::from_bytes([4; 32])).unwrap();
        let sig = k.sign(b"head");
        assert!(verify_ed25519(&k.public_key(), b"head", &sig));
        assert!(!verify_ed25519(&k.public_key(), b"head2", &sig));
        let other = SigningKey::from_seed(&Key32::from_bytes([5; 32])).unwrap();
        assert!(!verify_ed25519(&other.public_key(), b"head", &sig));
    }

    #[test]
    fn rfc8032_test_vector_1() {
        // RFC 8032 section 7.1, TEST 1: empty message.
        let seed = hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
        let k = SigningKey::from_seed(&Key32::from_bytes(seed.try_into().unwrap())).unwrap();
        assert_eq!(
            k.public_key(),
            hex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
        );
        assert_eq!(
            k.sign(b""),
            hex(
                "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
            )
        );
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }
}

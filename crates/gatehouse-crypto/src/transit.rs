//! Transit encryption for values the caller stores itself. Each message gets its own AES-256-GCM
//! key, derived with HKDF-SHA-256 from the data key and a random 128-bit salt, and a random nonce:
//! the data key itself never encrypts, so no per-key nonce budget has to be counted for
//! ciphertexts that live outside Gatehouse. Layout: `salt (16) || nonce (12) || ciphertext || tag`.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::hkdf::{HKDF_SHA256, Prk};
use aws_lc_rs::hmac;

use crate::aead::AeadError;
use crate::random::fill_random;
use crate::secret::{Key32, SecretBytes};

const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const EXTRACT_SALT: &[u8] = b"gatehouse.transit.v1";

/// A data key's transit root: only ever used to derive per-message keys.
pub struct TransitKey(Prk);

impl std::fmt::Debug for TransitKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TransitKey([redacted])")
    }
}

impl TransitKey {
    #[must_use]
    pub fn derive(key: &Key32) -> Self {
        // HKDF-Extract is HMAC(salt, IKM) (RFC 5869, 2.2), done once here. A `Prk` from
        // `Salt::extract` keeps the salt and the secret and runs extract and expand together on
        // every `expand` (aws-lc's one-shot HKDF), which was half of each message's key cost.
        let tag = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, EXTRACT_SALT),
            key.expose(),
        );
        Self(Prk::new_less_safe(HKDF_SHA256, tag.as_ref()))
    }

    fn message_key(&self, salt: &[u8]) -> Result<LessSafeKey, AeadError> {
        let info = [salt];
        let okm = self
            .0
            .expand(&info, &AES_256_GCM)
            .map_err(|_| AeadError::SealFailed)?;
        Ok(LessSafeKey::new(UnboundKey::from(okm)))
    }

    /// Seals `plaintext` with `aad` bound.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, AeadError> {
        let mut head = [0u8; SALT_LEN + NONCE_LEN];
        fill_random(&mut head).map_err(|_| AeadError::SealFailed)?;
        let (salt, nonce) = head.split_at(SALT_LEN);
        let key = self.message_key(salt)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| AeadError::SealFailed)?;
        let mut out = Vec::with_capacity(head.len() + plaintext.len() + TAG_LEN);
        out.extend_from_slice(&head);
        out.extend_from_slice(plaintext);
        let (_, body) = out.split_at_mut(head.len());
        let tag = key
            .seal_in_place_separate_tag(nonce, Aad::from(aad), body)
            .map_err(|_| AeadError::SealFailed)?;
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Opens what [`Self::seal`] made with the same `aad`.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<SecretBytes, AeadError> {
        if sealed.len() < SALT_LEN + NONCE_LEN + TAG_LEN {
            return Err(AeadError::Malformed);
        }
        let (head, body) = sealed.split_at(SALT_LEN + NONCE_LEN);
        let (salt, nonce) = head.split_at(SALT_LEN);
        let key = self.message_key(salt)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| AeadError::Malformed)?;
        let mut buf = body.to_vec();
        let plain_len = key
            .open_in_place(nonce, Aad::from(aad), &mut buf)
            .map_err(|_| AeadError::OpenFailed)?
            .len();
        buf.truncate(plain_len);
        Ok(SecretBytes::new(buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> TransitKey {
        TransitKey::derive(&Key32::from_bytes([b; 32]))
    }

    #[test]
    fn extracting_once_derives_the_same_keys_as_extract_and_expand_together() {
        use aws_lc_rs::hkdf::Salt;
        for b in [0u8, 7, 255] {
            let ikm = Key32::from_bytes([b; 32]);
            let together = TransitKey(Salt::new(HKDF_SHA256, EXTRACT_SALT).extract(ikm.expose()));
            let once = TransitKey::derive(&ikm);
            let sealed = together.seal(b"ctx", b"written before").unwrap();
            assert_eq!(
                once.open(b"ctx", &sealed).unwrap().expose(),
                b"written before"
            );
            let sealed = once.seal(b"ctx", b"written after").unwrap();
            assert_eq!(
                together.open(b"ctx", &sealed).unwrap().expose(),
                b"written after"
            );
        }
    }

    #[test]
    fn round_trip_and_every_binding_holds() {
        let k = key(7);
        let sealed = k.seal(b"ctx", b"hello").unwrap();
        assert_eq!(sealed.len(), 16 + 12 + 5 + 16);
        assert_eq!(k.open(b"ctx", &sealed).unwrap().expose(), b"hello");
        assert!(k.open(b"other", &sealed).is_err(), "context is bound");
        assert!(key(8).open(b"ctx", &sealed).is_err(), "another key fails");
        let mut flipped = sealed.clone();
        flipped[3] ^= 1;
        assert!(k.open(b"ctx", &flipped).is_err(), "the salt is bound");
        assert!(k.open(b"ctx", &sealed[..20]).is_err());
        // Fresh salt and nonce each time.
        assert_ne!(k.seal(b"ctx", b"hello").unwrap(), sealed);
        assert_eq!(
            k.open(b"", &k.seal(b"", b"").unwrap()).unwrap().expose(),
            b""
        );
    }
}

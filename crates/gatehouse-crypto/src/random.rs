//! Randomness from the operating system's CSPRNG, and tokens built from it.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::secret::{Key32, SecretString};

/// The random source failed. Callers must fail closed.
#[derive(Debug)]
pub struct RandomError;

impl std::fmt::Display for RandomError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the random source failed")
    }
}

impl std::error::Error for RandomError {}

/// Fills `buf` from aws-lc's CSPRNG (a DRBG seeded and reseeded from the operating system): the
/// same provider as the ciphers, and no system call per nonce.
pub fn fill_random(buf: &mut [u8]) -> Result<(), RandomError> {
    aws_lc_rs::rand::fill(buf).map_err(|_| RandomError)
}

/// A 96-bit random nonce, straight from aws-lc's CSPRNG on every call. Buffering random bytes in
/// the process would be faster, but a buffer survives what aws-lc's generator detects and
/// reseeds after (a fork, a VM snapshot restored or cloned), and a repeated nonce under one key
/// breaks AES-GCM. So no buffer.
pub fn random_nonce() -> Result<[u8; 12], RandomError> {
    let mut nonce = [0u8; 12];
    fill_random(&mut nonce)?;
    Ok(nonce)
}

/// A fresh random 256-bit key.
pub fn random_key() -> Result<Key32, RandomError> {
    let mut key = Key32::zeroed();
    fill_random(key.expose_mut())?;
    Ok(key)
}

/// A URL-safe random token carrying `bytes` bytes of entropy.
pub fn random_token(bytes: usize) -> Result<SecretString, RandomError> {
    let mut buf = zeroize::Zeroizing::new(vec![0u8; bytes]);
    fill_random(&mut buf)?;
    Ok(SecretString::new(URL_SAFE_NO_PAD.encode(buf.as_slice())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ() {
        let a = random_key().unwrap();
        let b = random_key().unwrap();
        assert_ne!(a.expose(), b.expose());
        assert_ne!(a.expose(), &[0u8; 32]);
    }

    #[test]
    fn nonces_are_distinct_across_refills() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            assert!(seen.insert(random_nonce().unwrap()));
        }
    }

    #[test]
    fn token_length_matches_entropy() {
        let t = random_token(32).unwrap();
        // 32 bytes -> 43 base64url characters without padding.
        assert_eq!(t.expose().len(), 43);
        assert!(
            t.expose()
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
    }
}

//! Types for secret values. They zero their memory on drop, redact themselves in `Debug`, and
//! deliberately implement neither `Display` nor `Serialize`: reading the value takes an explicit
//! `expose()` call that a reviewer can grep for.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// A 256-bit key (master key, data key). Zeroed on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Key32([u8; 32]);

impl Key32 {
    pub(crate) fn zeroed() -> Self {
        Self([0u8; 32])
    }

    /// Wraps raw key bytes. The caller's copy is its own to zero.
    #[must_use]
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Parses standard base64 (with padding) of exactly 32 bytes, surrounding whitespace ignored.
    pub fn from_base64(text: &str) -> Result<Self, KeyParseError> {
        let decoded = Zeroizing::new(
            STANDARD
                .decode(text.trim().as_bytes())
                .map_err(|_| KeyParseError::NotBase64)?,
        );
        let bytes: [u8; 32] = decoded
            .as_slice()
            .try_into()
            .map_err(|_| KeyParseError::WrongLength(decoded.len()))?;
        Ok(Self(bytes))
    }

    /// Standard base64 of the key, for writing a key file. The result is itself secret.
    #[must_use]
    pub fn to_base64(&self) -> SecretString {
        SecretString::new(STANDARD.encode(self.0))
    }

    #[must_use]
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    pub(crate) fn expose_mut(&mut self) -> &mut [u8; 32] {
        &mut self.0
    }
}

impl fmt::Debug for Key32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key32([redacted])")
    }
}

/// Why a key could not be read. The messages never contain key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyParseError {
    NotBase64,
    WrongLength(usize),
}

impl fmt::Display for KeyParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotBase64 => f.write_str("is not valid standard base64"),
            Self::WrongLength(n) => write!(f, "decodes to {n} bytes; a key must be exactly 32"),
        }
    }
}

impl std::error::Error for KeyParseError {}

/// An owned secret string (password, token, service credential). Zeroed on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SecretString(String);

impl SecretString {
    #[must_use]
    pub fn new(value: String) -> Self {
        Self(value)
    }

    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for SecretString {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString([redacted])")
    }
}

/// Owned secret bytes. Zeroed on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    #[must_use]
    pub fn new(value: Vec<u8>) -> Self {
        Self(value)
    }

    #[must_use]
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretBytes([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let s = SecretString::new("hunter2-very-secret".into());
        let k = Key32::from_bytes([0x41; 32]);
        let b = SecretBytes::new(b"raw-secret-bytes".to_vec());
        let printed = format!("{s:?} {k:?} {b:?} {:?}", Some(&s));
        assert!(!printed.contains("hunter2"));
        assert!(!printed.contains("AAAA"));
        assert!(!printed.contains("raw-secret"));
        assert!(printed.contains("redacted"));
    }

    #[test]
    fn base64_round_trip_and_refusals() {
        let k = Key32::from_bytes([7u8; 32]);
        let text = k.to_base64();
        let back = Key32::from_base64(text.expose()).unwrap();
        assert_eq!(back.expose(), k.expose());
        assert_eq!(
            Key32::from_base64("not base64!"),
            Err(KeyParseError::NotBase64)
        );
        assert_eq!(
            Key32::from_base64("AAAA"),
            Err(KeyParseError::WrongLength(3))
        );
    }

    impl PartialEq for Key32 {
        fn eq(&self, other: &Self) -> bool {
            crate::ct_eq(&self.0, &other.0)
        }
    }
}

//! Authenticated encryption with AES-256-GCM (aws-lc-rs), in two shapes:
//!
//! - the **field envelope**: a self-describing header (format version, algorithm, KEK version, DEK
//!   version, 96-bit random nonce) followed by the ciphertext and tag. The associated data is the
//!   header plus a caller-supplied context, so neither the versions nor the context can be changed
//!   without the open failing;
//! - **key wrapping**: a data key sealed under a key-encryption key with the same construction.
//!
//! Nonces are 96 random bits from the CSPRNG per encryption (`random_nonce`, never buffered). With random nonces the collision risk for
//! one key stays below 2^-32 up to 2^32 encryptions (NIST SP 800-38D, 8.3); the keyring counts
//! encryptions per data-key version and rotates long before that bound.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hmac;

use crate::secret::{Key32, SecretBytes};

/// Envelope format version written by this code.
pub const FORMAT_V1: u8 = 1;
/// Algorithm id for AES-256-GCM with a 96-bit nonce and 128-bit tag.
pub const ALG_AES_256_GCM: u8 = 1;
/// Bytes before the ciphertext: version, algorithm, KEK version, DEK version, nonce.
pub const HEADER_LEN: usize = 1 + 1 + 4 + 4 + NONCE_LEN;
const TAG_LEN: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AeadError {
    /// Wrong key, wrong context, or modified bytes: deliberately indistinguishable.
    OpenFailed,
    /// Not an envelope this code can read (too short, unknown version or algorithm).
    Malformed,
    /// The random source or the cipher failed.
    SealFailed,
}

impl std::fmt::Display for AeadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::OpenFailed => {
                "the ciphertext could not be opened: wrong key or context, or it was modified"
            }
            Self::Malformed => "the ciphertext is not an envelope this version can read",
            Self::SealFailed => "encryption failed",
        })
    }
}

impl std::error::Error for AeadError {}

fn versions_bytes(v: EnvelopeHeader) -> [u8; HEADER_LEN - NONCE_LEN] {
    let k = v.kek_version.to_be_bytes();
    let d = v.dek_version.to_be_bytes();
    [
        FORMAT_V1,
        ALG_AES_256_GCM,
        k[0],
        k[1],
        k[2],
        k[3],
        d[0],
        d[1],
        d[2],
        d[3],
    ]
}

/// The readable part of an envelope, for choosing the key that opens it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnvelopeHeader {
    pub kek_version: u32,
    pub dek_version: u32,
}

impl EnvelopeHeader {
    /// Reads the header of `envelope` without opening it.
    pub fn parse(envelope: &[u8]) -> Result<Self, AeadError> {
        if envelope.len() < HEADER_LEN + TAG_LEN {
            return Err(AeadError::Malformed);
        }
        let (head, _) = envelope.split_at(HEADER_LEN);
        let [format, alg, k0, k1, k2, k3, d0, d1, d2, d3, ..] = *head else {
            return Err(AeadError::Malformed);
        };
        if format != FORMAT_V1 || alg != ALG_AES_256_GCM {
            return Err(AeadError::Malformed);
        }
        Ok(Self {
            kek_version: u32::from_be_bytes([k0, k1, k2, k3]),
            dek_version: u32::from_be_bytes([d0, d1, d2, d3]),
        })
    }
}

/// The 22 header bytes of a new envelope sealed with `nonce`. For a key held elsewhere (an HSM)
/// that runs AES-256-GCM itself: it seals with these bytes followed by the context as associated
/// data and appends ciphertext and tag, so its envelopes have exactly this module's format.
#[must_use]
pub fn envelope_header(versions: EnvelopeHeader, nonce: &[u8; NONCE_LEN]) -> [u8; HEADER_LEN] {
    let mut header = [0u8; HEADER_LEN];
    let (fixed, nonce_slot) = header.split_at_mut(HEADER_LEN - NONCE_LEN);
    fixed.copy_from_slice(&versions_bytes(versions));
    nonce_slot.copy_from_slice(nonce);
    header
}

/// An envelope's parts, for a key held elsewhere.
#[derive(Debug, Clone, Copy)]
pub struct EnvelopeParts<'a> {
    /// The header bytes: the start of the associated data.
    pub header: &'a [u8],
    pub nonce: [u8; NONCE_LEN],
    /// The ciphertext followed by the tag.
    pub body: &'a [u8],
}

/// Splits an envelope into its parts without opening it.
pub fn split_envelope(envelope: &[u8]) -> Result<EnvelopeParts<'_>, AeadError> {
    EnvelopeHeader::parse(envelope)?;
    let (header, body) = envelope.split_at(HEADER_LEN);
    let nonce: [u8; NONCE_LEN] = header
        .get(HEADER_LEN - NONCE_LEN..)
        .and_then(|n| n.try_into().ok())
        .ok_or(AeadError::Malformed)?;
    Ok(EnvelopeParts {
        header,
        nonce,
        body,
    })
}

/// An AES-256-GCM key ready for use. The key schedule lives inside aws-lc, which cleanses it when
/// the key is dropped; the raw bytes it was made from are the caller's `Key32`, zeroed on drop.
pub struct AeadKey(LessSafeKey);

impl std::fmt::Debug for AeadKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AeadKey([redacted])")
    }
}

impl AeadKey {
    pub fn new(key: &Key32) -> Result<Self, AeadError> {
        UnboundKey::new(&AES_256_GCM, key.expose())
            .map(|k| Self(LessSafeKey::new(k)))
            .map_err(|_| AeadError::SealFailed)
    }

    /// Seals `plaintext` into a new envelope. `context` is bound as associated data.
    pub fn seal_envelope(
        &self,
        versions: EnvelopeHeader,
        context: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, AeadError> {
        let nonce = crate::random_nonce().map_err(|_| AeadError::SealFailed)?;
        let header = envelope_header(versions, &nonce);
        // Header and context as associated data, on the stack when they fit (they nearly always do).
        let mut stack = [0u8; 256];
        let heap;
        let aad: &[u8] = if HEADER_LEN + context.len() <= stack.len() {
            let (h, rest) = stack.split_at_mut(HEADER_LEN);
            h.copy_from_slice(&header);
            let (c, _) = rest.split_at_mut(context.len());
            c.copy_from_slice(context);
            stack
                .get(..HEADER_LEN + context.len())
                .ok_or(AeadError::SealFailed)?
        } else {
            heap = [header.as_slice(), context].concat();
            &heap
        };
        // One allocation: header, then the plaintext encrypted in place, then the tag.
        let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + TAG_LEN);
        out.extend_from_slice(&header);
        out.extend_from_slice(plaintext);
        let body = out.get_mut(HEADER_LEN..).ok_or(AeadError::SealFailed)?;
        let tag = self
            .0
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), body)
            .map_err(|_| AeadError::SealFailed)?;
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Opens an envelope sealed with this key and `context`.
    pub fn open_envelope(&self, envelope: &[u8], context: &[u8]) -> Result<SecretBytes, AeadError> {
        EnvelopeHeader::parse(envelope)?;
        let (head, body) = envelope.split_at(HEADER_LEN);
        let nonce_bytes: [u8; NONCE_LEN] = head
            .get(HEADER_LEN - NONCE_LEN..)
            .and_then(|n| n.try_into().ok())
            .ok_or(AeadError::Malformed)?;
        let mut aad = Vec::with_capacity(HEADER_LEN + context.len());
        aad.extend_from_slice(head);
        aad.extend_from_slice(context);
        let mut buf = body.to_vec();
        let plain_len = self
            .0
            .open_in_place(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(&aad),
                &mut buf,
            )
            .map_err(|_| AeadError::OpenFailed)?
            .len();
        buf.truncate(plain_len);
        Ok(SecretBytes::new(buf))
    }

    /// Seals `plaintext` with `aad`; returns the random nonce followed by ciphertext and tag. For
    /// formats that carry their own header (the local vault).
    pub fn seal_raw(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, AeadError> {
        let nonce = crate::random_nonce().map_err(|_| AeadError::SealFailed)?;
        let mut body = plaintext.to_vec();
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut body,
            )
            .map_err(|_| AeadError::SealFailed)?;
        let mut out = nonce.to_vec();
        out.append(&mut body);
        Ok(out)
    }

    /// Opens what [`Self::seal_raw`] produced.
    pub fn open_raw(&self, aad: &[u8], sealed: &[u8]) -> Result<SecretBytes, AeadError> {
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return Err(AeadError::Malformed);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| AeadError::Malformed)?;
        let mut buf = body.to_vec();
        let n = self
            .0
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut buf,
            )
            .map_err(|_| AeadError::OpenFailed)?
            .len();
        buf.truncate(n);
        Ok(SecretBytes::new(buf))
    }

    /// Wraps a data key under this key-encryption key.
    pub fn wrap(
        &self,
        versions: EnvelopeHeader,
        context: &[u8],
        key: &Key32,
    ) -> Result<Vec<u8>, AeadError> {
        self.seal_envelope(versions, context, key.expose())
    }

    /// Unwraps a data key sealed by [`Self::wrap`].
    pub fn unwrap(&self, wrapped: &[u8], context: &[u8]) -> Result<Key32, AeadError> {
        let raw = self.open_envelope(wrapped, context)?;
        let bytes: [u8; 32] = raw.expose().try_into().map_err(|_| AeadError::Malformed)?;
        Ok(Key32::from_bytes(bytes))
    }
}

/// A value that identifies a key without revealing it: HMAC-SHA-256 under the key of a fixed
/// label. Stored beside key versions so a wrong master key is recognised at start-up.
#[must_use]
pub fn key_check_value(key: &Key32) -> [u8; 32] {
    let mac = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, key.expose()),
        b"gatehouse key check value v1",
    );
    let mut out = [0u8; 32];
    out.copy_from_slice(mac.as_ref());
    out
}

/// Builds an unambiguous associated-data string from labelled parts (each length-prefixed).
#[must_use]
pub fn context(label: &str, parts: &[&[u8]]) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(label.len() + parts.iter().map(|p| p.len() + 4).sum::<usize>() + 4);
    for part in std::iter::once(label.as_bytes()).chain(parts.iter().copied()) {
        out.extend_from_slice(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(b: u8) -> AeadKey {
        AeadKey::new(&Key32::from_bytes([b; 32])).unwrap()
    }

    const V: EnvelopeHeader = EnvelopeHeader {
        kek_version: 3,
        dek_version: 7,
    };

    #[test]
    fn round_trip_and_header() {
        let k = key(1);
        let env = k.seal_envelope(V, b"ctx", b"hello").unwrap();
        assert_eq!(env.len(), HEADER_LEN + 5 + TAG_LEN);
        assert_eq!(EnvelopeHeader::parse(&env).unwrap(), V);
        assert_eq!(k.open_envelope(&env, b"ctx").unwrap().expose(), b"hello");
        let env2 = k.seal_envelope(V, b"ctx", b"hello").unwrap();
        assert_ne!(env, env2, "fresh nonce per seal");
    }

    #[test]
    fn wrong_key_or_context_fails() {
        let env = key(1).seal_envelope(V, b"ctx", b"hello").unwrap();
        assert_eq!(
            key(2).open_envelope(&env, b"ctx").unwrap_err(),
            AeadError::OpenFailed
        );
        assert_eq!(
            key(1).open_envelope(&env, b"ctx2").unwrap_err(),
            AeadError::OpenFailed
        );
    }

    #[test]
    fn every_flipped_bit_fails() {
        let k = key(1);
        let env = k.seal_envelope(V, b"ctx", b"some secret value").unwrap();
        for i in 0..env.len() * 8 {
            let mut bad = env.clone();
            bad[i / 8] ^= 1 << (i % 8);
            assert!(k.open_envelope(&bad, b"ctx").is_err(), "bit {i}");
        }
    }

    #[test]
    fn wrap_round_trip_and_check_values() {
        let kek = key(9);
        let dek = Key32::from_bytes([5; 32]);
        let wrapped = kek.wrap(V, b"org", &dek).unwrap();
        assert_eq!(kek.unwrap(&wrapped, b"org").unwrap().expose(), dek.expose());
        assert!(kek.unwrap(&wrapped, b"other org").is_err());
        let a = key_check_value(&Key32::from_bytes([1; 32]));
        assert_eq!(a, key_check_value(&Key32::from_bytes([1; 32])));
        assert_ne!(a, key_check_value(&Key32::from_bytes([2; 32])));
    }

    #[test]
    fn context_is_unambiguous() {
        assert_ne!(context("x", &[b"ab", b"c"]), context("x", &[b"a", b"bc"]));
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = EnvelopeHeader::parse(&bytes);
            let _ = key(1).open_envelope(&bytes, b"");
        }
    }
}

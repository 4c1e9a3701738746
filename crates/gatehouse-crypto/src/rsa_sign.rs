//! RSA signatures for DKIM (`rsa-sha256`: RSASSA-PKCS1-v1_5 with SHA-256, RFC 6376 and 8301),
//! on aws-lc-rs, and the size of an RSA public key someone published.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, PublicEncryptingKey, PublicKey};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};

/// An RSA private key of 2048 to 4096 bits (RFC 8301: verifiers need not accept larger). aws-lc
/// holds it and clears it when dropped; it never prints.
pub struct RsaSigningKey {
    pair: RsaKeyPair,
    /// The public key as SubjectPublicKeyInfo DER, made once.
    spki: Vec<u8>,
}

impl std::fmt::Debug for RsaSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RsaSigningKey({} bits, [redacted])", self.bits())
    }
}

impl RsaSigningKey {
    /// From PKCS#8 DER (`openssl genpkey -algorithm RSA` writes it, as PEM).
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, String> {
        let pair = RsaKeyPair::from_pkcs8(der).map_err(|e| rejected(e.description_()))?;
        Self::from_pair(pair)
    }

    /// A new 2048-bit key.
    pub fn generate_2048() -> Result<Self, String> {
        let pair = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
            .map_err(|_| "RSA key generation failed".to_owned())?;
        Self::from_pair(pair)
    }

    fn from_pair(pair: RsaKeyPair) -> Result<Self, String> {
        if pair.public_modulus_len() * 8 > 4096 {
            return Err(
                "the RSA key is larger than 4096 bits (RFC 8301: receivers need not verify it)"
                    .to_owned(),
            );
        }
        let spki = pair
            .public_key()
            .as_der()
            .map(|d| d.as_ref().to_vec())
            .map_err(|_| "the RSA public key could not be encoded".to_owned())?;
        Ok(Self { pair, spki })
    }

    #[must_use]
    pub fn bits(&self) -> usize {
        self.pair.public_modulus_len() * 8
    }

    /// The public key as X.509 SubjectPublicKeyInfo DER, the form a DKIM key record's `p=`
    /// carries (RFC 6376 section 3.6.1).
    #[must_use]
    pub fn public_key_spki_der(&self) -> Vec<u8> {
        self.spki.clone()
    }

    pub fn sign_sha256(&self, message: &[u8]) -> Result<Vec<u8>, String> {
        let mut signature = vec![0; self.pair.public_modulus_len()];
        self.pair
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                message,
                &mut signature,
            )
            .map_err(|_| "RSA signing failed".to_owned())?;
        Ok(signature)
    }
}

fn rejected(why: &str) -> String {
    match why {
        "TooSmall" => "the RSA key is smaller than 2048 bits".to_owned(),
        "TooLarge" => "the RSA key is larger than 4096 bits".to_owned(),
        _ => format!("not an RSA private key in PKCS#8 ({why})"),
    }
}

/// What a published RSA public key is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishedRsaKey {
    /// 2048 to 8192 bits.
    Bits(usize),
    /// A valid RSA key below 2048 bits (RFC 8301 allows 1024 but asks signers for 2048).
    TooSmall,
    TooLarge,
    /// Not an RSA public key in either DER form.
    Malformed,
}

/// An RSA public key given as SubjectPublicKeyInfo or RSAPublicKey DER, as SubjectPublicKeyInfo
/// DER (to compare two keys whatever form each was written in).
#[must_use]
pub fn spki_der(der: &[u8]) -> Option<Vec<u8>> {
    let key = PublicKey::from_der(der).ok()?;
    key.as_der().ok().map(|d| d.as_ref().to_vec())
}

/// Sizes an RSA public key given as SubjectPublicKeyInfo or RSAPublicKey DER.
#[must_use]
pub fn published_rsa_key(der: &[u8]) -> PublishedRsaKey {
    let spki = match PublicKey::from_der(der) {
        Ok(k) => match k.as_der() {
            Ok(d) => d.as_ref().to_vec(),
            Err(_) => return PublishedRsaKey::Malformed,
        },
        // aws-lc refuses to parse keys outside 2048..=8192 bits as `PublicKey` too; the
        // encrypting-key parser below says which side they fall on.
        Err(_) => der.to_vec(),
    };
    match PublicEncryptingKey::from_der(&spki) {
        Ok(k) => PublishedRsaKey::Bits(k.key_size_bits()),
        Err(e) => match e.description_() {
            "TooSmall" => PublishedRsaKey::TooSmall,
            "TooLarge" => PublishedRsaKey::TooLarge,
            _ => PublishedRsaKey::Malformed,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rsa::KeySize;
    use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};

    fn key() -> RsaSigningKey {
        let generated = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        let der = generated.as_der().unwrap();
        RsaSigningKey::from_pkcs8_der(der.as_ref()).unwrap()
    }

    #[test]
    fn a_signature_verifies_under_the_published_key_and_not_over_other_bytes() {
        let k = key();
        assert_eq!(k.bits(), 2048);
        let sig = k.sign_sha256(b"headers").unwrap();
        let public = PublicKey::from_der(&k.public_key_spki_der()).unwrap();
        let verifier = UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, public.as_ref());
        assert!(verifier.verify(b"headers", &sig).is_ok());
        assert!(verifier.verify(b"headerz", &sig).is_err());
        assert_eq!(format!("{k:?}"), "RsaSigningKey(2048 bits, [redacted])");
    }

    #[test]
    fn published_keys_are_sized_in_both_der_forms_and_garbage_is_malformed() {
        let k = key();
        let spki = k.public_key_spki_der();
        assert_eq!(published_rsa_key(&spki), PublishedRsaKey::Bits(2048));
        let pkcs1 = PublicKey::from_der(&spki).unwrap().as_ref().to_vec();
        assert_eq!(published_rsa_key(&pkcs1), PublishedRsaKey::Bits(2048));
        assert_eq!(published_rsa_key(b"not a key"), PublishedRsaKey::Malformed);
        assert_eq!(
            published_rsa_key(&spki[..spki.len() - 1]),
            PublishedRsaKey::Malformed
        );
    }
}

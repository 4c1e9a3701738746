//! Pure, synchronous cryptographic building blocks. No I/O, no async, no policy.
//!
//! Everything that holds key material or a secret value lives in a type from [`secret`]: it zeroes
//! its memory on drop, redacts itself in `Debug`, and has no `Display` or `Serialize`, so a secret
//! cannot reach a log line or a response body by accident.
#![forbid(unsafe_code)]

pub mod aead;
pub mod ct;
pub mod digest;
pub mod jwt;
pub mod mac;
pub mod random;
pub mod rsa_sign;
pub mod secret;
pub mod sign;

pub use aead::{
    AeadError, AeadKey, EnvelopeHeader, context, envelope_header, key_check_value, split_envelope,
};
pub use ct::ct_eq;
pub use digest::{sha1_hex_for_breach_lookup, sha256};
pub use jwt::{HasExpiry, JwtError, JwtSigner, JwtVerifier};
pub use mac::MacKey;
pub use random::{RandomError, fill_random, random_key, random_nonce, random_token};
pub use rsa_sign::{PublishedRsaKey, RsaSigningKey, published_rsa_key};
pub use secret::{Key32, KeyParseError, SecretBytes, SecretString};
pub use sign::{SigningKey, verify_ed25519};
pub mod password;
pub use password::{
    Argon2Params, HashScratch, PasswordError, Pepper, derive_key, hash_password,
    hash_password_peppered, needs_rehash, needs_rehash_peppered, verify_password,
    verify_password_peppered, verify_password_with,
};
pub mod legacy_hash;
pub mod otp;
pub mod transit;
pub use otp::{OtpAlgorithm, TotpCheck, TotpSecret};
pub use transit::TransitKey;

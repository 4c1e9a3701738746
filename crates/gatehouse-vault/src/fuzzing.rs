//! Entry points for the fuzz targets in `fuzz/` (not an API: hidden from the docs, and nothing in
//! the workspace calls it): the vault file's parsers and encoders, which are private to `format`.

use std::collections::BTreeMap;

use gatehouse_crypto::SecretString;

use crate::format::{self, HEADER_LEN};
use crate::{KdfParams, VaultError};

/// The header's length in bytes (the associated data of the sealed contents).
pub const VAULT_HEADER_LEN: usize = HEADER_LEN;

/// The file parser: the key-derivation cost, the salt and the sealed contents (nonce, ciphertext,
/// tag), read before anything is authenticated.
pub fn parse_file(bytes: &[u8]) -> Result<(KdfParams, [u8; 16], &[u8]), VaultError> {
    format::parse(bytes).map(|p| (p.kdf, p.salt, p.sealed))
}

/// The header the vault writes for `kdf` and `salt`.
#[must_use]
pub fn header(kdf: &KdfParams, salt: &[u8; 16]) -> Vec<u8> {
    format::header(kdf, salt)
}

/// The decrypted contents' parser.
pub fn decode_entries(plain: &[u8]) -> Result<BTreeMap<String, SecretString>, VaultError> {
    format::decode_entries(plain)
}

/// The decrypted contents' encoder.
pub fn encode_entries(entries: &BTreeMap<String, SecretString>) -> Result<Vec<u8>, VaultError> {
    format::encode_entries(entries)
}

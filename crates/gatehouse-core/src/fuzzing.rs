//! Entry points for the fuzz targets in `fuzz/` (not an API: hidden from the docs, and nothing in
//! the workspace calls it). Each function is a thin call into a parser or encoder that is private
//! to its module, so the fuzzers exercise the code the server runs rather than a copy of it.

use gatehouse_crypto::{Argon2Params, SecretBytes};
use uuid::Uuid;

use crate::identity::operators::{HashCost, imported_hash_cost, stored_hash_affordable};
use crate::identity::sessions::{format_refresh, parse_refresh};
use crate::ids::OrgId;
use crate::keyring::TransitState;
use crate::transit::{Transit, TransitItem, TransitOutcome, format_ciphertext, parse};

/// The transit ciphertext parser: `gh:v{version}:{base64url}` into version and sealed bytes.
#[must_use]
pub fn transit_parse(ciphertext: &[u8]) -> Option<(u32, Vec<u8>)> {
    parse(ciphertext)
}

/// The transit ciphertext encoder (what encryption returns).
#[must_use]
pub fn transit_format(version: u32, sealed: &[u8]) -> String {
    format_ciphertext(version, sealed)
}

/// Transit encryption of one item, as the service does it: `Ok(ciphertext)` or the item's refusal.
pub fn transit_seal(
    org: OrgId,
    keys: &TransitState,
    context: &[u8],
    plaintext: &[u8],
) -> Result<String, &'static str> {
    let item = TransitItem {
        data: SecretBytes::new(plaintext.to_vec()),
        context: context.to_vec(),
    };
    match Transit::seal_item(org, keys, &item) {
        TransitOutcome::Ciphertext(c) => Ok(c),
        TransitOutcome::Failed(why) => Err(why),
        TransitOutcome::Plaintext(_) => Err("encryption returned a plaintext"),
    }
}

/// Transit decryption of one item, as the service does it: parse, the version and floor check,
/// then the authenticated open.
pub fn transit_open(
    org: OrgId,
    keys: &TransitState,
    context: &[u8],
    ciphertext: &[u8],
) -> Result<SecretBytes, &'static str> {
    let item = TransitItem {
        data: SecretBytes::new(ciphertext.to_vec()),
        context: context.to_vec(),
    };
    Transit::open_item(org, keys, &item)
}

/// The refresh-token parser: `grt_{session id}_{secret}` into the session id and the secret.
#[must_use]
pub fn refresh_parse(token: &str) -> Option<(Uuid, &str)> {
    parse_refresh(token)
}

/// The refresh-token encoder, with a given secret (the server's secrets are random).
#[must_use]
pub fn refresh_format(session: Uuid, secret: &str) -> String {
    format_refresh(session, secret)
}

/// How a user import judges a password hash from another system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportVerdict {
    /// Refused: not a hash Gatehouse can read.
    Unreadable,
    /// Accepted only with the weak-hash opt-in.
    Weak,
    Fine,
    /// Refused: dearer than a sign-in may be.
    TooCostly,
}

/// The import's verdict on `hash`, with the server's hashing cost `configured`.
#[must_use]
pub fn import_verdict(hash: &str, configured: &Argon2Params) -> ImportVerdict {
    match imported_hash_cost(hash, configured) {
        HashCost::Unreadable => ImportVerdict::Unreadable,
        HashCost::Weak => ImportVerdict::Weak,
        HashCost::Fine => ImportVerdict::Fine,
        HashCost::TooCostly => ImportVerdict::TooCostly,
    }
}

/// Whether a sign-in would verify against the stored `hash` at all (its cost is affordable).
#[must_use]
pub fn sign_in_verifies(hash: &str, configured: &Argon2Params) -> bool {
    stored_hash_affordable(hash, configured)
}

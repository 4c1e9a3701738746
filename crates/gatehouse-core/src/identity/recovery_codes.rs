//! Recovery codes (A4; ASVS 6.5.2): their format, and what is stored of them.
//!
//! A code is 15 random bytes (120 bits) written as 24 lowercase base32 characters in six groups
//! of four (`abcd-efgh-ijkl-mnop-qrst-uvwx`); case, spaces and dashes do not matter when typed.
//!
//! What is stored is a 16-byte random salt followed by SHA-256 over a domain label, the salt and
//! the normalised code (48 bytes). A password hash (Argon2id) is for secrets a person chose,
//! whose guesses an attacker can enumerate; a code of 120 random bits cannot be enumerated
//! (2^120 tries per stored value), so a slow hash would only make each sign-in with a code cost
//! ten Argon2id runs, one per stored code, and hand an attacker a way to spend our CPU. The salt
//! still makes equal codes store differently, across users and within one user's set, so a
//! table of stored values says nothing about which codes repeat.
//!
//! Codes issued before (10 random bytes, 80 bits, stored as a bare SHA-256 of the normalised
//! code, 32 bytes) are recognised by their length and still accepted until spent or replaced;
//! docs/SECURITY.md asks their holders to regenerate them (`POST /v1/me/mfa/recovery-codes`).
//!
//! A typed code longer than 64 characters, or of neither format's length once normalised, is
//! refused before anything is hashed ([`typed`]).

use gatehouse_crypto::{SecretString, ct_eq, fill_random, sha256};
use zeroize::Zeroizing;

use crate::error::Error;

/// How many codes a set holds.
pub(crate) const RECOVERY_CODES: usize = 10;
/// Random bytes per code: 120 bits, above ASVS 6.5.2's 112.
const CODE_BYTES: usize = 15;
/// Bits each base32 character carries.
const BITS_PER_CHAR: usize = 5;
/// Characters per group as shown.
const GROUP: usize = 4;
const SALT_BYTES: usize = 16;
/// A digest of another kind of secret can never equal a recovery code's.
const DOMAIN: &[u8] = b"gatehouse recovery code v2\0";
/// The length of a value stored before codes were salted.
const LEGACY_LEN: usize = 32;

/// The entropy of one code, in bits: its length in characters times what each carries.
#[must_use]
pub const fn code_bits() -> usize {
    code_chars() * BITS_PER_CHAR
}

/// Characters in a code, without its dashes.
const fn code_chars() -> usize {
    CODE_BYTES * 8 / BITS_PER_CHAR
}

/// Characters of a code issued before (10 bytes, 80 bits), without its dashes.
const LEGACY_CHARS: usize = 16;
/// The longest typed code looked at: the current format with a separator or space between any
/// two characters, and some to spare. Anything longer is no code and costs no hashing.
const MAX_TYPED: usize = 64;

/// A code as typed, reduced to what matters: lowercase letters and digits.
pub(crate) fn normalize(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// [`normalize`] for a code someone typed, or `None` when it cannot be one: longer than
/// [`MAX_TYPED`] as typed, or of neither format's length once normalised. Checked before any
/// stored value is hashed against it, so a long or odd input costs nothing but this look.
pub(crate) fn typed(code: &str) -> Option<String> {
    if code.len() > MAX_TYPED {
        return None;
    }
    let normalized = normalize(code);
    [code_chars(), LEGACY_CHARS]
        .contains(&normalized.len())
        .then_some(normalized)
}

/// A new set of codes, shown once.
pub(crate) fn generate() -> Result<Vec<SecretString>, Error> {
    (0..RECOVERY_CODES)
        .map(|_| {
            let mut buf = Zeroizing::new([0u8; CODE_BYTES]);
            fill_random(buf.as_mut_slice()).map_err(|e| Error::Internal(e.to_string()))?;
            let text = Zeroizing::new(gatehouse_crypto::otp::base32_lower(buf.as_slice()));
            let grouped: Vec<&str> = text
                .as_bytes()
                .chunks(GROUP)
                .filter_map(|c| std::str::from_utf8(c).ok())
                .collect();
            Ok(SecretString::new(grouped.join("-")))
        })
        .collect()
}

fn salted(salt: &[u8], normalized: &str) -> [u8; 32] {
    sha256(&[DOMAIN, salt, normalized.as_bytes()])
}

/// What is stored for `code`: a fresh salt and the salted hash.
pub(crate) fn stored_value(code: &SecretString) -> Result<Vec<u8>, Error> {
    let mut salt = [0u8; SALT_BYTES];
    fill_random(&mut salt).map_err(|e| Error::Internal(e.to_string()))?;
    let normalized = Zeroizing::new(normalize(code.expose()));
    let mut out = Vec::with_capacity(SALT_BYTES + 32);
    out.extend_from_slice(&salt);
    out.extend_from_slice(&salted(&salt, &normalized));
    Ok(out)
}

/// Whether `normalized` is the code `stored` was made from (either format), in constant time
/// for a given stored value.
pub(crate) fn matches(stored: &[u8], normalized: &str) -> bool {
    if stored.len() == LEGACY_LEN {
        return ct_eq(stored, &sha256(&[normalized.as_bytes()]));
    }
    match stored.split_at_checked(SALT_BYTES) {
        Some((salt, hash)) if hash.len() == 32 => ct_eq(hash, &salted(salt, normalized)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recovery_code_carries_at_least_112_bits() {
        // 32 symbols carry 5 bits each; 24 of them are 120 bits (ASVS 6.5.2 asks for 112).
        assert!(code_bits() >= 112, "{} bits", code_bits());
        assert_eq!(code_bits(), 120);
        let codes = generate().unwrap();
        assert_eq!(codes.len(), RECOVERY_CODES);
        for code in &codes {
            let shown = code.expose();
            let groups: Vec<&str> = shown.split('-').collect();
            assert_eq!(groups.len(), 6, "{shown}");
            assert!(groups.iter().all(|g| g.len() == GROUP), "{shown}");
            let plain = normalize(shown);
            assert_eq!(plain.len(), code_chars());
            // Only the base32 alphabet: each character really is one of 32 symbols.
            assert!(
                plain
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || ('2'..='7').contains(&c)),
                "{shown}"
            );
        }
        let distinct: std::collections::HashSet<_> = codes.iter().map(|c| c.expose()).collect();
        assert_eq!(distinct.len(), RECOVERY_CODES);
    }

    #[test]
    fn equal_codes_store_differently_and_each_stored_value_matches_its_own_code() {
        let code = SecretString::new("abcd-efgh-ijkl-mnop-qrst-uvwx".to_owned());
        // Two users (or two sets) holding the same code: the salts make the stored values differ.
        let first_user = stored_value(&code).unwrap();
        let second_user = stored_value(&code).unwrap();
        assert_eq!(first_user.len(), SALT_BYTES + 32);
        assert_ne!(first_user, second_user);
        assert_ne!(first_user[SALT_BYTES..], second_user[SALT_BYTES..]);
        for stored in [&first_user, &second_user] {
            assert!(matches(stored, &normalize("ABCD EFGH-ijkl-mnop-qrst-uvwx")));
            assert!(!matches(
                stored,
                &normalize("abcd-efgh-ijkl-mnop-qrst-uvwy")
            ));
            assert!(!matches(stored, ""));
        }
        // A value cut short is no match rather than a panic.
        assert!(!matches(&first_user[..20], &normalize(code.expose())));
    }

    #[test]
    fn only_a_typed_code_of_either_format_is_looked_at() {
        assert_eq!(
            typed(" ABCD-efgh ijkl-mnop-qrst-uvwx ").as_deref(),
            Some("abcdefghijklmnopqrstuvwx")
        );
        assert_eq!(
            typed("abcd-efgh-ijkl-mnop").as_deref(),
            Some("abcdefghijklmnop")
        );
        for junk in [
            "",
            "abcd-efgh-ijkl",
            "abcd-efgh-ijkl-mnop-q",
            "abcd-efgh-ijkl-mnop-qrst-uvwx-y",
        ] {
            assert_eq!(typed(junk), None, "{junk}");
        }
        // The right number of characters drowned in separators is refused before normalising.
        let padded = format!("{}abcdefghijklmnopqrstuvwx", "-".repeat(MAX_TYPED));
        assert_eq!(normalize(&padded).len(), code_chars());
        assert_eq!(typed(&padded), None);
        assert_eq!(typed(&"a".repeat(100_000)), None);
    }

    #[test]
    fn codes_stored_before_salting_are_still_recognised() {
        let old = normalize("abcd-efgh-ijkl-mnop");
        let stored = sha256(&[old.as_bytes()]).to_vec();
        assert!(matches(&stored, &old));
        assert!(!matches(&stored, &normalize("abcd-efgh-ijkl-mnoq")));
    }
}

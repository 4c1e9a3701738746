//! Password hashes imported from other systems. Only verification: a user signing in with one is
//! rehashed to Argon2id at once.

use crate::secret::SecretString;

/// Whether `phc` is a bcrypt hash (`$2a$`, `$2b$`, `$2x$`, `$2y$`).
#[must_use]
pub fn is_bcrypt(phc: &str) -> bool {
    ["$2a$", "$2b$", "$2x$", "$2y$"]
        .iter()
        .any(|p| phc.starts_with(p))
        && phc.len() == 60
        && phc.is_ascii()
}

/// The cheapest bcrypt cost accepted without an explicit opt-in (OWASP's minimum).
pub const BCRYPT_MIN_COST: u32 = 10;
/// The dearest bcrypt cost accepted at all: each step doubles the work, and a cost-31 hash would
/// hold a hashing thread for days per sign-in attempt.
pub const BCRYPT_MAX_COST: u32 = 14;

/// The cost a bcrypt hash was made with (parsed by the `bcrypt` crate).
#[must_use]
pub fn bcrypt_cost(hash: &str) -> Option<u32> {
    if !is_bcrypt(hash) {
        return None;
    }
    hash.parse::<bcrypt::HashParts>().ok().map(|h| h.get_cost())
}

/// Verifies a bcrypt hash. Passwords beyond bcrypt's 72-byte limit are refused rather than
/// truncated, so two long passwords sharing a prefix never both match.
#[must_use]
pub fn verify_bcrypt(password: &SecretString, hash: &str) -> bool {
    is_bcrypt(hash) && bcrypt::non_truncating_verify(password.expose(), hash).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_a_hash_made_by_the_reference_cost_format() {
        let hash = bcrypt::hash("correct horse battery", 4).unwrap();
        assert!(is_bcrypt(&hash));
        assert!(verify_bcrypt(
            &SecretString::from("correct horse battery".to_owned()),
            &hash
        ));
        assert!(!verify_bcrypt(
            &SecretString::from("correct horse batterz".to_owned()),
            &hash
        ));
        assert!(!verify_bcrypt(
            &SecretString::from("x".to_owned()),
            "$argon2id$v=19$m=1"
        ));
    }

    #[test]
    fn the_cost_is_read_from_the_hash() {
        let hash = bcrypt::hash("correct horse battery", 5).unwrap();
        assert_eq!(bcrypt_cost(&hash), Some(5));
        assert_eq!(
            bcrypt_cost("$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"),
            Some(5)
        );
        assert_eq!(bcrypt_cost("$argon2id$v=19$m=19456,t=2,p=1$x$y"), None);
    }

    #[test]
    fn openwall_vector() {
        // A published $2a$ test vector (OpenBSD / Openwall crypt_blowfish test set).
        let hash = "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW";
        assert!(verify_bcrypt(&SecretString::from("U*U".to_owned()), hash));
    }
}

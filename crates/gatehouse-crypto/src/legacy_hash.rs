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

/// The costs bcrypt defines (2^4 to 2^31 rounds): the `bcrypt` crate refuses to verify others.
const BCRYPT_COSTS: std::ops::RangeInclusive<u32> = 4..=31;

/// The cost a bcrypt hash was made with (parsed by the `bcrypt` crate); `None` when it is not a
/// bcrypt hash [`verify_bcrypt`] can check.
#[must_use]
pub fn bcrypt_cost(hash: &str) -> Option<u32> {
    if !is_bcrypt(hash) {
        return None;
    }
    hash.parse::<bcrypt::HashParts>()
        .ok()
        .map(|h| h.get_cost())
        .filter(|c| BCRYPT_COSTS.contains(c))
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
    fn a_cost_bcrypt_cannot_verify_is_not_read() {
        // Found by the `password_hash` fuzz target: a cost below 4 was read (so the user import
        // accepted the hash as weak) but bcrypt refuses to verify it, so that user could never
        // sign in.
        let hash = bcrypt::hash("correct horse battery", 4).unwrap();
        for cost in ["00", "02", "03", "32", "99"] {
            let odd = format!("{}{cost}{}", &hash[..4], &hash[6..]);
            assert_eq!(bcrypt_cost(&odd), None, "{odd}");
            assert!(
                bcrypt::verify("correct horse battery", &odd).is_err(),
                "{odd}"
            );
        }
        assert_eq!(bcrypt_cost(&hash), Some(4));
    }

    #[test]
    fn openwall_vector() {
        // A published $2a$ test vector (OpenBSD / Openwall crypt_blowfish test set).
        let hash = "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW";
        assert!(verify_bcrypt(&SecretString::from("U*U".to_owned()), hash));
    }
}

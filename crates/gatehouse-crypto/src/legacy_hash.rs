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
    fn openwall_vector() {
        // A published $2a$ test vector (OpenBSD / Openwall crypt_blowfish test set).
        let hash = "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW";
        assert!(verify_bcrypt(&SecretString::from("U*U".to_owned()), hash));
    }
}

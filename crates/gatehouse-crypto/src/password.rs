//! Argon2id password hashing in PHC string format.
//!
//! Parameters are floored at OWASP's minimum for Argon2id (m = 19 MiB, t = 2, p = 1); a caller can
//! raise them but not lower them, so a misconfiguration cannot weaken stored hashes.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::secret::SecretString;

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Params {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Argon2Params {
    /// OWASP's current minimum for Argon2id.
    pub const MINIMUM: Self = Self {
        memory_kib: 19_456,
        iterations: 2,
        parallelism: 1,
    };

    /// Accepts parameters at or above [`Self::MINIMUM`] in every dimension.
    pub fn new(memory_kib: u32, iterations: u32, parallelism: u32) -> Result<Self, PasswordError> {
        let p = Self {
            memory_kib,
            iterations,
            parallelism,
        };
        if memory_kib < Self::MINIMUM.memory_kib
            || iterations < Self::MINIMUM.iterations
            || parallelism < Self::MINIMUM.parallelism
        {
            return Err(PasswordError::WeakParameters);
        }
        p.hasher().map(|_| p)
    }

    fn hasher(&self) -> Result<Argon2<'static>, PasswordError> {
        let params = Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|_| PasswordError::WeakParameters)?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }
}

impl Default for Argon2Params {
    fn default() -> Self {
        Self::MINIMUM
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordError {
    /// Parameters below the floor, or not accepted by Argon2.
    WeakParameters,
    /// The random source failed, or hashing failed internally.
    HashFailed,
    /// The stored hash is not a PHC string we can read.
    MalformedHash,
}

impl std::fmt::Display for PasswordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::WeakParameters => {
                "Argon2id parameters must be at least m=19456 KiB, t=2, p=1 and accepted by Argon2"
            }
            Self::HashFailed => "password hashing failed",
            Self::MalformedHash => "the stored password hash is not a readable PHC string",
        })
    }
}

impl std::error::Error for PasswordError {}

/// Hashes `password` with a fresh 128-bit salt. Slow by design: call it off the async runtime.
pub fn hash_password(
    password: &SecretString,
    params: &Argon2Params,
) -> Result<String, PasswordError> {
    let mut salt_bytes = [0u8; 16];
    crate::fill_random(&mut salt_bytes).map_err(|_| PasswordError::HashFailed)?;
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|_| PasswordError::HashFailed)?;
    let hash = params
        .hasher()?
        .hash_password(password.expose().as_bytes(), &salt)
        .map_err(|_| PasswordError::HashFailed)?;
    Ok(hash.to_string())
}

/// Checks `password` against a stored PHC string in constant time (the comparison is Argon2's).
pub fn verify_password(password: &SecretString, phc: &str) -> Result<bool, PasswordError> {
    let parsed = PasswordHash::new(phc).map_err(|_| PasswordError::MalformedHash)?;
    match Argon2::default().verify_password(password.expose().as_bytes(), &parsed) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::Password) => Ok(false),
        Err(_) => Err(PasswordError::MalformedHash),
    }
}

/// Whether a stored hash should be replaced at the next successful sign-in: it is not Argon2id,
/// or any of its parameters is below `params` (the configured ones, which only ever rise).
#[must_use]
pub fn needs_rehash(phc: &str, params: &Argon2Params) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return true;
    };
    if parsed.algorithm != Algorithm::Argon2id.ident() {
        return true;
    }
    let Ok(stored) = Params::try_from(&parsed) else {
        return true;
    };
    stored.m_cost() < params.memory_kib
        || stored.t_cost() < params.iterations
        || stored.p_cost() < params.parallelism
}

/// Derives a 256-bit key from `password` and `salt` with Argon2id (for the local vault). Slow by
/// design.
pub fn derive_key(
    password: &SecretString,
    salt: &[u8],
    params: &Argon2Params,
) -> Result<crate::Key32, PasswordError> {
    let mut out = zeroize::Zeroizing::new([0u8; 32]);
    params
        .hasher()?
        .hash_password_into(password.expose().as_bytes(), salt, out.as_mut())
        .map_err(|_| PasswordError::HashFailed)?;
    Ok(crate::Key32::from_bytes(*out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_argon2id_phc_and_verifies() {
        let pw = SecretString::new("correct horse battery staple".into());
        let phc = hash_password(&pw, &Argon2Params::MINIMUM).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify_password(&pw, &phc).unwrap());
        assert!(!verify_password(&SecretString::new("wrong".into()), &phc).unwrap());
        assert_eq!(
            verify_password(&pw, "not-a-phc-string"),
            Err(PasswordError::MalformedHash)
        );
    }

    #[test]
    fn parameters_cannot_go_below_the_floor() {
        assert_eq!(
            Argon2Params::new(8_192, 2, 1),
            Err(PasswordError::WeakParameters)
        );
        assert_eq!(
            Argon2Params::new(19_456, 1, 1),
            Err(PasswordError::WeakParameters)
        );
        assert!(Argon2Params::new(65_536, 3, 2).is_ok());
    }
}

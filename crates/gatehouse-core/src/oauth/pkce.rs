//! PKCE (RFC 7636) with the S256 method only: a verifier of 32 bytes from the CSPRNG, written as
//! 43 base64url characters, and its challenge BASE64URL(SHA-256(verifier)). The verifier is
//! sealed in the state's row and goes to the token endpoint only; it never leaves the server
//! otherwise (the browser sees the challenge).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_crypto::{SecretString, fill_random, sha256};

use crate::error::Error;

/// The only challenge method sent: `plain` would put the verifier in the browser's URL.
pub const CHALLENGE_METHOD: &str = "S256";

/// A PKCE code verifier. Zeroed on drop, never printed.
#[derive(Clone)]
pub struct PkceVerifier(SecretString);

impl std::fmt::Debug for PkceVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PkceVerifier([redacted])")
    }
}

impl PkceVerifier {
    /// A fresh verifier: 256 bits from the CSPRNG.
    pub fn generate() -> Result<Self, Error> {
        let mut raw = zeroize::Zeroizing::new([0u8; 32]);
        fill_random(raw.as_mut()).map_err(|e| Error::Internal(e.to_string()))?;
        Ok(Self(SecretString::new(
            URL_SAFE_NO_PAD.encode(raw.as_ref()),
        )))
    }

    /// A verifier read back from its sealed form; `None` unless it has RFC 7636's shape (43 to
    /// 128 unreserved characters).
    #[must_use]
    pub fn from_secret(value: SecretString) -> Option<Self> {
        let v = value.expose();
        let ok = (43..=128).contains(&v.len())
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
        ok.then_some(Self(value))
    }

    /// The challenge sent in the authorization request.
    #[must_use]
    pub fn challenge(&self) -> String {
        URL_SAFE_NO_PAD.encode(sha256(&[self.0.expose().as_bytes()]))
    }

    /// The verifier itself, for the token request only.
    #[must_use]
    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_challenge_is_the_base64url_sha256_of_the_verifier() {
        // Computed independently (Python's hashlib and base64); `oidc-provider`, which requires
        // S256, checks the same at every exchange in the integration tests.
        let v = PkceVerifier::from_secret(SecretString::new(
            "dBjftJeZ4CVP-mJ92K27uhbUJU1p1r_wW1gFWFOEjXk".into(),
        ))
        .unwrap();
        assert_eq!(v.challenge(), "ngF5GsXcbwljx6u133FFr3Xht9xooA_DuaX_3QwODtc");
    }

    #[test]
    fn verifiers_are_fresh_well_formed_and_never_printed() {
        let a = PkceVerifier::generate().unwrap();
        let b = PkceVerifier::generate().unwrap();
        assert_eq!(a.expose().len(), 43);
        assert_ne!(a.expose(), b.expose());
        assert!(PkceVerifier::from_secret(SecretString::new(a.expose().to_owned())).is_some());
        assert!(!format!("{a:?}").contains(a.expose()));
        for bad in ["short", &"a".repeat(129), &format!("{}+", "a".repeat(43))] {
            assert!(PkceVerifier::from_secret(SecretString::new(bad.to_owned())).is_none());
        }
    }
}

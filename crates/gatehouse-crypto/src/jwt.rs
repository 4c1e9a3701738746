//! JSON Web Tokens signed with Ed25519 (EdDSA, RFC 8037), through `jsonwebtoken` on aws-lc-rs:
//! the same provider as every other primitive here. Only EdDSA is accepted when verifying, so a
//! token cannot choose a weaker algorithm (or `none`).

use std::collections::HashMap;

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::secret::Key32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtError {
    /// Signing failed (a key that aws-lc refused).
    Sign,
    /// The token is not a well-formed, correctly signed, unexpired token for this issuer and
    /// audience.
    Invalid,
    /// The token names a key id that is not (or no longer) published.
    UnknownKey,
    /// A genuine token whose time has passed: ordinary for any client, so told apart from
    /// [`Self::Invalid`] (which a security log counts).
    Expired,
}

impl std::fmt::Display for JwtError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Sign => "the token could not be signed",
            Self::Invalid => "the token is invalid or expired",
            Self::UnknownKey => "the token's signing key is not published",
            Self::Expired => "the token has expired",
        })
    }
}

impl std::error::Error for JwtError {}

/// Signs tokens with one Ed25519 key, named by `kid` in every header.
pub struct JwtSigner {
    kid: String,
    key: EncodingKey,
    public: Vec<u8>,
}

impl std::fmt::Debug for JwtSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtSigner")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl JwtSigner {
    pub fn from_seed(kid: String, seed: &Key32) -> Result<Self, JwtError> {
        let pair =
            Ed25519KeyPair::from_seed_unchecked(seed.expose()).map_err(|_| JwtError::Sign)?;
        let der = pair.to_pkcs8().map_err(|_| JwtError::Sign)?;
        Ok(Self {
            kid,
            key: EncodingKey::from_ed_der(der.as_ref()),
            public: pair.public_key().as_ref().to_vec(),
        })
    }

    #[must_use]
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The raw 32-byte public key (the JWK `x` before base64url).
    #[must_use]
    pub fn public_key(&self) -> &[u8] {
        &self.public
    }

    pub fn sign<C: Serialize>(&self, claims: &C) -> Result<String, JwtError> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key).map_err(|_| JwtError::Sign)
    }
}

/// Verifies tokens against a set of published public keys, by `kid`.
pub struct JwtVerifier {
    keys: HashMap<String, DecodingKey>,
    validation: Validation,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("kids", &self.keys.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl JwtVerifier {
    /// `keys` are (kid, raw 32-byte Ed25519 public key). `leeway_secs` tolerates clock skew on
    /// `exp`.
    #[must_use]
    pub fn new<'a>(
        keys: impl IntoIterator<Item = (String, &'a [u8])>,
        issuer: &str,
        audience: &str,
        leeway_secs: u64,
    ) -> Self {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = leeway_secs;
        // Expiry is judged against the injected clock in `verify`, never the system clock.
        validation.validate_exp = false;
        Self {
            keys: keys
                .into_iter()
                .map(|(kid, public)| (kid, DecodingKey::from_ed_der(public)))
                .collect(),
            validation,
        }
    }

    /// Like [`JwtVerifier::new`] but leaves `aud` to the caller: for a verifier that serves
    /// audiences known only at run time (registered apps), so one signature check can say which
    /// audience a token is for. `aud` must still be present; the caller compares it exactly.
    #[must_use]
    pub fn for_any_audience<'a>(
        keys: impl IntoIterator<Item = (String, &'a [u8])>,
        issuer: &str,
        leeway_secs: u64,
    ) -> Self {
        let mut verifier = Self::new(keys, issuer, "", leeway_secs);
        verifier.validation.validate_aud = false;
        verifier
    }

    /// Checks signature, algorithm, issuer, audience (unless built `for_any_audience`) and
    /// expiry, then returns the claims.
    /// `now_secs` is the injected clock's time: expiry is judged by it, not the system clock.
    pub fn verify<C: DeserializeOwned + HasExpiry>(
        &self,
        token: &str,
        now_secs: u64,
    ) -> Result<C, JwtError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| JwtError::Invalid)?;
        if header.alg != Algorithm::EdDSA {
            return Err(JwtError::Invalid);
        }
        let kid = header.kid.ok_or(JwtError::Invalid)?;
        let key = self.keys.get(&kid).ok_or(JwtError::UnknownKey)?;
        let data = jsonwebtoken::decode::<C>(token, key, &self.validation)
            .map_err(|_| JwtError::Invalid)?;
        if data
            .claims
            .expires_at()
            .saturating_add(self.validation.leeway)
            <= now_secs
        {
            return Err(JwtError::Expired);
        }
        Ok(data.claims)
    }
}

/// Claims that carry an expiry, so the verifier can judge it by the injected clock.
pub trait HasExpiry {
    fn expires_at(&self) -> u64;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    struct Claims {
        iss: String,
        aud: String,
        sub: String,
        exp: u64,
    }

    impl HasExpiry for Claims {
        fn expires_at(&self) -> u64 {
            self.exp
        }
    }

    fn claims(exp: u64) -> Claims {
        Claims {
            iss: "https://id.example".into(),
            aud: "app".into(),
            sub: "u1".into(),
            exp,
        }
    }

    #[test]
    fn signs_and_verifies_by_kid_with_the_injected_clock() {
        let signer = JwtSigner::from_seed("k1".into(), &Key32::from_bytes([7; 32])).unwrap();
        let token = signer.sign(&claims(1_000)).unwrap();
        let v = JwtVerifier::new(
            [("k1".to_owned(), signer.public_key())],
            "https://id.example",
            "app",
            0,
        );
        assert_eq!(v.verify::<Claims>(&token, 999).unwrap(), claims(1_000));
        assert_eq!(v.verify::<Claims>(&token, 1_000), Err(JwtError::Expired));

        let other = JwtVerifier::new(
            [("k2".to_owned(), signer.public_key())],
            "https://id.example",
            "app",
            0,
        );
        assert_eq!(other.verify::<Claims>(&token, 1), Err(JwtError::UnknownKey));
        let wrong_aud = JwtVerifier::new(
            [("k1".to_owned(), signer.public_key())],
            "https://id.example",
            "other",
            0,
        );
        assert_eq!(
            wrong_aud.verify::<Claims>(&token, 1),
            Err(JwtError::Invalid)
        );
    }

    #[test]
    fn any_audience_verification_still_checks_issuer_signature_and_presence_of_aud() {
        let signer = JwtSigner::from_seed("k1".into(), &Key32::from_bytes([7; 32])).unwrap();
        let any = JwtVerifier::for_any_audience(
            [("k1".to_owned(), signer.public_key())],
            "https://id.example",
            0,
        );
        let token = signer.sign(&claims(1_000)).unwrap();
        assert_eq!(any.verify::<Claims>(&token, 1).unwrap().aud, "app");
        let mut other_issuer = claims(1_000);
        other_issuer.iss = "https://elsewhere.example".into();
        let token = signer.sign(&other_issuer).unwrap();
        assert_eq!(any.verify::<Claims>(&token, 1), Err(JwtError::Invalid));
        #[derive(Serialize, Deserialize)]
        struct NoAud {
            iss: String,
            sub: String,
            exp: u64,
        }
        impl HasExpiry for NoAud {
            fn expires_at(&self) -> u64 {
                self.exp
            }
        }
        let no_aud = signer
            .sign(&NoAud {
                iss: "https://id.example".into(),
                sub: "u1".into(),
                exp: 1_000,
            })
            .unwrap();
        assert!(any.verify::<NoAud>(&no_aud, 1).is_err());
        let evil = JwtSigner::from_seed("k1".into(), &Key32::from_bytes([8; 32])).unwrap();
        let forged = evil.sign(&claims(1_000)).unwrap();
        assert_eq!(any.verify::<Claims>(&forged, 1), Err(JwtError::Invalid));
    }

    #[test]
    fn a_token_signed_by_another_key_under_the_same_kid_is_refused() {
        let good = JwtSigner::from_seed("k1".into(), &Key32::from_bytes([7; 32])).unwrap();
        let evil = JwtSigner::from_seed("k1".into(), &Key32::from_bytes([8; 32])).unwrap();
        let v = JwtVerifier::new(
            [("k1".to_owned(), good.public_key())],
            "https://id.example",
            "app",
            0,
        );
        let forged = evil.sign(&claims(1_000)).unwrap();
        assert_eq!(v.verify::<Claims>(&forged, 1), Err(JwtError::Invalid));
        // An unsigned token (alg none) is refused.
        let none = format!(
            "{}.{}.",
            base64::Engine::encode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                br#"{"alg":"none","kid":"k1"}"#
            ),
            base64::Engine::encode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                serde_json_like(&claims(1_000))
            )
        );
        assert!(v.verify::<Claims>(&none, 1).is_err());
    }

    fn serde_json_like(c: &Claims) -> String {
        format!(
            r#"{{"iss":"{}","aud":"{}","sub":"{}","exp":{}}}"#,
            c.iss, c.aud, c.sub, c.exp
        )
    }
}

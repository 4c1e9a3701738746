//! Verifying an OpenID Connect ID token (OIDC Core 1.0, section 3.1.3.7) from an external
//! provider, with the public keys of the provider's JWKS, through `jsonwebtoken` on aws-lc-rs.
//!
//! What a token may choose is fenced by what the relying party already holds. The algorithm
//! comes from the key: an RSA key verifies RS256 or PS256 (2048 bits at least), a P-256 key
//! ES256, an Ed25519 key EdDSA, each narrowed further by the key's own `alg` when it states one.
//! `none`, the HMAC family (whose "secret" would be the provider's public key, the classic `alg`
//! swap) and every other algorithm are refused before any key is looked at; symmetric (`oct`)
//! keys in a JWKS are never loaded. Then: `iss` equal to the expected issuer, `aud` containing
//! the client id, `azp` equal to the client id where present and required when the token has
//! several audiences, `exp` and `iat` against the caller's clock (the injected one, never the
//! system's) with a small leeway, an `iat` not older than the sign-in can be, and `nonce` equal
//! (in constant time) to the one stored with the sign-in's `state`.

use std::collections::HashSet;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Deserializer};

use gatehouse_crypto::ct::ct_eq;

/// Longest ID token accepted (a provider's tokens are a few kilobytes).
pub const MAX_ID_TOKEN_BYTES: usize = 16 * 1024;
/// Most keys read from one JWKS document; the rest are ignored.
pub const MAX_JWKS_KEYS: usize = 32;
/// The smallest RSA modulus accepted, in bytes (2048 bits).
const MIN_RSA_MODULUS_BYTES: usize = 256;

/// Why an ID token was refused. Each has a stable name for the audit trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdTokenError {
    /// Not a compact JWS with a JSON header and claims, or longer than [`MAX_ID_TOKEN_BYTES`].
    Malformed,
    /// `none`, HMAC, or an algorithm no key of the provider verifies.
    Algorithm,
    /// No key of the provider's JWKS matches the token's `kid` and algorithm.
    UnknownKey,
    /// The signature does not verify with the provider's key.
    Signature,
    /// `iss` is not the expected issuer.
    Issuer,
    /// `aud` does not contain the client id.
    Audience,
    /// `azp` is not the client id, or missing from a token with several audiences.
    AuthorizedParty,
    /// `exp` has passed (beyond the leeway).
    Expired,
    /// `iat` (or `nbf`) lies in the future, or `iat` is older than the sign-in can be.
    IssuedAt,
    /// `nonce` is missing or not the one stored with the sign-in.
    Nonce,
    /// `sub` is missing, empty or too long, or a required claim is missing.
    Claims,
}

impl IdTokenError {
    /// The name written in the audit trail.
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Algorithm => "algorithm_refused",
            Self::UnknownKey => "unknown_key",
            Self::Signature => "bad_signature",
            Self::Issuer => "wrong_issuer",
            Self::Audience => "wrong_audience",
            Self::AuthorizedParty => "wrong_authorized_party",
            Self::Expired => "expired",
            Self::IssuedAt => "issued_at_out_of_range",
            Self::Nonce => "wrong_nonce",
            Self::Claims => "missing_claims",
        }
    }
}

impl std::fmt::Display for IdTokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the ID token was refused: {}", self.as_str())
    }
}

impl std::error::Error for IdTokenError {}

/// The algorithms Gatehouse verifies, each tied to one key type.
fn accepted_alg(name: &str) -> Option<Algorithm> {
    match name {
        "RS256" => Some(Algorithm::RS256),
        "PS256" => Some(Algorithm::PS256),
        "ES256" => Some(Algorithm::ES256),
        "EdDSA" => Some(Algorithm::EdDSA),
        _ => None,
    }
}

/// One signature key of a provider and the algorithms it may verify.
struct ProviderKey {
    kid: Option<String>,
    algorithms: Vec<Algorithm>,
    key: DecodingKey,
}

/// The signature keys of one provider, from its JWKS document (RFC 7517).
pub struct ProviderKeys {
    keys: Vec<ProviderKey>,
}

impl std::fmt::Debug for ProviderKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderKeys")
            .field(
                "kids",
                &self
                    .keys
                    .iter()
                    .map(|k| k.kid.as_deref())
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct JwksDocument {
    keys: Vec<serde_json::Value>,
}

/// The algorithms a key's type allows, or none for a key never used here.
fn algorithms_of(jwk: &Jwk) -> Vec<Algorithm> {
    let by_type: Vec<Algorithm> = match &jwk.algorithm {
        AlgorithmParameters::RSA(rsa) => {
            let long_enough = URL_SAFE_NO_PAD
                .decode(rsa.n.trim_end_matches('='))
                .is_ok_and(|n| n.iter().skip_while(|b| **b == 0).count() >= MIN_RSA_MODULUS_BYTES);
            if long_enough {
                vec![Algorithm::RS256, Algorithm::PS256]
            } else {
                Vec::new()
            }
        }
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
            vec![Algorithm::ES256]
        }
        AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
            vec![Algorithm::EdDSA]
        }
        // Symmetric keys, other curves and unknown key types verify nothing here.
        _ => Vec::new(),
    };
    let stated = jwk.common.key_algorithm.map(|a| match a {
        KeyAlgorithm::RS256 => Some(Algorithm::RS256),
        KeyAlgorithm::PS256 => Some(Algorithm::PS256),
        KeyAlgorithm::ES256 => Some(Algorithm::ES256),
        KeyAlgorithm::EdDSA => Some(Algorithm::EdDSA),
        _ => None,
    });
    match stated {
        None => by_type,
        Some(None) => Vec::new(),
        Some(Some(alg)) => by_type.into_iter().filter(|a| *a == alg).collect(),
    }
}

/// Whether the key may be used to verify signatures (`use` and `key_ops`, when stated).
fn for_signatures(jwk: &Jwk) -> bool {
    let use_ok = match &jwk.common.public_key_use {
        None | Some(PublicKeyUse::Signature) => true,
        Some(_) => false,
    };
    let ops_ok = jwk.common.key_operations.as_ref().is_none_or(|ops| {
        ops.iter()
            .any(|o| matches!(o, jsonwebtoken::jwk::KeyOperations::Verify))
    });
    use_ok && ops_ok
}

impl ProviderKeys {
    /// The usable signature keys of a JWKS document: keys for another use, of another type or
    /// curve, RSA keys under 2048 bits and symmetric keys are left out; a document with none
    /// left is refused (`UnknownKey`), as is one that is not a JWKS (`Malformed`).
    pub fn from_jwks(document: &[u8]) -> Result<Self, IdTokenError> {
        let doc: JwksDocument =
            serde_json::from_slice(document).map_err(|_| IdTokenError::Malformed)?;
        let mut keys = Vec::new();
        for raw in doc.keys.into_iter().take(MAX_JWKS_KEYS) {
            let Ok(jwk) = serde_json::from_value::<Jwk>(raw) else {
                continue;
            };
            let algorithms = algorithms_of(&jwk);
            if algorithms.is_empty() || !for_signatures(&jwk) {
                continue;
            }
            let Ok(key) = DecodingKey::from_jwk(&jwk) else {
                continue;
            };
            keys.push(ProviderKey {
                kid: jwk.common.key_id.clone(),
                algorithms,
                key,
            });
        }
        if keys.is_empty() {
            return Err(IdTokenError::UnknownKey);
        }
        Ok(Self { keys })
    }

    /// How many usable keys the document held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether the token names a key id this set does not hold: the caller may fetch the JWKS
    /// again once (the provider rotated its keys) before refusing.
    #[must_use]
    pub fn lacks_kid_of(&self, token: &str) -> bool {
        header_of(token).is_ok_and(|(_, kid)| {
            kid.is_some_and(|kid| !self.keys.iter().any(|k| k.kid.as_deref() == Some(&kid)))
        })
    }

    /// Verifies `token` as `expected` says, and returns its claims.
    pub fn verify(
        &self,
        token: &str,
        expected: &Expected<'_>,
    ) -> Result<IdTokenClaims, IdTokenError> {
        if token.len() > MAX_ID_TOKEN_BYTES {
            return Err(IdTokenError::Malformed);
        }
        let (alg, kid) = header_of(token)?;
        let candidates: Vec<&ProviderKey> = self
            .keys
            .iter()
            .filter(|k| k.algorithms.contains(&alg))
            .filter(|k| match &kid {
                Some(kid) => k.kid.as_deref() == Some(kid.as_str()),
                None => true,
            })
            .collect();
        if candidates.is_empty() {
            return Err(IdTokenError::UnknownKey);
        }
        let mut validation = Validation::new(alg);
        // Every claim is judged below, against the caller's clock.
        validation.required_spec_claims = HashSet::new();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        let mut outcome = Err(IdTokenError::Signature);
        for k in candidates {
            match jsonwebtoken::decode::<IdTokenClaims>(token, &k.key, &validation) {
                Ok(data) => {
                    outcome = Ok(data.claims);
                    break;
                }
                Err(e) => {
                    use jsonwebtoken::errors::ErrorKind;
                    if !matches!(e.kind(), ErrorKind::InvalidSignature) {
                        // A token whose signature verified but whose claims are not JSON
                        // claims, or that failed before the signature: not worth another key.
                        outcome = Err(match e.kind() {
                            ErrorKind::Json(_) | ErrorKind::Utf8(_) | ErrorKind::Base64(_) => {
                                IdTokenError::Malformed
                            }
                            ErrorKind::InvalidAlgorithm => IdTokenError::Algorithm,
                            _ => IdTokenError::Signature,
                        });
                        break;
                    }
                }
            }
        }
        let claims = outcome?;
        check_claims(&claims, expected)?;
        Ok(claims)
    }
}

/// The header's algorithm (refused unless accepted) and key id, read before any key is chosen.
fn header_of(token: &str) -> Result<(Algorithm, Option<String>), IdTokenError> {
    #[derive(Deserialize)]
    struct Header {
        alg: String,
        kid: Option<String>,
    }
    let mut parts = token.split('.');
    let (Some(head), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(IdTokenError::Malformed);
    };
    let raw = URL_SAFE_NO_PAD
        .decode(head)
        .map_err(|_| IdTokenError::Malformed)?;
    let header: Header = serde_json::from_slice(&raw).map_err(|_| IdTokenError::Malformed)?;
    let alg = accepted_alg(&header.alg).ok_or(IdTokenError::Algorithm)?;
    Ok((alg, header.kid))
}

/// What a token must say for this sign-in.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// The provider's issuer identifier, compared exactly.
    pub issuer: &'a str,
    /// Gatehouse's client id at the provider.
    pub client_id: &'a str,
    /// The nonce stored with the sign-in's `state`.
    pub nonce: &'a str,
    /// The injected clock, in seconds since the epoch.
    pub now_secs: u64,
    /// Clock skew tolerated on `exp`, `iat` and `nbf`.
    pub leeway_secs: u64,
    /// The oldest `iat` accepted, as an age: a token minted before the sign-in began is not
    /// this sign-in's.
    pub max_age_secs: u64,
}

/// `aud`: one string or an array of them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Audiences {
    One(String),
    Many(Vec<String>),
}

impl Audiences {
    fn contains(&self, id: &str) -> bool {
        match self {
            Self::One(a) => a == id,
            Self::Many(all) => all.iter().any(|a| a == id),
        }
    }

    fn count(&self) -> usize {
        match self {
            Self::One(_) => 1,
            Self::Many(all) => all.len(),
        }
    }
}

/// The claims Gatehouse reads from an ID token.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct IdTokenClaims {
    pub iss: Option<String>,
    pub sub: Option<String>,
    pub aud: Option<Audiences>,
    pub azp: Option<String>,
    pub exp: Option<u64>,
    pub iat: Option<u64>,
    pub nbf: Option<u64>,
    pub nonce: Option<String>,
    pub email: Option<String>,
    /// True only for the JSON value `true`: a string `"true"`, a number or anything else is
    /// not a provider's statement that the address was verified.
    #[serde(default, deserialize_with = "strict_true")]
    pub email_verified: bool,
    pub name: Option<String>,
}

fn strict_true<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Any {
        Bool(bool),
        Other(serde::de::IgnoredAny),
    }
    Ok(matches!(Any::deserialize(d)?, Any::Bool(true)))
}

/// Longest `sub` accepted (OIDC Core: at most 255 ASCII characters).
const MAX_SUBJECT: usize = 255;

fn check_claims(c: &IdTokenClaims, e: &Expected<'_>) -> Result<(), IdTokenError> {
    if c.iss.as_deref() != Some(e.issuer) {
        return Err(IdTokenError::Issuer);
    }
    let aud = c.aud.as_ref().ok_or(IdTokenError::Audience)?;
    if !aud.contains(e.client_id) {
        return Err(IdTokenError::Audience);
    }
    match c.azp.as_deref() {
        Some(azp) if azp != e.client_id => return Err(IdTokenError::AuthorizedParty),
        None if aud.count() > 1 => return Err(IdTokenError::AuthorizedParty),
        _ => {}
    }
    let exp = c.exp.ok_or(IdTokenError::Claims)?;
    if exp.saturating_add(e.leeway_secs) <= e.now_secs {
        return Err(IdTokenError::Expired);
    }
    let iat = c.iat.ok_or(IdTokenError::Claims)?;
    if iat > e.now_secs.saturating_add(e.leeway_secs)
        || iat
            .saturating_add(e.max_age_secs)
            .saturating_add(e.leeway_secs)
            < e.now_secs
    {
        return Err(IdTokenError::IssuedAt);
    }
    if c.nbf
        .is_some_and(|nbf| nbf > e.now_secs.saturating_add(e.leeway_secs))
    {
        return Err(IdTokenError::IssuedAt);
    }
    match c.nonce.as_deref() {
        Some(n) if !e.nonce.is_empty() && ct_eq(n.as_bytes(), e.nonce.as_bytes()) => {}
        _ => return Err(IdTokenError::Nonce),
    }
    match c.sub.as_deref() {
        Some(s) if !s.is_empty() && s.len() <= MAX_SUBJECT => Ok(()),
        _ => Err(IdTokenError::Claims),
    }
}

#[cfg(test)]
#[path = "id_token_tests.rs"]
mod tests;

//! Access-token keys: the newest token key signs; every key whose tokens may still be unexpired is
//! published in the JWKS document and accepted when verifying. Keys are reloaded from the store
//! periodically, after a rotation, and (at most every few seconds) when a token names an unknown
//! key, so a key added by `gatehouse keys rotate-signing` reaches a running server.
//!
//! Verified tokens are remembered until they expire (keyed by the whole token, compared exactly),
//! so a client presenting the same token again costs a map lookup instead of a signature check.
//! Only tokens that verified are ever inserted; the map is emptied whenever the published key set
//! changes, so a withdrawn key's tokens are checked again (and refused). Session state is not
//! cached here: it is checked on every request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use gatehouse_crypto::{JwtError, JwtVerifier};
use time::{Duration, OffsetDateTime};

use super::claims::AccessClaims;
use super::settings::IdentitySettings;
use super::{Principal, principal_from};
use crate::error::Error;
use crate::keyring::{Keyring, TokenKey};

/// One published key, for the JWKS document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedKey {
    pub kid: String,
    /// Raw Ed25519 public key (the JWK `x`, before base64url).
    pub public_key: Vec<u8>,
}

#[derive(Debug)]
pub(crate) struct TokenKeys {
    keys: Vec<TokenKey>,
    /// Checks signature, issuer and expiry; the audience is compared by the caller, which knows
    /// which one the surface accepts (Gatehouse's, the operators', or a registered app's).
    verifier: JwtVerifier,
    pub(crate) published: Vec<PublishedKey>,
}

impl TokenKeys {
    fn build(keys: Vec<TokenKey>, settings: &IdentitySettings, now: OffsetDateTime) -> Self {
        // A key stops being published once every token it signed has expired: the next key's
        // creation plus the access-token lifetime and the leeway.
        let grace = settings.access_token_ttl + Duration::seconds(settings.leeway_secs as i64);
        let published: Vec<PublishedKey> = keys
            .iter()
            .enumerate()
            .filter(|(i, _)| {
                keys.get(i + 1)
                    .is_none_or(|next| next.created_at + grace > now)
            })
            .map(|(_, k)| PublishedKey {
                kid: k.signer.kid().to_owned(),
                public_key: k.signer.public_key().to_vec(),
            })
            .collect();
        let pairs = || {
            published
                .iter()
                .map(|p| (p.kid.clone(), p.public_key.as_slice()))
        };
        Self {
            verifier: JwtVerifier::for_any_audience(
                pairs(),
                &settings.issuer,
                settings.leeway_secs,
            ),
            published,
            keys,
        }
    }

    pub(crate) fn signer(&self) -> Result<&gatehouse_crypto::JwtSigner, Error> {
        self.keys
            .last()
            .map(|k| &k.signer)
            .ok_or_else(|| Error::Internal("no token-signing key".into()))
    }
}

#[derive(Debug)]
pub(crate) struct TokenService {
    current: RwLock<Option<Arc<TokenKeys>>>,
    last_reload: Mutex<Option<OffsetDateTime>>,
    verified: RwLock<HashMap<Box<str>, Verified>>,
}

/// A token that verified: for which audience, until when, and who it names.
#[derive(Debug, Clone)]
pub(crate) struct Verified {
    /// The token's `aud`: the caller decides whether its surface accepts it.
    pub(crate) audience: Arc<str>,
    exp: u64,
    pub(crate) principal: Arc<Principal>,
}

/// Verified tokens remembered at most; beyond it the map starts over.
const VERIFIED_CAPACITY: usize = 100_000;

const UNKNOWN_KID_RELOAD_EVERY: Duration = Duration::seconds(5);

impl TokenService {
    pub(crate) fn new() -> Self {
        Self {
            current: RwLock::new(None),
            last_reload: Mutex::new(None),
            verified: RwLock::new(HashMap::new()),
        }
    }

    pub(crate) async fn reload(
        &self,
        keyring: &Keyring,
        settings: &IdentitySettings,
        now: OffsetDateTime,
    ) -> Result<Arc<TokenKeys>, Error> {
        let keys = Arc::new(TokenKeys::build(keyring.token_keys().await?, settings, now));
        if let Ok(mut cur) = self.current.write() {
            let changed = cur
                .as_ref()
                .is_none_or(|old| old.published != keys.published);
            *cur = Some(keys.clone());
            if changed && let Ok(mut verified) = self.verified.write() {
                verified.clear();
            }
        }
        if let Ok(mut last) = self.last_reload.lock() {
            *last = Some(now);
        }
        Ok(keys)
    }

    pub(crate) async fn get(
        &self,
        keyring: &Keyring,
        settings: &IdentitySettings,
        now: OffsetDateTime,
    ) -> Result<Arc<TokenKeys>, Error> {
        let cached = self.current.read().ok().and_then(|c| c.clone());
        match cached {
            Some(k) => Ok(k),
            None => self.reload(keyring, settings, now).await,
        }
    }

    /// Verifies with the current keys; on an unknown key id, reloads (rate-limited) and retries.
    /// Says which audience the token is for; whether that one is accepted is the caller's call.
    pub(crate) async fn verify(
        &self,
        keyring: &Keyring,
        settings: &IdentitySettings,
        token: &str,
        now: OffsetDateTime,
    ) -> Result<Verified, JwtError> {
        let now_secs = u64::try_from(now.unix_timestamp()).unwrap_or(0);
        let remembered = self
            .verified
            .read()
            .ok()
            .and_then(|m| m.get(token).cloned());
        if let Some(v) = remembered {
            return if v.exp.saturating_add(settings.leeway_secs) > now_secs {
                Ok(v)
            } else {
                Err(JwtError::Expired)
            };
        }
        let claims = self.verify_signature(keyring, settings, token, now).await?;
        let verified = Verified {
            principal: Arc::new(principal_from(&claims).map_err(|_| JwtError::Invalid)?),
            audience: Arc::from(claims.aud),
            exp: claims.exp,
        };
        if let Ok(mut m) = self.verified.write() {
            if m.len() >= VERIFIED_CAPACITY {
                m.clear();
            }
            m.insert(token.into(), verified.clone());
        }
        Ok(verified)
    }

    async fn verify_signature(
        &self,
        keyring: &Keyring,
        settings: &IdentitySettings,
        token: &str,
        now: OffsetDateTime,
    ) -> Result<AccessClaims, JwtError> {
        let now_secs = u64::try_from(now.unix_timestamp()).unwrap_or(0);
        let keys = self
            .get(keyring, settings, now)
            .await
            .map_err(|_| JwtError::Invalid)?;
        let verifier = |k: &TokenKeys| k.verifier.verify(token, now_secs);
        match verifier(&keys) {
            Err(JwtError::UnknownKey) if self.may_reload(now) => {
                let keys = self
                    .reload(keyring, settings, now)
                    .await
                    .map_err(|_| JwtError::Invalid)?;
                verifier(&keys)
            }
            other => other,
        }
    }

    fn may_reload(&self, now: OffsetDateTime) -> bool {
        self.last_reload
            .lock()
            .map(|last| last.is_none_or(|t| now - t >= UNKNOWN_KID_RELOAD_EVERY))
            .unwrap_or(false)
    }
}

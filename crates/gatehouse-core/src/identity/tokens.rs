//! Access-token keys: the newest token key signs; every key whose tokens may still be unexpired is
//! published in the JWKS document and accepted when verifying. Keys are reloaded from the store
//! periodically, after a rotation, and (at most every few seconds) when a token names an unknown
//! key, so a key added by `gatehouse keys rotate-signing` reaches a running server.

use std::sync::{Arc, Mutex, RwLock};

use gatehouse_crypto::{JwtError, JwtVerifier};
use time::{Duration, OffsetDateTime};

use super::settings::IdentitySettings;
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
    pub(crate) tenant: JwtVerifier,
    pub(crate) operator: JwtVerifier,
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
            tenant: JwtVerifier::new(
                pairs(),
                &settings.issuer,
                &settings.audience,
                settings.leeway_secs,
            ),
            operator: JwtVerifier::new(
                pairs(),
                &settings.issuer,
                &settings.operator_audience(),
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
}

const UNKNOWN_KID_RELOAD_EVERY: Duration = Duration::seconds(5);

impl TokenService {
    pub(crate) fn new() -> Self {
        Self {
            current: RwLock::new(None),
            last_reload: Mutex::new(None),
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
            *cur = Some(keys.clone());
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
    pub(crate) async fn verify(
        &self,
        keyring: &Keyring,
        settings: &IdentitySettings,
        token: &str,
        operator: bool,
        now: OffsetDateTime,
    ) -> Result<super::claims::AccessClaims, JwtError> {
        let now_secs = u64::try_from(now.unix_timestamp()).unwrap_or(0);
        let keys = self
            .get(keyring, settings, now)
            .await
            .map_err(|_| JwtError::Invalid)?;
        let verifier = |k: &TokenKeys| {
            if operator {
                k.operator.verify(token, now_secs)
            } else {
                k.tenant.verify(token, now_secs)
            }
        };
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

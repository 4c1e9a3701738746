//! The providers' ID-token keys, cached (issue 24's review: they were fetched at every sign-in).
//!
//! Per JWKS URL, the parsed key set and when it was fetched (the injected clock): used for
//! [`KEYS_TTL`], then fetched again. A token naming a key id the cached set lacks (the provider
//! rotated its keys) fetches the set again at once, but at most once per [`REFETCH_AFTER`] per
//! provider: a stream of tokens with made-up key ids cannot make Gatehouse hammer the provider
//! (they are refused with the set in hand). At most [`MAX_PROVIDERS`] sets are held; the one
//! fetched longest ago leaves first.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use time::{Duration, OffsetDateTime};
use url::Url;

use super::Sso;
use super::id_token::ProviderKeys;
use crate::error::Error;

/// How long a fetched key set is used.
pub const KEYS_TTL: Duration = Duration::minutes(10);
/// The shortest time between two fetches of one provider's keys for an unknown key id.
pub const REFETCH_AFTER: Duration = Duration::seconds(60);
/// How many providers' key sets are held.
pub const MAX_PROVIDERS: usize = 256;

#[derive(Debug, Default)]
pub(super) struct KeyCache {
    sets: Mutex<HashMap<String, (OffsetDateTime, Arc<ProviderKeys>)>>,
}

impl KeyCache {
    fn get(&self, url: &str) -> Option<(OffsetDateTime, Arc<ProviderKeys>)> {
        self.sets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(url)
            .map(|(at, keys)| (*at, Arc::clone(keys)))
    }

    fn put(&self, url: &str, at: OffsetDateTime, keys: Arc<ProviderKeys>) {
        let mut sets = self.sets.lock().unwrap_or_else(PoisonError::into_inner);
        if !sets.contains_key(url) && sets.len() >= MAX_PROVIDERS {
            let oldest = sets
                .iter()
                .min_by_key(|(_, (at, _))| *at)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                sets.remove(&oldest);
            }
        }
        sets.insert(url.to_owned(), (at, keys));
    }
}

impl Sso<'_> {
    /// The keys to verify `id_token` with: the cached set while fresh, unless it lacks the
    /// token's key id and was fetched [`REFETCH_AFTER`] ago or more.
    pub(super) async fn provider_keys(
        &self,
        jwks_url: &Url,
        id_token: &str,
    ) -> Result<Arc<ProviderKeys>, Error> {
        let now = self.clock().now();
        let cache = &self.sso_state().keys;
        if let Some((at, keys)) = cache.get(jwks_url.as_str()) {
            let fresh = now - at < KEYS_TTL;
            let rotated = keys.lacks_kid_of(id_token) && now - at >= REFETCH_AFTER;
            if fresh && !rotated {
                return Ok(keys);
            }
        }
        let oauth = self.oauth();
        let jwks = oauth
            .client()?
            .jwks(jwks_url)
            .await
            .map_err(super::signin::provider_failure)?;
        let keys = serde_json::to_vec(&jwks)
            .ok()
            .and_then(|doc| ProviderKeys::from_jwks(&doc).ok())
            .map(Arc::new)
            .ok_or(Error::SsoRefused("the provider's keys are not usable"))?;
        cache.put(jwks_url.as_str(), now, Arc::clone(&keys));
        Ok(keys)
    }
}

//! Link keys: random 256-bit HMAC keys for values Gatehouse hands out and recognises later
//! without keeping a row per value (a share link's viewer pass, an unsubscribe link). Stored only
//! wrapped under the master key and rewrapped with it, like the platform key. The newest signs;
//! an older one still verifies until `KeyringSettings::link_key_overlap` after its successor was
//! made, so links already in inboxes keep working across a rotation for that long.

use std::sync::{PoisonError, RwLock};

use gatehouse_crypto::{EnvelopeHeader, MacKey, context, random_key};
use time::OffsetDateTime;

use super::{Keyring, MasterKek};
use crate::audit::{self, Actor, AuditEvent};
use crate::error::Error;
use crate::store::{PlatformKeyRecord, PlatformTx};

fn wrap_context(version: u32) -> Vec<u8> {
    context("gatehouse.link-key.v1", &[&version.to_be_bytes()])
}

#[derive(Debug)]
struct LinkKey {
    version: u32,
    created_at: OffsetDateTime,
    mac: MacKey,
}

/// The link keys this instance holds, oldest first, and when it last looked for newer ones.
#[derive(Debug, Default)]
pub(super) struct LinkKeys {
    keys: RwLock<Vec<LinkKey>>,
    reloaded_at: RwLock<Option<OffsetDateTime>>,
}

/// A link key's version, the parts it signed, and the tag.
pub type Signed = (u32, Vec<Vec<u8>>, [u8; 32]);

/// An instance that meets a version newer than any it holds looks in the store at most this
/// often: a flood of forged versions costs one read a second, and a link signed by an instance
/// that has just rotated is refused elsewhere only if that instance looked within the second.
const RELOAD_EVERY: time::Duration = time::Duration::seconds(1);

impl Keyring {
    fn unwrap_link_key(&self, r: &PlatformKeyRecord) -> Result<LinkKey, Error> {
        if r.kek_version != self.kek_version {
            return Err(Error::Unreadable(format!(
                "link key {} is wrapped under master-key version {}, not {}; finish \
                 `gatehouse keys rotate-master`",
                r.version, r.kek_version, self.kek_version
            )));
        }
        let raw = self
            .kek
            .unwrap(&r.wrapped, &wrap_context(r.version))
            .map_err(|e| Error::Unreadable(format!("link key {}: {e}", r.version)))?;
        Ok(LinkKey {
            version: r.version,
            created_at: r.created_at,
            mac: MacKey::new(&raw),
        })
    }

    async fn create_link_key(
        &self,
        tx: &mut dyn PlatformTx,
    ) -> Result<(u32, audit::Audited), Error> {
        let version = tx
            .link_keys()
            .await?
            .iter()
            .map(|k| k.version)
            .max()
            .unwrap_or(0)
            .saturating_add(1);
        let raw = random_key().map_err(|e| Error::Internal(e.to_string()))?;
        let record = PlatformKeyRecord {
            version,
            wrapped: self
                .kek
                .wrap(
                    EnvelopeHeader {
                        kek_version: self.kek_version,
                        dek_version: version,
                    },
                    &wrap_context(version),
                    &raw,
                )
                .map_err(|e| Error::Internal(e.to_string()))?,
            kek_version: self.kek_version,
            created_at: self.clock.now(),
        };
        tx.insert_link_key(&record).await?;
        let event = AuditEvent::success(
            Actor::system("keyring"),
            "keyring.link_key_created",
            "link_key",
            version,
        );
        let proof = audit::append_operator(tx, self.clock.as_ref(), event).await?;
        Ok((version, proof))
    }

    /// Reads every link key from the store (making the first when there is none) and holds
    /// them.
    pub async fn reload_link_keys(&self) -> Result<(), Error> {
        let mut records = self.store.begin_read().await?.link_keys().await?;
        if records.is_empty() {
            // Looked at again under the lock: another instance starting at the same moment may
            // have made version 1 meanwhile, and then its key serves here too.
            let mut tx = self.begin_key_creation().await?;
            records = tx.link_keys().await?;
            if records.is_empty() {
                let (_, proof) = self.create_link_key(tx.as_mut()).await?;
                tx.commit(proof).await?;
                records = self.store.begin_read().await?.link_keys().await?;
            }
        }
        records.sort_by_key(|r| r.version);
        let keys = records
            .iter()
            .map(|r| self.unwrap_link_key(r))
            .collect::<Result<Vec<_>, _>>()?;
        *self
            .links
            .keys
            .write()
            .unwrap_or_else(PoisonError::into_inner) = keys;
        *self
            .links
            .reloaded_at
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(self.clock.now());
        Ok(())
    }

    /// Adds a link key: new links are signed with it; links signed with the older ones keep
    /// verifying for the overlap period. Returns its version.
    pub async fn rotate_link_key(&self) -> Result<u32, Error> {
        let mut tx = self.begin_key_creation().await?;
        let (version, proof) = self.create_link_key(tx.as_mut()).await?;
        tx.commit(proof).await?;
        self.reload_link_keys().await?;
        Ok(version)
    }

    /// Signs `parts` (the first of which names what is signed) with the newest link key:
    /// its version and the tag.
    pub fn link_tag(&self, parts: &[&[u8]]) -> Result<(u32, [u8; 32]), Error> {
        self.link_tag_with(|_| parts.iter().map(|p| p.to_vec()).collect())
            .map(|(v, _, t)| (v, t))
    }

    /// Signs what `build` makes for the newest key's version (a body that names the version
    /// it is signed with), under one read of the keys: a reload in between cannot make the
    /// version and the key disagree. Returns the version, the parts and the tag.
    pub fn link_tag_with(&self, build: impl FnOnce(u32) -> Vec<Vec<u8>>) -> Result<Signed, Error> {
        let keys = self
            .links
            .keys
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let newest = keys
            .last()
            .ok_or_else(|| Error::Internal("the link keys are not loaded".to_owned()))?;
        let parts = build(newest.version);
        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        let tag = newest.mac.tag(&refs);
        Ok((newest.version, parts, tag))
    }

    /// Whether `tag` is the tag of `parts` under link key `version`, and that key still
    /// verifies at `now`: the newest does; an older one until the overlap after its
    /// successor was made. A version newer than any held sends this instance to the store
    /// (another instance may have rotated), at most once a second; keys are never deleted, so
    /// an unknown older version is refused at once.
    pub async fn link_verifies(&self, version: u32, parts: &[&[u8]], tag: &[u8]) -> bool {
        let now = self.clock.now();
        let newest = self
            .links
            .keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .last()
            .map_or(0, |k| k.version);
        if version > newest {
            let due = self
                .links
                .reloaded_at
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .is_none_or(|t| now - t >= RELOAD_EVERY);
            if !due {
                return false;
            }
            // Marked before the read, so concurrent forged versions wait out the second too.
            *self
                .links
                .reloaded_at
                .write()
                .unwrap_or_else(PoisonError::into_inner) = Some(now);
            if self.reload_link_keys().await.is_err() {
                return false;
            }
        }
        let keys = self
            .links
            .keys
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let mut found = keys.iter().skip_while(|k| k.version != version);
        let Some(key) = found.next() else {
            return false;
        };
        let usable = match found.next() {
            None => true,
            Some(successor) => now < successor.created_at + self.settings.link_key_overlap,
        };
        usable && key.mac.verify(parts, tag)
    }

    pub(super) async fn rewrap_link_keys(
        &self,
        tx: &mut dyn PlatformTx,
        new_kek: &dyn MasterKek,
        new_version: u32,
    ) -> Result<(), Error> {
        for k in tx.link_keys().await? {
            if k.kek_version == new_version {
                continue;
            }
            let raw = self
                .kek
                .unwrap(&k.wrapped, &wrap_context(k.version))
                .map_err(|e| Error::Unreadable(format!("link key {}: {e}", k.version)))?;
            let wrapped = super::kek::wrap_verified(
                new_kek,
                EnvelopeHeader {
                    kek_version: new_version,
                    dek_version: k.version,
                },
                &wrap_context(k.version),
                &raw,
            )
            .map_err(|e| Error::Internal(e.to_string()))?;
            tx.rewrap_link_key(k.version, &wrapped, new_version).await?;
        }
        Ok(())
    }
}

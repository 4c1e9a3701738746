//! Transit: encrypt, decrypt and rewrap values the caller stores itself, under the
//! organisation's data key. Ciphertexts read `gh:v{version}:{base64url}`; the organisation, the
//! key version and the caller's context are the associated data, so a ciphertext opens only in
//! its own organisation with its own context.
//!
//! The organisation's transit floor is the lowest key version a ciphertext may use: set to the
//! current version at first use, raised by `transit.manage`. Re-encryption keeps every data-key
//! version at or above it (it cannot rewrap what callers hold), so old ciphertexts keep opening
//! until the floor passes their version; `rewrap` moves them to the newest without the caller
//! seeing the plaintext.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_crypto::{SecretBytes, context};

use crate::audit::{self, AuditEvent};
use crate::context::TenantCall;
use crate::error::Error;
use crate::identity::Permission;
use crate::ids::OrgId;
use crate::kernel::Kernel;
use crate::keyring::TransitState;
use crate::scope::TenantScope;

const PREFIX: &str = "gh:v";
/// Context is the caller's own label for where a value lives (table, column, row).
const MAX_CONTEXT_BYTES: usize = 1024;

/// One item of a request: plaintext (encrypt) or ciphertext (decrypt, rewrap), and its context.
#[derive(Debug)]
pub struct TransitItem {
    pub data: SecretBytes,
    pub context: Vec<u8>,
}

/// Per item: the output, or why this item failed (the others are unaffected).
#[derive(Debug)]
pub enum TransitOutcome {
    Ciphertext(String),
    Plaintext(SecretBytes),
    Failed(&'static str),
}

fn aad(org: OrgId, version: u32, ctx: &[u8]) -> Vec<u8> {
    context(
        "gatehouse.transit.v1",
        &[org.as_uuid().as_bytes(), &version.to_be_bytes(), ctx],
    )
}

/// Reads `gh:v{version}:{base64url}` into the version and the sealed bytes.
pub(crate) fn parse(ciphertext: &[u8]) -> Option<(u32, Vec<u8>)> {
    let text = std::str::from_utf8(ciphertext).ok()?;
    let rest = text.strip_prefix(PREFIX)?;
    let (version, body) = rest.split_once(':')?;
    if version.is_empty() || version.len() > 10 || !version.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // One spelling per ciphertext: `gh:v03:` is not `gh:v3:`.
    if version.len() > 1 && version.starts_with('0') {
        return None;
    }
    Some((version.parse().ok()?, URL_SAFE_NO_PAD.decode(body).ok()?))
}

/// Writes what [`parse`] reads.
pub(crate) fn format_ciphertext(version: u32, sealed: &[u8]) -> String {
    format!("{PREFIX}{version}:{}", URL_SAFE_NO_PAD.encode(sealed))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Encrypt,
    Decrypt,
    /// Decrypt and encrypt under the newest version; needs `transit.decrypt` (the caller could
    /// read the values anyway) and never returns the plaintext.
    Rewrap,
}

impl Op {
    fn permission(self) -> Permission {
        match self {
            Self::Encrypt => Permission::TRANSIT_ENCRYPT,
            Self::Decrypt | Self::Rewrap => Permission::TRANSIT_DECRYPT,
        }
    }

    fn action(self) -> &'static str {
        match self {
            Self::Encrypt => "transit.encrypted",
            Self::Decrypt => "transit.decrypted",
            Self::Rewrap => "transit.rewrapped",
        }
    }
}

/// Transit encryption (D1) of values the caller stores itself.
#[derive(Debug, Clone, Copy)]
pub struct Transit<'k>(pub(crate) &'k Kernel);

crate::kernel::service_handle!(Transit);

impl Transit<'_> {
    /// The organisation's transit state: from the keyring's cache, else read (and, at first
    /// use, the floor set to the current version, audited) in a transaction of its own.
    async fn transit_state(&self, scope: &TenantScope) -> Result<Arc<TransitState>, Error> {
        if let Some(s) = self.keyring().cached_transit(scope.org_id()) {
            return Ok(s);
        }
        let generation = self.keyring().transit_generation(scope.org_id());
        let mut read = self.store().begin_read_scoped(scope).await?;
        if let Some(floor) = read.transit_floor().await? {
            // The usual case: read only, never in the single writer's way.
            return self
                .keyring()
                .load_transit(read.as_mut(), floor, generation)
                .await;
        }
        drop(read);
        let mut tx = self.store().begin_scoped(scope).await?;
        match tx.transit_floor().await? {
            Some(floor) => {
                self.keyring()
                    .load_transit(tx.as_mut(), floor, generation)
                    .await
            }
            None => {
                let newest = self.keyring().newest_version(tx.as_mut()).await?;
                tx.set_transit_floor(newest).await?;
                let state = self
                    .keyring()
                    .load_transit(tx.as_mut(), newest, generation)
                    .await?;
                let event = AuditEvent::success(
                    crate::audit::Actor::system("transit"),
                    "transit.floor_set",
                    "transit_key",
                    newest,
                )
                .with_details(format!("{{\"to\":{newest},\"first_use\":true}}"));
                let proof = audit::append_tenant(tx.as_mut(), self.clock(), event).await?;
                tx.commit(proof).await?;
                Ok(state)
            }
        }
    }

    pub(crate) fn seal_item(org: OrgId, keys: &TransitState, item: &TransitItem) -> TransitOutcome {
        if item.context.len() > MAX_CONTEXT_BYTES {
            return TransitOutcome::Failed("context is longer than 1024 bytes");
        }
        let Some(key) = keys.keys.get(&keys.newest) else {
            return TransitOutcome::Failed("the newest key version is not usable");
        };
        match key.seal(&aad(org, keys.newest, &item.context), item.data.expose()) {
            Ok(sealed) => TransitOutcome::Ciphertext(format_ciphertext(keys.newest, &sealed)),
            Err(_) => TransitOutcome::Failed("encryption failed"),
        }
    }

    pub(crate) fn open_item(
        org: OrgId,
        keys: &TransitState,
        item: &TransitItem,
    ) -> Result<SecretBytes, &'static str> {
        let Some((version, body)) = parse(item.data.expose()) else {
            return Err("not a transit ciphertext");
        };
        let key = keys
            .keys
            .get(&version)
            .filter(|_| version >= keys.floor)
            .ok_or("the ciphertext's key version is no longer accepted")?;
        // Wrong organisation, wrong context and modified bytes are one answer.
        key.open(&aad(org, version, &item.context), &body)
            .map_err(|_| "the ciphertext does not open with this context")
    }

    /// Authorizes, runs `op` over `items` with the cached keys, and records one audit event for
    /// the call through the group-commit writer: decrypt and rewrap answer once their event is
    /// committed (they release plaintext, or prove the caller could read it, so a writer that
    /// fails refuses them); encrypt answers once its event is queued.
    async fn transit_call(
        &self,
        call: &TenantCall,
        op: Op,
        items: Vec<TransitItem>,
    ) -> Result<Vec<TransitOutcome>, Error> {
        let TenantCall {
            principal,
            scope,
            request,
        } = call;
        if op != Op::Encrypt && principal.tier == crate::store::Tier::Impersonation {
            return Err(Error::WrongAudience(
                "an impersonation cannot decrypt the organisation's data",
            ));
        }
        self.authorize_without_tx(principal, scope, op.permission(), request)
            .await?;
        let keys = self.transit_state(scope).await?;
        let org = scope.org_id();
        let out: Vec<TransitOutcome> = items
            .iter()
            .map(|item| match op {
                Op::Encrypt => Self::seal_item(org, &keys, item),
                Op::Decrypt => match Self::open_item(org, &keys, item) {
                    Ok(plain) => TransitOutcome::Plaintext(plain),
                    Err(why) => TransitOutcome::Failed(why),
                },
                Op::Rewrap => match Self::open_item(org, &keys, item) {
                    Ok(plain) => Self::seal_item(
                        org,
                        &keys,
                        &TransitItem {
                            data: plain,
                            context: item.context.clone(),
                        },
                    ),
                    Err(why) => TransitOutcome::Failed(why),
                },
            })
            .collect();
        let failed = out
            .iter()
            .filter(|o| matches!(o, TransitOutcome::Failed(_)))
            .count();
        let event = AuditEvent::success(principal.actor(), op.action(), "transit_key", keys.newest)
            .with_details(format!("{{\"items\":{},\"failed\":{failed}}}", out.len()))
            .with_request(request.request_id.clone());
        if op == Op::Encrypt {
            // Queued, not awaited: encryption reveals nothing, and waiting for a commit per call
            // would cap it at the disk's commit rate times the callers' concurrency.
            self.audit_batcher().record_queued(scope, event).await?;
        } else {
            self.audit_batcher().record(scope, event).await?;
        }
        Ok(out)
    }

    pub async fn encrypt(
        &self,
        call: &TenantCall,
        items: Vec<TransitItem>,
    ) -> Result<Vec<TransitOutcome>, Error> {
        self.transit_call(call, Op::Encrypt, items).await
    }

    pub async fn decrypt(
        &self,
        call: &TenantCall,
        items: Vec<TransitItem>,
    ) -> Result<Vec<TransitOutcome>, Error> {
        self.transit_call(call, Op::Decrypt, items).await
    }

    /// Re-encrypts under the newest key version; the caller never sees the plaintext. Needs
    /// `transit.decrypt` (it proves the caller could read the values anyway).
    pub async fn rewrap(
        &self,
        call: &TenantCall,
        items: Vec<TransitItem>,
    ) -> Result<Vec<TransitOutcome>, Error> {
        self.transit_call(call, Op::Rewrap, items).await
    }

    /// Raises the lowest key version transit ciphertexts may use. Ciphertexts below it stop
    /// opening at once, and re-encryption may then retire those versions for good. Returns
    /// (floor, newest version).
    pub async fn raise_floor(
        &self,
        call: &TenantCall,
        min_version: u32,
    ) -> Result<(u32, u32), Error> {
        let TenantCall {
            principal,
            scope,
            request,
        } = call;
        let tx = self.store().begin_scoped(scope).await?;
        let (mut tx, _) = self
            .authorize(tx, principal, Permission::TRANSIT_MANAGE, request)
            .await?;
        let newest = self.keyring().newest_version(tx.as_mut()).await?;
        let floor = tx.transit_floor().await?.unwrap_or(newest);
        if min_version < floor {
            return Err(Error::invalid(
                "min_version",
                "can only rise: retired versions cannot come back",
            ));
        }
        if min_version > newest {
            return Err(Error::invalid(
                "min_version",
                "is above the newest key version; rotate first",
            ));
        }
        // Other instances may encrypt under their cached newest version for up to the cache's
        // bound after a rotation: a floor above it right away could strand what they return.
        let made = tx
            .org_keys()
            .await?
            .into_iter()
            .find(|k| k.version == min_version)
            .map(|k| k.created_at);
        let settle = time::Duration::try_from(crate::keyring::Keyring::transit_cache_bound() * 3)
            .unwrap_or(time::Duration::seconds(3));
        if made.is_some_and(|at| self.clock().now() - at < settle) {
            return Err(Error::Conflict(
                "that key version is seconds old; raise the floor to it in a few seconds, once \
                 every instance encrypts with it",
            ));
        }
        tx.set_transit_floor(min_version).await?;
        let event = AuditEvent::success(
            principal.actor(),
            "transit.floor_raised",
            "transit_key",
            min_version,
        )
        .with_details(format!("{{\"from\":{floor},\"to\":{min_version}}}"))
        .with_request(request.request_id.clone());
        let proof = audit::append_tenant(tx.as_mut(), self.clock(), event).await?;
        tx.commit(proof).await?;
        self.keyring().forget_transit(scope.org_id());
        Ok((min_version, newest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ciphertext_has_one_spelling() {
        // Found by the `transit_ciphertext` fuzz target (fuzz/): a version with leading zeros
        // was read as the same version, so one ciphertext had endless spellings.
        let sealed = [7u8; 44];
        for version in [0, 3, 10, u32::MAX] {
            let text = format_ciphertext(version, &sealed);
            assert_eq!(parse(text.as_bytes()), Some((version, sealed.to_vec())));
        }
        let body = URL_SAFE_NO_PAD.encode(sealed);
        for bad in [
            "gh:v03:",
            "gh:v00:",
            "gh:v0010:",
            "gh:v:",
            "gh:v+3:",
            "gh:v4294967296:",
        ] {
            assert_eq!(parse(format!("{bad}{body}").as_bytes()), None, "{bad}");
        }
    }
}

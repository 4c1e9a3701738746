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
use gatehouse_crypto::{SecretBytes, TransitKey, context};

use crate::audit::{self, AuditEvent};
use crate::context::RequestContext;
use crate::error::Error;
use crate::identity::{Permission, Principal};
use crate::ids::OrgId;
use crate::kernel::Kernel;
use crate::scope::TenantScope;
use crate::store::TenantTx;

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

fn parse(ciphertext: &[u8]) -> Option<(u32, Vec<u8>)> {
    let text = std::str::from_utf8(ciphertext).ok()?;
    let rest = text.strip_prefix(PREFIX)?;
    let (version, body) = rest.split_once(':')?;
    if version.is_empty() || version.len() > 10 || !version.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((version.parse().ok()?, URL_SAFE_NO_PAD.decode(body).ok()?))
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

struct Keys {
    org: OrgId,
    floor: u32,
    newest: u32,
    newest_key: Arc<TransitKey>,
}

impl Kernel {
    /// The organisation's transit state, setting the floor at first use.
    async fn transit_keys(&self, tx: &mut dyn TenantTx) -> Result<Keys, Error> {
        let org = tx.scope().org_id();
        let newest = self.keyring().newest_version(tx).await?;
        let floor = match tx.transit_floor().await? {
            Some(f) => f,
            None => {
                tx.set_transit_floor(newest).await?;
                newest
            }
        };
        let newest_key = self.keyring().transit_key(tx, newest).await?;
        Ok(Keys {
            org,
            floor,
            newest,
            newest_key,
        })
    }

    fn seal_item(keys: &Keys, item: &TransitItem) -> TransitOutcome {
        if item.context.len() > MAX_CONTEXT_BYTES {
            return TransitOutcome::Failed("context is longer than 1024 bytes");
        }
        match keys.newest_key.seal(
            &aad(keys.org, keys.newest, &item.context),
            item.data.expose(),
        ) {
            Ok(sealed) => TransitOutcome::Ciphertext(format!(
                "{PREFIX}{}:{}",
                keys.newest,
                URL_SAFE_NO_PAD.encode(sealed)
            )),
            Err(_) => TransitOutcome::Failed("encryption failed"),
        }
    }

    async fn open_item(
        &self,
        tx: &mut dyn TenantTx,
        keys: &Keys,
        item: &TransitItem,
    ) -> Result<SecretBytes, &'static str> {
        let Some((version, body)) = parse(item.data.expose()) else {
            return Err("not a transit ciphertext");
        };
        if version < keys.floor || version > keys.newest {
            return Err("the ciphertext's key version is no longer accepted");
        }
        let key = if version == keys.newest {
            Arc::clone(&keys.newest_key)
        } else {
            self.keyring()
                .transit_key(tx, version)
                .await
                .map_err(|_| "the ciphertext's key version is no longer accepted")?
        };
        // Wrong organisation, wrong context and modified bytes are one answer.
        key.open(&aad(keys.org, version, &item.context), &body)
            .map_err(|_| "the ciphertext does not open with this context")
    }

    /// Runs `op` over `items` inside one authorized transaction and records one audit event
    /// for the whole call, committed before anything is returned.
    async fn transit_call(
        &self,
        principal: &Principal,
        scope: &TenantScope,
        op: Op,
        items: Vec<TransitItem>,
        request: &RequestContext,
    ) -> Result<Vec<TransitOutcome>, Error> {
        let tx = self.store().begin_scoped(scope).await?;
        let (mut tx, _) = self
            .authorize(tx, principal, op.permission(), request)
            .await?;
        let keys = self.transit_keys(tx.as_mut()).await?;
        let mut out = Vec::with_capacity(items.len());
        for item in &items {
            out.push(match op {
                Op::Encrypt => Self::seal_item(&keys, item),
                Op::Decrypt | Op::Rewrap => match self.open_item(tx.as_mut(), &keys, item).await {
                    Err(why) => TransitOutcome::Failed(why),
                    Ok(plain) if op == Op::Rewrap => Self::seal_item(
                        &keys,
                        &TransitItem {
                            data: plain,
                            context: item.context.clone(),
                        },
                    ),
                    Ok(plain) => TransitOutcome::Plaintext(plain),
                },
            });
        }
        let failed = out
            .iter()
            .filter(|o| matches!(o, TransitOutcome::Failed(_)))
            .count();
        let event = AuditEvent::success(principal.actor(), op.action(), "transit_key", keys.newest)
            .with_details(format!("{{\"items\":{},\"failed\":{failed}}}", out.len()))
            .with_request(request.request_id.clone());
        let proof = audit::append_tenant(tx.as_mut(), self.clock(), event).await?;
        tx.commit(proof).await?;
        Ok(out)
    }

    pub async fn transit_encrypt(
        &self,
        principal: &Principal,
        scope: &TenantScope,
        items: Vec<TransitItem>,
        request: &RequestContext,
    ) -> Result<Vec<TransitOutcome>, Error> {
        self.transit_call(principal, scope, Op::Encrypt, items, request)
            .await
    }

    pub async fn transit_decrypt(
        &self,
        principal: &Principal,
        scope: &TenantScope,
        items: Vec<TransitItem>,
        request: &RequestContext,
    ) -> Result<Vec<TransitOutcome>, Error> {
        self.transit_call(principal, scope, Op::Decrypt, items, request)
            .await
    }

    /// Re-encrypts under the newest key version; the caller never sees the plaintext. Needs
    /// `transit.decrypt` (it proves the caller could read the values anyway).
    pub async fn transit_rewrap(
        &self,
        principal: &Principal,
        scope: &TenantScope,
        items: Vec<TransitItem>,
        request: &RequestContext,
    ) -> Result<Vec<TransitOutcome>, Error> {
        self.transit_call(principal, scope, Op::Rewrap, items, request)
            .await
    }

    /// Raises the lowest key version transit ciphertexts may use. Ciphertexts below it stop
    /// opening at once, and re-encryption may then retire those versions for good. Returns
    /// (floor, newest version).
    pub async fn raise_transit_floor(
        &self,
        principal: &Principal,
        scope: &TenantScope,
        min_version: u32,
        request: &RequestContext,
    ) -> Result<(u32, u32), Error> {
        let tx = self.store().begin_scoped(scope).await?;
        let (mut tx, _) = self
            .authorize(tx, principal, Permission::TRANSIT_MANAGE, request)
            .await?;
        let keys = self.transit_keys(tx.as_mut()).await?;
        if min_version < keys.floor {
            return Err(Error::invalid(
                "min_version",
                "can only rise: retired versions cannot come back",
            ));
        }
        if min_version > keys.newest {
            return Err(Error::invalid(
                "min_version",
                "is above the newest key version; rotate first",
            ));
        }
        tx.set_transit_floor(min_version).await?;
        let event = AuditEvent::success(
            principal.actor(),
            "transit.floor_raised",
            "transit_key",
            min_version,
        )
        .with_details(format!("{{\"from\":{},\"to\":{min_version}}}", keys.floor))
        .with_request(request.request_id.clone());
        let proof = audit::append_tenant(tx.as_mut(), self.clock(), event).await?;
        tx.commit(proof).await?;
        Ok((min_version, keys.newest))
    }
}

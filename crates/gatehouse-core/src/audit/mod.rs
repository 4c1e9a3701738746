//! The audit log (E1): one hash chain per organisation plus one for the platform operators.
//!
//! **The choke point.** Every store transaction's `commit` takes an [`Audited`] proof, and the only
//! way to get one is to append an event to the same transaction ([`append_tenant`],
//! [`append_operator`]). A state change therefore cannot commit without its event, and an event
//! cannot outlive a change that rolled back. Refusals that change nothing are recorded by
//! [`record_tenant`] / [`record_operator`] in a transaction of their own.
//!
//! **The chain.** Each event stores `prev_hash` (its predecessor's hash; 32 zero bytes for the
//! first) and `hash = SHA-256(prev_hash || canonical encoding of the event)`; see [`chain`] for the
//! encoding. Appends lock the chain's head row, so concurrent writers queue instead of forking the
//! chain. The store refuses UPDATE and DELETE on events (triggers; on PostgreSQL also privileges).

mod batcher;
pub mod chain;
mod event;
mod ingest;
mod read;
pub mod security;
mod spot;

use crate::clock::Clock;
use crate::error::Error;
use crate::ids::new_uuid;
use crate::store::{PlatformTx, Store, TenantTx};

pub use batcher::{AuditBatcher, PersonalEvent};
pub use chain::{VerifyError, verify};
pub use event::{
    Actor, ActorKind, AuditEvent, AuditFilter, AuditRecord, ChainHead, CheckpointRecord, Outcome,
    SigningKeyRecord, SigningPurpose,
};
pub use ingest::{EventActor, MAX_DETAIL_BYTES, MAX_EVENTS, ProductEvent};
pub use read::{AuditLog, AuditReader, AuditView};
pub use security::{SecurityEvent, SecurityEvents, SecurityKind};
pub use spot::{AuditChain, SpotCheck, SpotFailure, spot_check};

/// Proof that an audit event was appended to the transaction being committed.
#[derive(Debug)]
#[must_use = "pass the proof to commit"]
pub struct Audited {
    _private: (),
}

impl Audited {
    fn appended() -> Self {
        Self { _private: () }
    }

    /// A proof without an event, for storage tests that exercise commit itself.
    #[cfg(feature = "testing")]
    pub fn for_tests() -> Self {
        Self::appended()
    }
}

fn record_for(
    org: Option<crate::OrgId>,
    head: Option<ChainHead>,
    clock: &dyn Clock,
    event: AuditEvent,
) -> AuditRecord {
    let (seq, prev_hash) = head.map_or((1, [0u8; 32]), |h| (h.seq + 1, h.hash));
    let mut record = AuditRecord {
        id: new_uuid(clock),
        org_id: org,
        seq,
        at: clock.now(),
        actor_kind: event.actor.kind.as_str().to_owned(),
        actor_id: event.actor.id,
        impersonator_id: event.actor.impersonator_id,
        action: event.action,
        resource_type: event.resource_type,
        resource_id: event.resource_id,
        outcome: event.outcome.as_str().to_owned(),
        request_id: event.request_id,
        details: event.details,
        subject: event.subject,
        personal: event.personal,
        prev_hash: prev_hash.to_vec(),
        hash: Vec::new(),
    };
    record.hash = chain::hash(&record).to_vec();
    record
}

/// Ids an event names in bulk (a purge or erasure batch), within an event's detail bound: the
/// count, the ids themselves when at most [`LISTED_IDS`], and always the SHA-256 of the sorted
/// ids joined by newlines, so a list kept elsewhere can be checked against the log.
pub(crate) fn id_list(ids: &[String]) -> serde_json::Map<String, serde_json::Value> {
    let mut sorted: Vec<&str> = ids.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    let digest = gatehouse_crypto::sha256(&[sorted.join("\n").as_bytes()]);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let mut v = serde_json::Map::new();
    v.insert("count".into(), ids.len().into());
    v.insert("ids_sha256".into(), hex.into());
    if ids.len() <= LISTED_IDS {
        v.insert("ids".into(), serde_json::json!(sorted));
    }
    v
}

/// At most this many ids are listed in one event (36 bytes each, under the 4 KiB detail bound).
pub(crate) const LISTED_IDS: usize = 50;

/// Appends `event` to the chain of the transaction's organisation.
pub async fn append_tenant(
    tx: &mut dyn TenantTx,
    clock: &dyn Clock,
    event: AuditEvent,
) -> Result<Audited, Error> {
    event.validate()?;
    let org = tx.scope().org_id();
    // The webhook event this change raises commits (or rolls back) with it.
    crate::webhooks::enqueue::for_audit_event(tx, clock, &event).await?;
    let head = tx.audit_head().await?;
    tx.append_audit(&record_for(Some(org), head, clock, event))
        .await?;
    crate::telemetry::metrics::audit_appended(1);
    Ok(Audited::appended())
}

/// Appends `events`, in order, to the chain of the transaction's organisation: the head is read
/// once and the records chained in memory, then written in one batch. `None` for no events.
pub async fn append_tenant_batch(
    tx: &mut dyn TenantTx,
    clock: &dyn Clock,
    events: Vec<AuditEvent>,
) -> Result<Option<Audited>, Error> {
    if events.is_empty() {
        return Ok(None);
    }
    for e in &events {
        e.validate()?;
        crate::webhooks::enqueue::for_audit_event(tx, clock, e).await?;
    }
    let org = tx.scope().org_id();
    let mut head = tx.audit_head().await?;
    let mut records = Vec::with_capacity(events.len());
    for event in events {
        let record = record_for(Some(org), head, clock, event);
        // `record_for` hashed it already; the next record chains onto that hash.
        let hash = <[u8; 32]>::try_from(record.hash.as_slice())
            .map_err(|_| Error::Internal("an audit hash is not 32 bytes".into()))?;
        head = Some(ChainHead {
            seq: record.seq,
            hash,
        });
        records.push(record);
    }
    tx.append_audit_batch(&records).await?;
    crate::telemetry::metrics::audit_appended(records.len() as u64);
    Ok(Some(Audited::appended()))
}

/// Appends `event` to the platform operators' chain.
pub async fn append_operator(
    tx: &mut dyn PlatformTx,
    clock: &dyn Clock,
    event: AuditEvent,
) -> Result<Audited, Error> {
    event.validate()?;
    let head = tx.operator_audit_head().await?;
    tx.append_operator_audit(&record_for(None, head, clock, event))
        .await?;
    crate::telemetry::metrics::audit_appended(1);
    Ok(Audited::appended())
}

/// Records an event that goes with no change (a refusal, a failed attempt) in its own transaction.
pub async fn record_tenant(
    store: &dyn Store,
    scope: &crate::TenantScope,
    clock: &dyn Clock,
    event: AuditEvent,
) -> Result<(), Error> {
    let mut tx = store.begin_scoped(scope).await?;
    let proof = append_tenant(tx.as_mut(), clock, event).await?;
    tx.commit(proof).await?;
    Ok(())
}

/// Records an operator-trail event that goes with no change, in its own transaction.
pub async fn record_operator(
    store: &dyn Store,
    clock: &dyn Clock,
    event: AuditEvent,
) -> Result<(), Error> {
    let mut tx = store.begin().await?;
    let proof = append_operator(tx.as_mut(), clock, event).await?;
    tx.commit(proof).await?;
    Ok(())
}

const VERIFY_PAGE: u32 = 1000;

fn head_mismatch(seq: u64, head: Option<ChainHead>, last: [u8; 32]) -> Option<VerifyError> {
    let (head_seq, head_hash) = head.map_or((0, [0u8; 32]), |h| (h.seq, h.hash));
    (head_seq != seq || (seq > 0 && head_hash != last)).then(|| VerifyError {
        seq: head_seq,
        event_id: String::new(),
        reason: format!(
            "the chain head says seq {head_seq} but the events end at seq {seq}: events were \
             removed from the end, or the head was edited"
        ),
    })
}

/// What a checkpoint signs: chain id, seq, hash, time, and the SHA-256 of the previous
/// checkpoint's signature (zeros for the first), length-prefixed. Checkpoints thus form a chain of
/// their own: one removed from the middle breaks the signature of the next.
#[must_use]
pub fn checkpoint_message(
    org: Option<crate::OrgId>,
    seq: u64,
    hash: &[u8],
    at: time::OffsetDateTime,
    previous: Option<&CheckpointRecord>,
) -> Vec<u8> {
    let chain = org.map_or([0u8; 16], |o| *o.as_uuid().as_bytes());
    let prev = previous.map_or([0u8; 32], |p| gatehouse_crypto::sha256(&[&p.signature]));
    gatehouse_crypto::context(
        "gatehouse.checkpoint.v2",
        &[
            &chain,
            &seq.to_be_bytes(),
            hash,
            &crate::clock::unix_micros(at).to_be_bytes(),
            &prev,
        ],
    )
}

/// Everything verification reads about one chain.
struct ChainData {
    org: Option<crate::OrgId>,
    head: Option<ChainHead>,
    checkpoints: Vec<CheckpointRecord>,
    keys: Vec<SigningKeyRecord>,
}

/// Walks pages of events from `next_page`, checking links, hashes, checkpoints and the head.
async fn verify_chain<F, Fut>(
    keyring: &crate::keyring::Keyring,
    data: ChainData,
    mut next_page: F,
) -> Result<Result<u64, VerifyError>, Error>
where
    F: FnMut(u64) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<AuditRecord>, Error>>,
{
    // The head is read first, without a lock: events appended while we verify lie beyond it and
    // are left for the next run, so verification never holds writers up.
    let end = data.head.map_or(0, |h| h.seq);
    let wanted: std::collections::HashSet<u64> = data.checkpoints.iter().map(|c| c.seq).collect();
    let mut found = std::collections::HashMap::new();
    let (mut seq, mut last) = (0u64, [0u8; 32]);
    loop {
        let mut page = next_page(seq).await?;
        // Without a head every event is walked, and the head check below reports them.
        let reached_end = end > 0 && page.iter().any(|r| r.seq >= end);
        if end > 0 {
            page.retain(|r| r.seq <= end);
        }
        if page.is_empty() {
            break;
        }
        for r in &page {
            if wanted.contains(&r.seq) {
                found.insert(r.seq, r.hash.clone());
            }
        }
        match verify(&page, seq, last) {
            Ok((s, h)) => (seq, last) = (s, h),
            Err(e) => return Ok(Err(e)),
        }
        if reached_end {
            break;
        }
    }
    let mut previous: Option<&CheckpointRecord> = None;
    for c in &data.checkpoints {
        let bad = |reason: String| {
            Ok(Err(VerifyError {
                seq: c.seq,
                event_id: String::new(),
                reason,
            }))
        };
        let message = checkpoint_message(data.org, c.seq, &c.hash, c.at, previous);
        previous = Some(c);
        if let Err(why) =
            keyring.verify_checkpoint(&data.keys, c.key_version, &message, &c.signature)
        {
            return bad(format!(
                "the checkpoint at seq {} is not genuine: {why}",
                c.seq
            ));
        }
        match found.get(&c.seq) {
            None => {
                return bad(format!(
                    "a signed checkpoint covers seq {} but the chain ends at seq {seq}: events \
                     were removed after the checkpoint",
                    c.seq
                ));
            }
            Some(h) if *h != c.hash => {
                return bad(format!(
                    "the event at seq {} differs from what the signed checkpoint recorded",
                    c.seq
                ));
            }
            Some(_) => {}
        }
    }
    Ok(head_mismatch(seq, data.head, last).map_or(Ok(seq), Err))
}

/// Recomputes an organisation's whole chain and checks its signed checkpoints. `Ok(Ok(n))`: `n`
/// events, all intact.
pub async fn verify_org(
    store: &dyn Store,
    keyring: &crate::keyring::Keyring,
    scope: &crate::TenantScope,
) -> Result<Result<u64, VerifyError>, Error> {
    let keys = store.begin().await?.signing_keys().await?;
    let mut tx = store.begin_scoped(scope).await?;
    let data = ChainData {
        org: Some(scope.org_id()),
        head: tx.peek_audit_head().await?,
        checkpoints: tx.audit_checkpoints().await?,
        keys,
    };
    let tx = tokio::sync::Mutex::new(tx);
    verify_chain(keyring, data, |after| {
        let tx = &tx;
        async move { Ok(tx.lock().await.audit_events(after, VERIFY_PAGE).await?) }
    })
    .await
}

/// Recomputes organisation `org`'s chain, for the operators' `gatehouse audit verify`: a
/// maintenance read with the server's own credentials, not a tenant request.
pub async fn verify_org_chain(
    store: &dyn Store,
    keyring: &crate::keyring::Keyring,
    org: crate::OrgId,
) -> Result<Result<u64, VerifyError>, Error> {
    verify_org(store, keyring, &crate::TenantScope::granted(org)).await
}

/// Recomputes the operators' chain and checks its checkpoints.
pub async fn verify_operators(
    store: &dyn Store,
    keyring: &crate::keyring::Keyring,
) -> Result<Result<u64, VerifyError>, Error> {
    let mut tx = store.begin().await?;
    let data = ChainData {
        org: None,
        head: tx.peek_operator_audit_head().await?,
        checkpoints: tx.operator_checkpoints().await?,
        keys: tx.signing_keys().await?,
    };
    let tx = tokio::sync::Mutex::new(tx);
    verify_chain(keyring, data, |after| {
        let tx = &tx;
        async move {
            Ok(tx
                .lock()
                .await
                .operator_audit_events(after, VERIFY_PAGE)
                .await?)
        }
    })
    .await
}

/// The signed checkpoint for `head`, unless the newest of `existing` already covers it.
fn next_checkpoint(
    keyring: &crate::keyring::Keyring,
    clock: &dyn Clock,
    chain: Option<crate::OrgId>,
    head: ChainHead,
    existing: Vec<CheckpointRecord>,
) -> Result<Option<CheckpointRecord>, Error> {
    let last = existing.into_iter().max_by_key(|c| c.seq);
    if last.as_ref().map(|c| c.seq) == Some(head.seq) {
        return Ok(None);
    }
    let at = clock.now();
    let message = checkpoint_message(chain, head.seq, &head.hash, at, last.as_ref());
    let (key_version, signature) = keyring.sign_checkpoint(&message)?;
    Ok(Some(CheckpointRecord {
        org_id: chain,
        seq: head.seq,
        hash: head.hash.to_vec(),
        at,
        key_version,
        signature,
    }))
}

/// Signs the head of `org`'s chain when it moved since the last checkpoint. Returns the new
/// checkpoint, if one was made.
pub async fn checkpoint_org(
    store: &dyn Store,
    keyring: &crate::keyring::Keyring,
    clock: &dyn Clock,
    org: crate::OrgId,
) -> Result<Option<CheckpointRecord>, Error> {
    let mut tx = store
        .begin_scoped(&crate::TenantScope::granted(org))
        .await?;
    let Some(head) = tx.audit_head().await? else {
        return Ok(None);
    };
    let existing = tx.audit_checkpoints().await?;
    let Some(c) = next_checkpoint(keyring, clock, Some(org), head, existing)? else {
        return Ok(None);
    };
    tx.insert_audit_checkpoint(&c).await?;
    // A checkpoint is itself an audit record: it needs no event of its own.
    tx.commit(Audited::appended()).await?;
    Ok(Some(c))
}

/// Signs the operators' chain head when it moved since the last checkpoint.
pub async fn checkpoint_operators(
    store: &dyn Store,
    keyring: &crate::keyring::Keyring,
    clock: &dyn Clock,
) -> Result<Option<CheckpointRecord>, Error> {
    let mut tx = store.begin().await?;
    let Some(head) = tx.operator_audit_head().await? else {
        return Ok(None);
    };
    let existing = tx.operator_checkpoints().await?;
    let Some(c) = next_checkpoint(keyring, clock, None, head, existing)? else {
        return Ok(None);
    };
    tx.insert_operator_checkpoint(&c).await?;
    tx.commit(Audited::appended()).await?;
    Ok(Some(c))
}

/// Checkpoints every chain that moved; returns how many checkpoints were made.
pub async fn checkpoint_all(
    store: &dyn Store,
    keyring: &crate::keyring::Keyring,
    clock: &dyn Clock,
) -> Result<u64, Error> {
    let mut made = u64::from(checkpoint_operators(store, keyring, clock).await?.is_some());
    for org in keyring.organization_ids().await? {
        made += u64::from(checkpoint_org(store, keyring, clock, org).await?.is_some());
    }
    Ok(made)
}

/// The scope's events matching `filter`, newest first, one page at a time. The cursor names the
/// last event's sequence number.
pub async fn query(
    store: &dyn Store,
    scope: &crate::TenantScope,
    filter: &AuditFilter,
    page: crate::PageRequest,
) -> Result<crate::Page<AuditRecord>, Error> {
    let before = page.after.map(|c| c.created_at_micros);
    let before = match before {
        Some(s) if s <= 0 => {
            return Ok(crate::Page {
                items: Vec::new(),
                next_cursor: None,
            });
        }
        Some(s) => u64::try_from(s).ok(),
        None => None,
    };
    let mut tx = store.begin_scoped(scope).await?;
    let rows = tx
        .query_audit(filter, before, page.limit.get().saturating_add(1))
        .await?;
    Ok(crate::Page::from_overfetch(rows, page.limit, |r| {
        crate::Cursor::after_seq(r.seq)
    }))
}

/// The newest checkpoint of organisation `org`'s chain (an operator's read, like verification).
pub async fn latest_checkpoint_org(
    store: &dyn Store,
    org: crate::OrgId,
) -> Result<Option<CheckpointRecord>, Error> {
    let mut tx = store
        .begin_scoped(&crate::TenantScope::granted(org))
        .await?;
    Ok(tx
        .audit_checkpoints()
        .await?
        .into_iter()
        .max_by_key(|c| c.seq))
}

/// The newest checkpoint of the operators' chain.
pub async fn latest_checkpoint_operators(
    store: &dyn Store,
) -> Result<Option<CheckpointRecord>, Error> {
    let mut tx = store.begin().await?;
    Ok(tx
        .operator_checkpoints()
        .await?
        .into_iter()
        .max_by_key(|c| c.seq))
}

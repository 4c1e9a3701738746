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

pub mod chain;
mod event;

use crate::clock::Clock;
use crate::error::Error;
use crate::ids::new_uuid;
use crate::store::{PlatformTx, Store, TenantTx};

pub use chain::{VerifyError, verify};
pub use event::{Actor, ActorKind, AuditEvent, AuditFilter, AuditRecord, ChainHead, Outcome};

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

/// Appends `event` to the chain of the transaction's organisation.
pub async fn append_tenant(
    tx: &mut dyn TenantTx,
    clock: &dyn Clock,
    event: AuditEvent,
) -> Result<Audited, Error> {
    event.validate()?;
    let org = tx.scope().org_id();
    let head = tx.audit_head().await?;
    tx.append_audit(&record_for(Some(org), head, clock, event))
        .await?;
    Ok(Audited::appended())
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

/// Recomputes an organisation's whole chain. `Ok(Ok(n))`: `n` events, all intact.
pub async fn verify_org(
    store: &dyn Store,
    scope: &crate::TenantScope,
) -> Result<Result<u64, VerifyError>, Error> {
    let mut tx = store.begin_scoped(scope).await?;
    let (mut seq, mut last) = (0u64, [0u8; 32]);
    loop {
        let page = tx.audit_events(seq, VERIFY_PAGE).await?;
        if page.is_empty() {
            break;
        }
        match verify(&page, seq, last) {
            Ok((s, h)) => (seq, last) = (s, h),
            Err(e) => return Ok(Err(e)),
        }
    }
    let head = tx.audit_head().await?;
    Ok(head_mismatch(seq, head, last).map_or(Ok(seq), Err))
}

/// Recomputes organisation `org`'s chain, for the operators' `gatehouse audit verify`: a
/// maintenance read with the server's own credentials, not a tenant request.
pub async fn verify_org_chain(
    store: &dyn Store,
    org: crate::OrgId,
) -> Result<Result<u64, VerifyError>, Error> {
    verify_org(store, &crate::TenantScope::granted(org)).await
}

/// Recomputes the operators' chain.
pub async fn verify_operators(store: &dyn Store) -> Result<Result<u64, VerifyError>, Error> {
    let mut tx = store.begin().await?;
    let (mut seq, mut last) = (0u64, [0u8; 32]);
    loop {
        let page = tx.operator_audit_events(seq, VERIFY_PAGE).await?;
        if page.is_empty() {
            break;
        }
        match verify(&page, seq, last) {
            Ok((s, h)) => (seq, last) = (s, h),
            Err(e) => return Ok(Err(e)),
        }
    }
    let head = tx.operator_audit_head().await?;
    Ok(head_mismatch(seq, head, last).map_or(Ok(seq), Err))
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

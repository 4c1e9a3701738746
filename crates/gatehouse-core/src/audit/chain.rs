//! The canonical encoding, the hash, and verification.
//!
//! Encoding v1: the label `gatehouse.audit.v1`, then each field length-prefixed (u32 big-endian)
//! in this order: chain id (the organisation's 16 uuid bytes, or 16 zero bytes for the operators'
//! trail), seq (u64 BE), event id (16 bytes), time (i64 BE microseconds since the Unix epoch),
//! actor kind, actor id, impersonator (`0` when absent, `1` + id when present), action, resource
//! type, resource id, outcome, request id (same optional form), details (the stored JSON text),
//! subject (optional form), personal (`0`, or `1` + the sealed bytes: the chain commits to the
//! ciphertext, so destroying the subject's key leaves it verifiable).
//! `hash = SHA-256(prev_hash || encoding)`.

use gatehouse_crypto::{context, sha256};

use super::event::AuditRecord;
use crate::clock::unix_micros;

fn optional(v: Option<&str>) -> Vec<u8> {
    match v {
        None => vec![0],
        Some(s) => {
            let mut out = Vec::with_capacity(s.len() + 1);
            out.push(1);
            out.extend_from_slice(s.as_bytes());
            out
        }
    }
}

fn optional_bytes(v: Option<&[u8]>) -> Vec<u8> {
    match v {
        None => vec![0],
        Some(b) => {
            let mut out = Vec::with_capacity(b.len() + 1);
            out.push(1);
            out.extend_from_slice(b);
            out
        }
    }
}

#[must_use]
pub fn encode(r: &AuditRecord) -> Vec<u8> {
    let chain = r.org_id.map_or([0u8; 16], |o| *o.as_uuid().as_bytes());
    context(
        "gatehouse.audit.v1",
        &[
            &chain,
            &r.seq.to_be_bytes(),
            r.id.as_bytes(),
            &unix_micros(r.at).to_be_bytes(),
            r.actor_kind.as_bytes(),
            r.actor_id.as_bytes(),
            &optional(r.impersonator_id.as_deref()),
            r.action.as_bytes(),
            r.resource_type.as_bytes(),
            r.resource_id.as_bytes(),
            r.outcome.as_bytes(),
            &optional(r.request_id.as_deref()),
            r.details.as_bytes(),
            &optional(r.subject.as_deref()),
            &optional_bytes(r.personal.as_deref()),
        ],
    )
}

#[must_use]
pub fn hash(r: &AuditRecord) -> [u8; 32] {
    sha256(&[&r.prev_hash, &encode(r)])
}

/// The first problem found in a chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit chain broken at seq {seq} (event {event_id}): {reason}")]
pub struct VerifyError {
    pub seq: u64,
    pub event_id: String,
    pub reason: String,
}

/// Checks events given in sequence order, starting after `(start_seq, start_hash)` (0 and zero
/// bytes for the whole chain): numbering without gaps, each link, each hash.
pub fn verify(
    records: &[AuditRecord],
    start_seq: u64,
    start_hash: [u8; 32],
) -> Result<(u64, [u8; 32]), VerifyError> {
    let mut seq = start_seq;
    let mut prev = start_hash;
    for r in records {
        let bad = |reason: String| VerifyError {
            seq: r.seq,
            event_id: r.id.to_string(),
            reason,
        };
        if r.seq != seq + 1 {
            return Err(bad(format!(
                "expected seq {} next: events are missing or out of order",
                seq + 1
            )));
        }
        if r.prev_hash != prev {
            return Err(bad("does not link to the event before it".into()));
        }
        let computed = hash(r);
        if r.hash != computed {
            return Err(bad("its contents do not match its hash (modified)".into()));
        }
        seq = r.seq;
        prev = computed;
    }
    Ok((seq, prev))
}

//! A bounded spot check of the audit chains (E1's self-check in the posture report): the
//! operators' chain and a few organisations' chains per run, in a rotation that comes round to
//! every chain, each recomputed from its newest signed checkpoint to its head.
//!
//! Per chain it reads the two newest checkpoints, the head, and at most `max_events` events, so a
//! run costs the same whatever the chains' length or the number of organisations. What it proves
//! per chain: the newest checkpoint's signature holds (chained to the one before it), the event
//! it signed is still there and still hashes to what was signed, and every later event up to the
//! head links and hashes correctly. Older events are the full verification's business
//! (`gatehouse audit verify`, [`super::verify_org`]).

use std::fmt;

use futures_util::{StreamExt as _, TryStreamExt as _, stream};
use time::Duration;

use super::chain::{VerifyError, verify};
use super::{AuditRecord, ChainHead, CheckpointRecord, SigningKeyRecord, checkpoint_message};
use crate::clock::Clock;
use crate::error::Error;
use crate::ids::OrgId;
use crate::keyring::Keyring;
use crate::scope::TenantScope;
use crate::store::Store;

/// One audit chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AuditChain {
    /// The platform operators' chain.
    Operators,
    /// An organisation's chain.
    Organization(OrgId),
}

impl AuditChain {
    fn org(self) -> Option<OrgId> {
        match self {
            Self::Operators => None,
            Self::Organization(o) => Some(o),
        }
    }
}

impl fmt::Display for AuditChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Operators => f.write_str("the operators' chain"),
            Self::Organization(o) => write!(f, "organisation {o}'s chain"),
        }
    }
}

/// A chain the spot check found broken, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpotFailure {
    pub chain: AuditChain,
    pub reason: String,
}

/// What one spot check looked at and found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpotCheck {
    /// The chains checked this run, in order: the operators', then up to `max_chains`
    /// organisations' in the rotation's order.
    pub checked: Vec<AuditChain>,
    /// Chains in the deployment: one per organisation, and the operators'.
    pub chains_total: u64,
    /// Events whose links and hashes were recomputed.
    pub events_recomputed: u64,
    /// Where the next run starts in the rotation of organisations (pass it back as `start`).
    pub next_start: usize,
    /// Chains with more events after their newest checkpoint than `max_events`: checked from the
    /// checkpoint up to that many, not up to the head.
    pub capped: Vec<AuditChain>,
    /// Chains with events but no signed checkpoint yet: only their newest events' links were
    /// recomputed, with nothing signed to compare them with.
    pub without_checkpoint: Vec<AuditChain>,
    /// The age (by the injected clock) of the oldest newest-checkpoint among the chains checked,
    /// and its chain: how far behind signing is at worst.
    pub oldest_checkpoint: Option<(AuditChain, Duration)>,
    /// The oldest event no checkpoint covers yet among the chains checked, and its chain (for a
    /// chain never signed, its oldest event read: a lower bound on the age). The checkpoint job
    /// signs every chain that moved each interval, so an old unsigned event means signing has
    /// stopped, or checkpoints were removed.
    pub oldest_unsigned: Option<(AuditChain, time::OffsetDateTime)>,
    /// Organisations whose chain holds nothing at all: creating an organisation records an
    /// event in its chain, so an empty one was deleted whole (or made by hand).
    pub empty: Vec<AuditChain>,
    /// Chains found broken.
    pub failures: Vec<SpotFailure>,
}

impl SpotCheck {
    /// How many chains this run checked.
    #[must_use]
    pub fn chains_checked(&self) -> usize {
        self.checked.len()
    }
}

/// The checkpoints a chain check reads: the newest, and the one its signature chains to.
const RECENT_CHECKPOINTS: u32 = 2;

/// Checks the operators' chain and up to `max_chains` organisations' chains from position
/// `start` of the organisations in id order (wrapping round; pass back [`SpotCheck::next_start`]
/// so successive runs cover every chain), recomputing at most `max_events` events per chain.
pub async fn spot_check(
    store: &dyn Store,
    keyring: &Keyring,
    clock: &dyn Clock,
    start: usize,
    max_chains: usize,
    max_events: u32,
) -> Result<SpotCheck, Error> {
    let max_events = max_events.max(1);
    let mut platform = store.begin_read().await?;
    let keys = platform.signing_keys().await?;
    let total = platform.count_organizations().await?;
    let (orgs, next_start) = rotation(platform.as_mut(), total, start, max_chains).await?;
    let operators = {
        let recent = platform
            .recent_operator_checkpoints(RECENT_CHECKPOINTS)
            .await?;
        let head = platform.peek_operator_audit_head().await?;
        let (after, limit) = range(recent.last(), head, max_events);
        let events = platform.operator_audit_events(after, limit).await?;
        Reads {
            recent,
            head,
            events,
        }
    };
    drop(platform);
    let mut spot = SpotCheck {
        checked: Vec::new(),
        chains_total: total.saturating_add(1),
        events_recomputed: 0,
        next_start,
        capped: Vec::new(),
        without_checkpoint: Vec::new(),
        oldest_checkpoint: None,
        oldest_unsigned: None,
        empty: Vec::new(),
        failures: Vec::new(),
    };
    let now = clock.now();
    let mut judge = |chain: AuditChain, reads: Reads| {
        let outcome = judge_chain(keyring, &keys, chain, reads, max_events);
        spot.checked.push(chain);
        spot.events_recomputed += outcome.recomputed;
        match outcome.state {
            State::Intact => {}
            State::Capped => spot.capped.push(chain),
            State::NoCheckpoint => spot.without_checkpoint.push(chain),
            State::Empty => spot.empty.push(chain),
            State::Broken(reason) => spot.failures.push(SpotFailure { chain, reason }),
        }
        if let Some(at) = outcome.unsigned_since
            && spot.oldest_unsigned.is_none_or(|(_, oldest)| at < oldest)
        {
            spot.oldest_unsigned = Some((chain, at));
        }
        if let Some(at) = outcome.checkpoint_at {
            let age = now - at;
            if spot
                .oldest_checkpoint
                .is_none_or(|(_, oldest)| age > oldest)
            {
                spot.oldest_checkpoint = Some((chain, age));
            }
        }
    };
    judge(AuditChain::Operators, operators);
    let reads: Vec<(OrgId, Reads)> = stream::iter(orgs)
        .map(|org| async move { Ok::<_, Error>((org, read_org(store, org, max_events).await?)) })
        .buffered(CONCURRENT_CHAINS)
        .try_collect()
        .await?;
    for (org, r) in reads {
        judge(AuditChain::Organization(org), r);
    }
    Ok(spot)
}

/// Organisations' chains read at once: each read is a few round trips to the store, so a run's
/// time is their latency, divided by this. Small, to leave the pool to requests.
const CONCURRENT_CHAINS: usize = 4;

async fn read_org(store: &dyn Store, org: OrgId, max_events: u32) -> Result<Reads, Error> {
    let mut tx = store.begin_read_scoped(&TenantScope::granted(org)).await?;
    let recent = tx.recent_audit_checkpoints(RECENT_CHECKPOINTS).await?;
    let head = tx.peek_audit_head().await?;
    let (after, limit) = range(recent.last(), head, max_events);
    let events = tx.audit_events(after, limit).await?;
    Ok(Reads {
        recent,
        head,
        events,
    })
}

/// The organisations at rotation positions `start ..` (wrapping round), at most `max_chains`,
/// and the position after them.
async fn rotation(
    tx: &mut dyn crate::store::PlatformTx,
    total: u64,
    start: usize,
    max_chains: usize,
) -> Result<(Vec<OrgId>, usize), Error> {
    if total == 0 || max_chains == 0 {
        return Ok((Vec::new(), start));
    }
    let take = u64::try_from(max_chains).unwrap_or(u64::MAX).min(total);
    let from = u64::try_from(start).unwrap_or(0) % total;
    let limit = u32::try_from(take).unwrap_or(u32::MAX);
    let mut orgs = tx.organization_ids_from(from, limit).await?;
    let short = limit.saturating_sub(u32::try_from(orgs.len()).unwrap_or(u32::MAX));
    if short > 0 {
        for org in tx.organization_ids_from(0, short).await? {
            // Organisations erased meanwhile can bring the start round again.
            if !orgs.contains(&org) {
                orgs.push(org);
            }
        }
    }
    let next = usize::try_from((from + take) % total).unwrap_or(0);
    Ok((orgs, next))
}

/// What was read of one chain, in this order: its newest checkpoints, its head, its events.
/// (Reading the checkpoints first means the head read after them is never behind them, unless
/// the chain was wound back.)
struct Reads {
    recent: Vec<CheckpointRecord>,
    head: Option<ChainHead>,
    events: Vec<AuditRecord>,
}

/// The events to read, as `(after_seq, limit)`: from the newest checkpoint's event on, or the
/// newest `max_events` of a chain not yet checkpointed, or (no head) whether any event exists.
fn range(
    latest: Option<&CheckpointRecord>,
    head: Option<ChainHead>,
    max_events: u32,
) -> (u64, u32) {
    match (latest, head) {
        (Some(c), _) => (c.seq.saturating_sub(1), max_events),
        (None, Some(h)) => (h.seq.saturating_sub(u64::from(max_events)), max_events),
        (None, None) => (0, 1),
    }
}

enum State {
    Intact,
    Capped,
    NoCheckpoint,
    /// An organisation's chain with no event, head or checkpoint at all.
    Empty,
    Broken(String),
}

struct Outcome {
    state: State,
    recomputed: u64,
    checkpoint_at: Option<time::OffsetDateTime>,
    unsigned_since: Option<time::OffsetDateTime>,
}

fn broken_at(e: &VerifyError) -> String {
    format!("at seq {}: {}", e.seq, e.reason)
}

fn judge_chain(
    keyring: &Keyring,
    keys: &[SigningKeyRecord],
    chain: AuditChain,
    reads: Reads,
    max_events: u32,
) -> Outcome {
    let Reads {
        recent,
        head,
        mut events,
    } = reads;
    // Events appended after the head was read are left for the next run.
    if let Some(h) = head {
        events.retain(|e| e.seq <= h.seq);
    }
    let recomputed = events.len() as u64;
    let mut newest_first = recent.iter().rev();
    let latest = newest_first.next();
    let signed_up_to = latest.map_or(0, |c| c.seq);
    let unsigned_since = events.iter().find(|e| e.seq > signed_up_to).map(|e| e.at);
    let outcome = |state| Outcome {
        state,
        recomputed,
        checkpoint_at: latest.map(|c| c.at),
        unsigned_since,
    };
    let state = match latest {
        Some(c) => {
            let signed = Signed {
                latest: c,
                previous: newest_first.next(),
            };
            judge_checkpointed(keyring, keys, chain, signed, head, &events, max_events)
        }
        None if head.is_none() && events.is_empty() && chain.org().is_some() => State::Empty,
        None => judge_unsigned(head, &events, max_events),
    };
    match state {
        State::Intact
            if latest.is_some()
                && head.is_some_and(|h| events.last().is_some_and(|e| e.seq < h.seq)) =>
        {
            outcome(State::Capped)
        }
        s => outcome(s),
    }
}

/// A chain's newest checkpoint and the one before it, whose signature the newest one signs.
struct Signed<'a> {
    latest: &'a CheckpointRecord,
    previous: Option<&'a CheckpointRecord>,
}

/// A chain with a signed checkpoint: the signature, the signed event, and every event after it.
fn judge_checkpointed(
    keyring: &Keyring,
    keys: &[SigningKeyRecord],
    chain: AuditChain,
    Signed {
        latest: c,
        previous,
    }: Signed<'_>,
    head: Option<ChainHead>,
    events: &[AuditRecord],
    max_events: u32,
) -> State {
    let message = checkpoint_message(chain.org(), c.seq, &c.hash, c.at, previous);
    if let Err(why) = keyring.verify_checkpoint(keys, c.key_version, &message, &c.signature) {
        return State::Broken(format!(
            "the newest checkpoint (seq {}) is not genuine: {why}",
            c.seq
        ));
    }
    let Some(h) = head else {
        return State::Broken(format!(
            "a signed checkpoint covers seq {} but the chain has no head",
            c.seq
        ));
    };
    if h.seq < c.seq {
        return State::Broken(format!(
            "a signed checkpoint covers seq {} but the head says seq {}: events were removed \
             after the checkpoint, or the head was wound back",
            c.seq, h.seq
        ));
    }
    let Some(first) = events.first().filter(|e| e.seq == c.seq) else {
        return State::Broken(format!(
            "the event at seq {}, which the newest checkpoint signed, is missing",
            c.seq
        ));
    };
    let Ok(start) = <[u8; 32]>::try_from(first.prev_hash.as_slice()) else {
        return State::Broken(format!("the event at seq {} has a malformed link", c.seq));
    };
    let last = match verify(events, c.seq.saturating_sub(1), start) {
        Ok(last) => last,
        Err(e) => return State::Broken(broken_at(&e)),
    };
    if first.hash != c.hash {
        return State::Broken(format!(
            "the event at seq {} differs from what the newest signed checkpoint recorded",
            c.seq
        ));
    }
    judge_end(h, last, events.len(), max_events)
}

/// A chain without a checkpoint: its newest events' links and hashes, and the head.
fn judge_unsigned(head: Option<ChainHead>, events: &[AuditRecord], max_events: u32) -> State {
    let Some(h) = head else {
        return match events.first() {
            None => State::Intact,
            Some(e) => State::Broken(format!(
                "events exist (seq {} and on) but the chain has no head",
                e.seq
            )),
        };
    };
    let expected_first = h.seq.saturating_sub(u64::from(max_events)) + 1;
    let Some(first) = events.first() else {
        return State::Broken(format!(
            "the head says seq {} but the chain has no events",
            h.seq
        ));
    };
    if first.seq != expected_first {
        return State::Broken(format!(
            "expected the event at seq {expected_first} but found seq {}: events are missing",
            first.seq
        ));
    }
    let start = if first.seq == 1 {
        [0u8; 32]
    } else {
        match <[u8; 32]>::try_from(first.prev_hash.as_slice()) {
            Ok(s) => s,
            Err(_) => {
                return State::Broken(format!(
                    "the event at seq {} has a malformed link",
                    first.seq
                ));
            }
        }
    };
    let last = match verify(events, first.seq - 1, start) {
        Ok(last) => last,
        Err(e) => return State::Broken(broken_at(&e)),
    };
    match judge_end(h, last, events.len(), max_events) {
        State::Intact => State::NoCheckpoint,
        other => other,
    }
}

/// The recomputed end `(seq, hash)` against the head: equal, or (when `read` reached `limit`)
/// short of it by design, or short of it because events are gone.
fn judge_end(h: ChainHead, (seq, hash): (u64, [u8; 32]), read: usize, limit: u32) -> State {
    if seq == h.seq {
        if hash == h.hash {
            State::Intact
        } else {
            State::Broken(format!(
                "the newest event (seq {seq}) does not match the chain head: it was modified, or \
                 the head was edited"
            ))
        }
    } else if read >= limit as usize {
        State::Intact
    } else {
        State::Broken(format!(
            "the head says seq {} but the events end at seq {seq}: events were removed from the \
             end, or the head was edited",
            h.seq
        ))
    }
}

//! How connector hand-outs are audited without every call waiting for a commit (#24, must 5).
//!
//! The first hand-out of a connector to a service (and its label) on a person's behalf since the last flush is
//! recorded on its own (`connector.token_used`, with the request id) and answers only once that
//! event is committed, so every pairing of connector, person and service that ever received a
//! token is in the chain before the token leaves. Further hand-outs of the same pairing are
//! counted here and written at the next flush (the activity job's, every 30 s, and at shutdown)
//! as one `connector.token_used` event with `uses`, `first_at` and `last_at`, as API-key use and
//! share-link opens are. A hand-out is counted only once its pairing's own event is committed
//! (until then each records its own), so no token leaves uncounted in the chain or in memory. A
//! crash loses at most the counts since the last flush; a full table makes every call record its
//! own event again rather than drop one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use time::OffsetDateTime;
use uuid::Uuid;

use crate::audit::{Actor, AuditEvent};
use crate::ids::OrgId;

/// Pairings counted at most between two flushes; past it each call records its own event.
const MAX_PAIRINGS: usize = 50_000;

/// One connector handed to one service (its proven name and its label) for one person.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Pairing {
    pub org: OrgId,
    pub connector: Uuid,
    pub person: Uuid,
    pub service: Arc<str>,
    pub label: Option<String>,
}

#[derive(Debug)]
struct Count {
    /// Whether the pairing's own event is committed: until then every call records its own.
    committed: bool,
    actor: Actor,
    provider: String,
    uses: u64,
    first: Option<OffsetDateTime>,
    last: Option<OffsetDateTime>,
}

/// What a hand-out must do about its audit event.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Noted {
    /// The pairing's first use since the last flush: record it and wait for the commit.
    Record,
    /// Counted: written at the next flush.
    Counted,
}

/// Hand-outs counted since the last flush, by pairing.
#[derive(Debug, Default)]
pub struct UsageTally {
    counts: Mutex<HashMap<Pairing, Count>>,
    /// Events a flush could not write, tried once more at the next one.
    held: Mutex<Vec<(OrgId, Vec<AuditEvent>)>>,
    /// One flush at a time, held by the task that writes (`Connectors::flush_usage`).
    flushing: Arc<tokio::sync::Mutex<()>>,
}

impl UsageTally {
    /// Notes a hand-out of `pairing` at `now`.
    pub(crate) fn note(
        &self,
        pairing: &Pairing,
        actor: impl FnOnce() -> Actor,
        provider: &str,
        now: OffsetDateTime,
    ) -> Noted {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = counts.get_mut(pairing) {
            // Counted only once the pairing's own event is committed; a call racing the first
            // (or following one that failed or was abandoned) records its own.
            if !c.committed {
                return Noted::Record;
            }
            c.uses += 1;
            c.first.get_or_insert(now);
            c.last = Some(now);
            return Noted::Counted;
        }
        if counts.len() < MAX_PAIRINGS {
            counts.insert(
                pairing.clone(),
                Count {
                    committed: false,
                    actor: actor(),
                    provider: provider.to_owned(),
                    uses: 0,
                    first: None,
                    last: None,
                },
            );
        }
        Noted::Record
    }

    /// Notes that `pairing`'s own event is committed: its next hand-outs are counted.
    pub(crate) fn committed(&self, pairing: &Pairing) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = counts.get_mut(pairing) {
            c.committed = true;
        }
    }

    /// Holds events a flush could not write for the next flush (once: `retried` ones are not
    /// held again), up to the table's bound.
    pub(crate) fn hold(&self, org: OrgId, events: Vec<AuditEvent>) {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if held.iter().map(|(_, e)| e.len()).sum::<usize>() + events.len() <= MAX_PAIRINGS {
            held.push((org, events));
        }
    }

    /// Events held by the last flush (to be tried for the last time).
    pub(crate) fn take_held(&self) -> Vec<(OrgId, Vec<AuditEvent>)> {
        std::mem::take(&mut *self.held.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Takes every pairing's count, leaving the table empty: the events to write, by
    /// organisation (pairings used only once since the last flush have none).
    pub(crate) fn take(&self) -> HashMap<OrgId, Vec<AuditEvent>> {
        let taken =
            std::mem::take(&mut *self.counts.lock().unwrap_or_else(PoisonError::into_inner));
        let mut by_org: HashMap<OrgId, Vec<AuditEvent>> = HashMap::new();
        for (p, c) in taken {
            let (Some(first), Some(last)) = (c.first, c.last) else {
                continue;
            };
            if c.uses == 0 {
                continue;
            }
            let event = AuditEvent::success(c.actor, super::TOKEN_USED, "connector", p.connector)
                .with_details(
                    serde_json::json!({
                        "provider": c.provider,
                        "service": p.service.as_ref(),
                        "service_label": p.label,
                        "uses": c.uses,
                        "first_at": first.unix_timestamp(),
                        "last_at": last.unix_timestamp(),
                    })
                    .to_string(),
                );
            by_org.entry(p.org).or_default().push(event);
        }
        by_org
    }

    /// Waits for any flush under way (one that was itself abandoned included) to finish.
    pub(crate) async fn flush_turn(&self) -> tokio::sync::OwnedMutexGuard<()> {
        Arc::clone(&self.flushing).lock_owned().await
    }

    /// Pairings held (for tests).
    #[must_use]
    pub fn len(&self) -> usize {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::ActorKind;

    fn pairing(service: &str) -> Pairing {
        Pairing {
            org: OrgId::from_uuid(Uuid::from_u128(1)),
            connector: Uuid::from_u128(2),
            person: Uuid::from_u128(3),
            service: Arc::from(service),
            label: None,
        }
    }

    fn actor() -> Actor {
        Actor {
            kind: ActorKind::User,
            id: Uuid::from_u128(3).to_string(),
            impersonator_id: None,
        }
    }

    #[test]
    fn the_first_use_of_a_pairing_records_and_the_rest_are_counted_until_the_flush() {
        let t = UsageTally::default();
        let t0 = OffsetDateTime::UNIX_EPOCH;
        let a = pairing("billing");
        assert_eq!(t.note(&a, actor, "crm", t0), Noted::Record);
        // Until that event is committed, a racing call records its own.
        assert_eq!(t.note(&a, actor, "crm", t0), Noted::Record);
        t.committed(&a);
        for i in 1..=4 {
            assert_eq!(
                t.note(&a, actor, "crm", t0 + time::Duration::seconds(i)),
                Noted::Counted
            );
        }
        // Another service is another pairing: its first use records too.
        assert_eq!(t.note(&pairing("mailer"), actor, "crm", t0), Noted::Record);
        let taken = t.take();
        let events: Vec<&AuditEvent> = taken.values().flatten().collect();
        assert_eq!(events.len(), 1, "only the counted pairing has an event");
        let details: serde_json::Value = serde_json::from_str(&events[0].details).unwrap();
        assert_eq!(details["uses"], 4);
        assert_eq!(details["service"], "billing");
        assert_eq!(details["first_at"], 1);
        assert_eq!(details["last_at"], 4);
        assert!(t.is_empty());
        // After the flush the next use records on its own again.
        assert_eq!(t.note(&a, actor, "crm", t0), Noted::Record);
    }

    #[test]
    fn a_pairing_whose_event_failed_or_was_abandoned_records_again() {
        let t = UsageTally::default();
        let a = pairing("billing");
        let t0 = OffsetDateTime::UNIX_EPOCH;
        assert_eq!(t.note(&a, actor, "crm", t0), Noted::Record);
        // No commit confirmed (the write failed, or the caller went away): never counted.
        for _ in 0..3 {
            assert_eq!(t.note(&a, actor, "crm", t0), Noted::Record);
        }
        assert!(t.take().is_empty());
    }

    #[test]
    fn a_full_table_records_every_call_rather_than_drop_one() {
        let t = UsageTally::default();
        let t0 = OffsetDateTime::UNIX_EPOCH;
        for i in 0..MAX_PAIRINGS {
            t.note(&pairing(&i.to_string()), actor, "crm", t0);
        }
        let extra = pairing("one too many");
        assert_eq!(t.note(&extra, actor, "crm", t0), Noted::Record);
        t.committed(&extra);
        assert_eq!(t.note(&extra, actor, "crm", t0), Noted::Record);
        assert_eq!(t.len(), MAX_PAIRINGS);
    }
}

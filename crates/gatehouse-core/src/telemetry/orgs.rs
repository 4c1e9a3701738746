//! Requests per organisation with bounded cardinality: exact counts for up to `TRACKED`
//! organisations (later ones are only summed), exported as the top N and one `other`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use uuid::Uuid;

/// Most organisations counted one by one; about 40 bytes each.
const TRACKED: usize = 10_000;

#[derive(Debug, Default)]
pub(crate) struct OrgCounts {
    /// foldhash, not SipHash: the keys are our own organisation ids, counted on every request.
    counts: Mutex<HashMap<Uuid, u64, foldhash::fast::RandomState>>,
    /// Requests of organisations beyond the tracked ones.
    untracked: AtomicU64,
}

impl OrgCounts {
    pub(crate) fn record(&self, org: Uuid) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let len = counts.len();
        match counts.get_mut(&org) {
            Some(n) => *n += 1,
            None if len < TRACKED => {
                counts.insert(org, 1);
            }
            None => {
                self.untracked.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The `n` busiest organisations (ties broken by id, so the choice is stable) and the sum of
    /// everyone else's requests.
    pub(crate) fn top(&self, n: usize) -> (Vec<(Uuid, u64)>, u64) {
        let mut all: Vec<(Uuid, u64)> = self
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect();
        all.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let rest = all.split_off(n.min(all.len()));
        let other =
            rest.iter().map(|(_, c)| c).sum::<u64>() + self.untracked.load(Ordering::Relaxed);
        (all, other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thousand_organisations_export_the_top_n_and_other() {
        let c = OrgCounts::default();
        let orgs: Vec<Uuid> = (0..1000u128).map(Uuid::from_u128).collect();
        for (i, o) in orgs.iter().enumerate() {
            for _ in 0..=(i % 50) {
                c.record(*o);
            }
        }
        let total: u64 = (0..1000u64).map(|i| i % 50 + 1).sum();
        let (top, other) = c.top(10);
        assert_eq!(top.len(), 10);
        assert!(top.iter().all(|(_, n)| *n == 50));
        assert_eq!(top.iter().map(|(_, n)| n).sum::<u64>() + other, total);
        let (all, none) = c.top(5000);
        assert_eq!((all.len(), none), (1000, 0));
    }

    #[test]
    fn past_the_tracked_bound_requests_are_still_counted() {
        let c = OrgCounts::default();
        for i in 0..(TRACKED as u128 + 5) {
            c.record(Uuid::from_u128(i));
        }
        c.record(Uuid::from_u128(0));
        let (top, other) = c.top(1);
        assert_eq!(top, vec![(Uuid::from_u128(0), 2)]);
        assert_eq!(other, TRACKED as u64 + 4);
    }
}

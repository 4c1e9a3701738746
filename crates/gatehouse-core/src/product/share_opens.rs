//! Opens of share links that ask for no password and bound no views, served from memory: the
//! link's row is kept for a few seconds by its token digest, and opens are counted per link and
//! written (the view count, one aggregated `share_link.opened` event per link) by the periodic
//! flush, as API-key use is. Such an open changes nothing that needs a transaction of its own,
//! and a stale row can only issue a pass that its first use refuses: every use of a viewer pass
//! reads the link's row (revoked, expired, password generation) afresh.
//!
//! Links with a password or a view bound never come here: their opens are checked and counted
//! in the database, one statement each.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::ids::OrgId;
use crate::store::ShareLinkRow;

/// How long a link's row is used from memory. Revocation and password changes forget it on
/// the instance that made them at once; another instance within this time can only issue a
/// pass its first use refuses.
pub(crate) const ROW_TTL: Duration = Duration::seconds(5);
/// Rows kept at most (only links opened successfully are kept: a guessed token is never).
const MAX_ROWS: usize = 10_000;
/// Links with opens waiting for the flush, at most; past it opens go through the database.
const MAX_PENDING: usize = 10_000;

/// Opens of one link since the last flush.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Opens {
    pub org: OrgId,
    pub record: Uuid,
    pub count: u32,
    pub first: OffsetDateTime,
    pub last: OffsetDateTime,
}

#[derive(Debug, Default)]
pub(crate) struct ShareOpens {
    rows: Mutex<Rows>,
    opens: Mutex<HashMap<Uuid, Opens>>,
    /// Moves on every forget; an open takes it before reading the database.
    forgets: AtomicU64,
}

#[derive(Debug, Default)]
struct Rows {
    kept: HashMap<[u8; 32], Kept>,
    /// Each organisation's latest forget (a value of `forgets`): a row read before it is not
    /// kept after it. Per organisation, so one tenant's revocations and deletions do not stop
    /// every other tenant's links being kept.
    forgotten: HashMap<OrgId, u64>,
    /// Rows read before this are not kept (the marks above were dropped at their bound).
    barrier: u64,
}

/// Organisations with a forget mark, at most; past it the marks become one barrier.
const MAX_MARKS: usize = 10_000;

/// A row kept, with its record's expiry and when it was read.
#[derive(Debug, Clone)]
struct Kept {
    row: ShareLinkRow,
    record_expires: Option<OffsetDateTime>,
    at: OffsetDateTime,
}

impl Kept {
    fn fresh(&self, now: OffsetDateTime) -> bool {
        self.at <= now && now < self.at + ROW_TTL
    }
}

/// Whether a link may be opened from memory at all.
pub(crate) fn servable(link: &ShareLinkRow) -> bool {
    link.password_hash.is_none() && link.max_views.is_none()
}

impl ShareOpens {
    /// The row kept for `digest`, if it was kept less than [`ROW_TTL`] ago.
    /// Its link must still be checked live; its record has not expired.
    pub(crate) fn row(&self, digest: &[u8; 32], now: OffsetDateTime) -> Option<ShareLinkRow> {
        let rows = self.rows.lock().unwrap_or_else(PoisonError::into_inner);
        rows.kept
            .get(digest)
            .filter(|k| k.fresh(now) && k.record_expires.is_none_or(|e| now < e))
            .map(|k| k.row.clone())
    }

    /// Taken before reading a row from the database, handed to [`ShareOpens::keep`].
    pub(crate) fn epoch(&self) -> u64 {
        self.forgets.load(Ordering::Acquire)
    }

    /// Keeps `row` unless its organisation had a forget since `epoch` was taken (the row may
    /// predate it).
    pub(crate) fn keep(
        &self,
        digest: [u8; 32],
        row: &ShareLinkRow,
        record_expires: Option<OffsetDateTime>,
        now: OffsetDateTime,
        epoch: u64,
    ) {
        if !servable(row) {
            return;
        }
        let mut rows = self.rows.lock().unwrap_or_else(PoisonError::into_inner);
        // Checked under the lock forgets take: no forget can slip between this and the insert.
        let forgotten_since = rows
            .forgotten
            .get(&row.org_id)
            .is_some_and(|&at| at > epoch);
        if epoch < rows.barrier || forgotten_since {
            return;
        }
        if rows.kept.len() >= MAX_ROWS {
            rows.kept.retain(|_, k| k.fresh(now));
            if rows.kept.len() >= MAX_ROWS {
                rows.kept.clear();
            }
        }
        rows.kept.insert(
            digest,
            Kept {
                row: row.clone(),
                record_expires,
                at: now,
            },
        );
    }

    /// Forgets `org`'s rows that `which` picks, and marks the organisation so that rows read
    /// before now are not kept after it.
    fn forget_where(&self, org: OrgId, which: impl Fn(&ShareLinkRow) -> bool) {
        let mut rows = self.rows.lock().unwrap_or_else(PoisonError::into_inner);
        let now = self.forgets.fetch_add(1, Ordering::AcqRel) + 1;
        if rows.forgotten.len() >= MAX_MARKS && !rows.forgotten.contains_key(&org) {
            rows.forgotten.clear();
            rows.barrier = now;
        }
        rows.forgotten.insert(org, now);
        rows.kept
            .retain(|_, k| k.row.org_id != org || !which(&k.row));
    }

    /// Forgets a link's row (revoked, password changed).
    pub(crate) fn forget(&self, org: OrgId, link: Uuid) {
        self.forget_where(org, |r| r.id == link);
    }

    /// Forgets the rows of a record's links (the record was deleted, or its expiry changed).
    pub(crate) fn forget_record(&self, org: OrgId, record: Uuid) {
        self.forget_where(org, |r| r.record_id == record);
    }

    /// Forgets the rows of an organisation's links (it, or records in it, erased), and its
    /// opens waiting for the flush when the organisation itself is gone.
    pub(crate) fn forget_org(&self, org: OrgId, erased: bool) {
        self.forget_where(org, |_| true);
        if erased {
            let mut opens = self.opens.lock().unwrap_or_else(PoisonError::into_inner);
            opens.retain(|_, o| o.org != org);
        }
    }

    /// Counts an open; false when too many links wait for the flush already (the open then
    /// goes through the database).
    pub(crate) fn count(&self, link: &ShareLinkRow, now: OffsetDateTime) -> bool {
        let mut opens = self.opens.lock().unwrap_or_else(PoisonError::into_inner);
        if opens.len() >= MAX_PENDING && !opens.contains_key(&link.id) {
            return false;
        }
        opens
            .entry(link.id)
            .and_modify(|o| {
                o.count = o.count.saturating_add(1);
                o.last = o.last.max(now);
            })
            .or_insert(Opens {
                org: link.org_id,
                record: link.record_id,
                count: 1,
                first: now,
                last: now,
            });
        true
    }

    /// Puts back opens a flush could not write, to be tried at the next one.
    pub(crate) fn restore(&self, taken: Vec<(Uuid, Opens)>) {
        let mut opens = self.opens.lock().unwrap_or_else(PoisonError::into_inner);
        for (id, o) in taken {
            if opens.len() >= MAX_PENDING && !opens.contains_key(&id) {
                tracing::warn!(link = %id, opens = o.count, "share-link opens dropped: too many waiting");
                continue;
            }
            opens
                .entry(id)
                .and_modify(|n| {
                    n.count = n.count.saturating_add(o.count);
                    n.first = n.first.min(o.first);
                    n.last = n.last.max(o.last);
                })
                .or_insert(o);
        }
    }

    /// Every link's opens since the last call.
    pub(crate) fn take(&self) -> Vec<(Uuid, Opens)> {
        let mut opens = self.opens.lock().unwrap_or_else(PoisonError::into_inner);
        opens.drain().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(password: bool, max_views: Option<u32>) -> ShareLinkRow {
        ShareLinkRow {
            org_id: OrgId::from_uuid(Uuid::from_u128(1)),
            id: Uuid::from_u128(2),
            record_id: Uuid::from_u128(3),
            digest: vec![7; 32],
            password_hash: password.then(|| "$argon2id$...".to_owned()),
            generation: 0,
            expires_at: OffsetDateTime::UNIX_EPOCH + Duration::days(1),
            max_views,
            views: 0,
            created_by: "user:x".into(),
            created_at: OffsetDateTime::UNIX_EPOCH,
            revoked_at: None,
        }
    }

    #[test]
    fn only_unguarded_links_are_kept_and_only_for_the_ttl() {
        let c = ShareOpens::default();
        let t = OffsetDateTime::UNIX_EPOCH + Duration::hours(1);
        let e = c.epoch();
        c.keep([1; 32], &row(true, None), None, t, e);
        c.keep([2; 32], &row(false, Some(3)), None, t, e);
        assert!(c.row(&[1; 32], t).is_none() && c.row(&[2; 32], t).is_none());
        c.keep([3; 32], &row(false, None), None, t, e);
        assert!(c.row(&[3; 32], t + Duration::seconds(4)).is_some());
        assert!(c.row(&[3; 32], t + ROW_TTL).is_none());
        assert!(c.row(&[3; 32], t - Duration::seconds(1)).is_none());
        let org = OrgId::from_uuid(Uuid::from_u128(1));
        c.forget(org, Uuid::from_u128(2));
        assert!(c.row(&[3; 32], t).is_none());
        // A row read before that forget is not kept after it.
        c.keep([3; 32], &row(false, None), None, t, e);
        assert!(c.row(&[3; 32], t).is_none());
        c.keep([3; 32], &row(false, None), None, t, c.epoch());
        assert!(c.row(&[3; 32], t).is_some());
        // Another organisation's forget does not stop this one's rows being kept.
        let e = c.epoch();
        c.forget_record(OrgId::from_uuid(Uuid::from_u128(9)), Uuid::from_u128(3));
        assert!(
            c.row(&[3; 32], t).is_some(),
            "another organisation's forget took this row"
        );
        c.keep([5; 32], &row(false, None), None, t, e);
        assert!(c.row(&[5; 32], t).is_some());
        c.forget_org(org, false);
        assert!(c.row(&[3; 32], t).is_none() && c.row(&[5; 32], t).is_none());
    }

    #[test]
    fn opens_are_counted_and_taken_once() {
        let c = ShareOpens::default();
        let t = OffsetDateTime::UNIX_EPOCH;
        let r = row(false, None);
        assert!(c.count(&r, t));
        assert!(c.count(&r, t + Duration::seconds(2)));
        let taken = c.take();
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].1.count, 2);
        assert_eq!(taken[0].1.first, t);
        assert_eq!(taken[0].1.last, t + Duration::seconds(2));
        assert!(c.take().is_empty());
        assert!(c.count(&r, t + Duration::seconds(3)));
        c.restore(taken);
        let again = c.take();
        assert_eq!(again[0].1.count, 3);
        assert_eq!(again[0].1.first, t);
        // A record that has expired is never opened from memory.
        let e = c.epoch();
        c.keep([4; 32], &r, Some(t + Duration::seconds(1)), t, e);
        assert!(c.row(&[4; 32], t).is_some());
        assert!(c.row(&[4; 32], t + Duration::seconds(1)).is_none());
    }
}

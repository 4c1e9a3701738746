//! Verified domains are checked again (issue 24's review: a domain stayed verified for good).
//!
//! A periodic job under the `sso_domains` lease ([`LEASE`], every [`RECHECK_EVERY`]) visits up to
//! [`ORGS_PER_RUN`] organisations per run, rotating through all of them, and looks each verified
//! domain's challenge record up again. A domain whose record is gone ([`GRACE`] runs in a row on
//! which DNS answered without it) is marked unverified: it no longer links accounts, admits
//! people or lets enforcement be switched on, until its organisation verifies it again. Each
//! missed check is audited (`sso.domain_check_failed`, with the count), and so is the change
//! (`sso.domain_unverified`), on the organisation's chain, in the change's transaction.
//!
//! A lookup that fails (no answer, a server error) counts nothing: a DNS outage does not
//! unverify anyone. The counts are the lease holder's, in memory: when the lease moves they
//! start again, which can only lengthen the grace.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use serde_json::json;

use super::Sso;
use super::domains::DomainView;
use crate::audit::{self, Actor, AuditEvent, Outcome};
use crate::error::Error;
use crate::ids::OrgId;
use crate::mail::TxtError;
use crate::scope::TenantScope;
use crate::store::SsoDomainRecord;

/// The job's lease name.
pub const LEASE: &str = "sso_domains";
/// How often the job runs.
pub const RECHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(6 * 3600);
/// Checks in a row that found the record gone before a domain is marked unverified.
pub const GRACE: u32 = 3;
/// Organisations visited per run.
pub const ORGS_PER_RUN: u32 = 500;

/// What one run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RecheckReport {
    pub checked: u32,
    pub missing: u32,
    pub unverified: u32,
}

/// The job's memory: where the rotation stands and the missed checks in a row per domain.
#[derive(Debug, Default)]
pub(super) struct Rechecks {
    position: Mutex<u64>,
    missed: Mutex<HashMap<(OrgId, String), u32>>,
}

impl Sso<'_> {
    /// The re-verification job's lease, ticking every [`RECHECK_EVERY`].
    #[must_use]
    pub fn recheck_job(&self) -> crate::jobs::LeasedJob {
        crate::jobs::LeasedJob::new(LEASE, RECHECK_EVERY)
    }

    /// One run: the verified domains of the next organisations in the rotation, looked up again.
    /// Call it while holding the lease.
    pub async fn recheck_domains(&self) -> Result<RecheckReport, Error> {
        let state = self.sso_state();
        let orgs = {
            let mut tx = self.store().begin_read().await?;
            let total = tx.count_organizations().await?;
            if total == 0 {
                return Ok(RecheckReport::default());
            }
            let from = *state
                .rechecks
                .position
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                % total;
            let orgs = tx.organization_ids_from(from, ORGS_PER_RUN).await?;
            let next = from + u64::try_from(orgs.len()).unwrap_or(0);
            *state
                .rechecks
                .position
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = if next >= total { 0 } else { next };
            orgs
        };
        let mut report = RecheckReport::default();
        for org in orgs {
            let domains = {
                let mut tx = self
                    .store()
                    .begin_read_scoped(&TenantScope::granted(org))
                    .await?;
                tx.sso_domains().await?
            };
            for d in domains.into_iter().filter(|d| d.verified_at.is_some()) {
                report.checked += 1;
                match self.still_published(&d).await {
                    Ok(true) => {
                        self.missed().remove(&(org, d.domain.clone()));
                    }
                    Ok(false) => {
                        report.missing += 1;
                        if self.missed_check(org, d).await? {
                            report.unverified += 1;
                        }
                    }
                    Err(why) => {
                        tracing::warn!(domain = %d.domain, reason = %why, "a verified domain could not be checked again; it counts nothing");
                    }
                }
            }
        }
        Ok(report)
    }

    fn missed(&self) -> std::sync::MutexGuard<'_, HashMap<(OrgId, String), u32>> {
        self.sso_state()
            .rechecks
            .missed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the challenge record is still there: `Err` when DNS gave no answer.
    async fn still_published(&self, d: &SsoDomainRecord) -> Result<bool, String> {
        let view = DomainView::from(d.clone());
        let resolver = self
            .sso_state()
            .resolver
            .as_ref()
            .ok_or_else(|| "no DNS resolver is configured on this server".to_owned())?;
        match resolver.txt(&view.record_name).await {
            Ok(records) => Ok(records.iter().any(|r| r.trim() == view.record_value)),
            Err(TxtError::NotFound) => Ok(false),
            Err(TxtError::Failed(why)) => Err(why),
        }
    }

    /// Records a check that found the record gone; at the [`GRACE`]th in a row, marks the
    /// domain unverified (claimed again, its challenge the same). Returns whether it did.
    async fn missed_check(&self, org: OrgId, d: SsoDomainRecord) -> Result<bool, Error> {
        let count = {
            let mut missed = self.missed();
            let n = missed.entry((org, d.domain.clone())).or_insert(0);
            *n += 1;
            *n
        };
        let mut tx = self
            .store()
            .begin_scoped(&TenantScope::granted(org))
            .await?;
        let unverify = count >= GRACE;
        let event = if unverify {
            tx.delete_sso_domain(&d.domain).await?;
            tx.insert_sso_domain(&SsoDomainRecord {
                verified_at: None,
                ..d.clone()
            })
            .await?;
            AuditEvent::success(
                Actor::system(LEASE),
                "sso.domain_unverified",
                "organization",
                org,
            )
        } else {
            let mut e = AuditEvent::success(
                Actor::system(LEASE),
                "sso.domain_check_failed",
                "organization",
                org,
            );
            e.outcome = Outcome::Failure;
            e
        };
        let event = event.with_details(
            json!({
                "domain": d.domain,
                "record": super::challenge_record_name(&d.domain),
                "missed_in_a_row": count,
                "grace": GRACE,
            })
            .to_string(),
        );
        let proof = audit::append_tenant(tx.as_mut(), self.clock(), event).await?;
        tx.commit(proof).await?;
        if unverify {
            self.missed().remove(&(org, d.domain));
        }
        Ok(unverify)
    }
}

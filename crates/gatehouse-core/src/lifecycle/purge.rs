//! Purging expired records and secrets (and the values of deleted secrets): one organisation at
//! a time, one transaction and one audit event per batch.

use time::OffsetDateTime;
use uuid::Uuid;

use super::Lifecycle;
use crate::audit::{Actor, AuditEvent};
use crate::error::Error;
use crate::ids::OrgId;
use crate::keyring::SealedKind;
use crate::scope::TenantScope;
use crate::telemetry::metrics;

/// Organisations asked for per round of the search.
const ORGS_PER_ROUND: u32 = 100;

/// What one purge removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeReport {
    pub records: u64,
    pub secrets: u64,
    /// Transactions committed (one audit event each).
    pub batches: u64,
    /// Organisations whose purge failed this time (logged; retried at the next run).
    pub failures: u64,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Records,
    Secrets,
}

impl Kind {
    fn action(self) -> &'static str {
        match self {
            Self::Records => "record.purged",
            Self::Secrets => "secret.purged",
        }
    }

    fn reason(self) -> &'static str {
        match self {
            Self::Records => "expired",
            Self::Secrets => "expired_or_deleted",
        }
    }

    fn metric(self) -> &'static str {
        match self {
            Self::Records => "records",
            Self::Secrets => "secrets",
        }
    }
}

impl Lifecycle<'_> {
    /// Removes every record and secret that expired at or before now (the injected clock), and
    /// every deleted secret, from every organisation. Call it while holding the lease; `instance`
    /// (the lease holder) is named in each batch's audit event.
    pub async fn purge_expired(&self, instance: &str) -> Result<PurgeReport, Error> {
        let now = self.clock().now();
        let mut report = PurgeReport::default();
        let mut after = None;
        loop {
            let orgs = self
                .store()
                .orgs_with_expired(now, after, ORGS_PER_ROUND)
                .await?;
            for org in &orgs {
                for kind in [Kind::Records, Kind::Secrets] {
                    // One organisation's failure must not stop the others' purge.
                    match self.purge_org(*org, kind, now, instance, &mut report).await {
                        Ok(true) => {}
                        Ok(false) => return Ok(report),
                        Err(e) => {
                            tracing::warn!(org_id = %org, error = %e, "could not purge an organisation's expired data; retrying later");
                            report.failures += 1;
                        }
                    }
                }
                if !self.still_holding(instance).await {
                    return Ok(report);
                }
            }
            if orgs.len() < ORGS_PER_ROUND as usize {
                return Ok(report);
            }
            after = orgs.last().copied();
        }
    }

    /// Renews the lease during a long run; `false` once another instance holds it (this one
    /// stops), or when the store cannot say (stopping is the safe side; the next tick retries).
    async fn still_holding(&self, instance: &str) -> bool {
        match self.hold_lease(instance).await {
            Ok(true) => true,
            Ok(false) => {
                tracing::warn!("lost the lifecycle lease mid-purge; another instance goes on");
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not renew the lifecycle lease mid-purge; stopping until the next tick");
                false
            }
        }
    }

    /// Purges one organisation's expired `kind`; `Ok(false)` when the lease was lost meanwhile.
    async fn purge_org(
        &self,
        org: OrgId,
        kind: Kind,
        now: OffsetDateTime,
        instance: &str,
        report: &mut PurgeReport,
    ) -> Result<bool, Error> {
        let batch = self.lifecycle_settings().batch;
        let scope = TenantScope::granted(org);
        loop {
            let mut tx = self.store().begin_scoped(&scope).await?;
            let (ids, sealed): (Vec<Uuid>, SealedKind) = match kind {
                Kind::Records => (
                    tx.purge_expired_records(now, batch).await?,
                    SealedKind::RecordContent,
                ),
                Kind::Secrets => (
                    tx.purge_secrets(now, batch).await?,
                    SealedKind::SharedSecret,
                ),
            };
            if ids.is_empty() {
                // Nothing left: the transaction rolls back having changed nothing.
                return Ok(true);
            }
            let names: Vec<String> = ids.iter().map(Uuid::to_string).collect();
            tx.delete_sealed_of(sealed.as_str(), &names).await?;
            let event = AuditEvent::success(
                Actor::system("lifecycle"),
                kind.action(),
                "organization",
                org,
            )
            .with_details({
                let mut d = crate::audit::id_list(&names);
                d.insert("reason".into(), kind.reason().into());
                d.insert("expired_by".into(), now.unix_timestamp().into());
                d.insert("instance".into(), instance.into());
                serde_json::Value::Object(d).to_string()
            });
            let proof = crate::audit::append_tenant(tx.as_mut(), self.clock(), event).await?;
            tx.commit(proof).await?;
            let n = ids.len() as u64;
            match kind {
                Kind::Records => report.records += n,
                Kind::Secrets => report.secrets += n,
            }
            report.batches += 1;
            metrics::lifecycle_removed(kind.metric(), n);
            if ids.len() < batch as usize {
                return Ok(true);
            }
            tokio::time::sleep(self.lifecycle_settings().pause).await;
            // Renewed every ten batches: one organisation's backlog may outlast a lease.
            if report.batches.is_multiple_of(10) && !self.still_holding(instance).await {
                return Ok(false);
            }
        }
    }
}

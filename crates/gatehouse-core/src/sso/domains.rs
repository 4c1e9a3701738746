//! Email domains an organisation proves it holds, by a DNS TXT record Gatehouse looks up.

use serde_json::json;
use time::OffsetDateTime;

use super::{MANAGE, Sso};
use crate::audit::{self, AuditEvent};
use crate::context::TenantCall;
use crate::error::{Error, StoreError};
use crate::identity::Permission;
use crate::ids::UserId;
use crate::mail::{TxtError, askable, dns_records::domain_name};
use crate::store::{SsoDomainRecord, TenantTx};

/// The label the challenge is published under: `_gatehouse-challenge.<domain>`.
pub const CHALLENGE_LABEL: &str = "_gatehouse-challenge";
/// What the TXT record says before the challenge.
pub const CHALLENGE_PREFIX: &str = "gatehouse-domain-verification=";

/// Where a domain's challenge record is looked for.
#[must_use]
pub fn challenge_record_name(domain: &str) -> String {
    format!("{CHALLENGE_LABEL}.{domain}")
}

/// A claimed domain as its organisation's admins see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainView {
    pub domain: String,
    /// The TXT record to publish: its name and its value.
    pub record_name: String,
    pub record_value: String,
    pub created_at: OffsetDateTime,
    pub verified_at: Option<OffsetDateTime>,
}

impl From<SsoDomainRecord> for DomainView {
    fn from(d: SsoDomainRecord) -> Self {
        Self {
            record_name: challenge_record_name(&d.domain),
            record_value: format!("{CHALLENGE_PREFIX}{}", d.challenge),
            domain: d.domain,
            created_at: d.created_at,
            verified_at: d.verified_at,
        }
    }
}

/// A domain as claimed: an ASCII host name of two labels at least (IDNs in their `xn--` form),
/// lower case, not a special-use or private name no public resolver answers.
pub(crate) fn parse_domain(raw: &str) -> Result<String, Error> {
    let domain = domain_name(raw).map_err(|r| Error::invalid("domain", r))?;
    if !askable(&domain) {
        return Err(Error::invalid(
            "domain",
            "is a special-use or private name, which cannot be proved in public DNS",
        ));
    }
    Ok(domain)
}

impl Sso<'_> {
    /// `tx` with the caller's `sso.manage` checked; with `change`, also a recent second factor
    /// (or password, for an account without one), recorded as a refusal when missing.
    pub(super) async fn managing(
        &self,
        call: &TenantCall,
        tx: Box<dyn TenantTx>,
        change: bool,
    ) -> Result<Box<dyn TenantTx>, Error> {
        let TenantCall {
            principal,
            scope,
            request,
        } = call;
        // Whether the person has a factor now, not when their token was issued.
        let enrolled = change
            && principal.api_key_permissions.is_none()
            && self
                .has_second_factor(UserId::from_uuid(principal.subject))
                .await?;
        let (tx, _) = self
            .authorize(tx, principal, Permission::SSO_MANAGE, request)
            .await?;
        if change && let Err(e) = self.require_reauthentication(principal, enrolled, MANAGE) {
            drop(tx);
            self.record_refusal(
                scope,
                principal,
                "permission.step_up_required",
                format!("{{\"permission\":\"{MANAGE}\"}}"),
                request,
            )
            .await;
            return Err(e);
        }
        Ok(tx)
    }

    /// The organisation's claimed domains, by name.
    pub async fn domains(&self, call: &TenantCall) -> Result<Vec<DomainView>, Error> {
        let tx = self.store().begin_read_scoped(&call.scope).await?;
        let mut tx = self.managing(call, tx, false).await?;
        Ok(tx
            .sso_domains()
            .await?
            .into_iter()
            .map(DomainView::from)
            .collect())
    }

    /// Claims `domain` for the organisation and answers the record to publish. Refused
    /// (`domain_taken`) when another organisation verified it.
    pub async fn claim_domain(&self, call: &TenantCall, raw: &str) -> Result<DomainView, Error> {
        let domain = parse_domain(raw)?;
        let mut platform = self.store().begin().await?;
        let holder = platform.org_of_verified_domain(&domain).await?;
        let tx = platform.enter(&call.scope).await?;
        let mut tx = self.managing(call, tx, true).await?;
        if holder.is_some_and(|o| o != call.scope.org_id()) {
            drop(tx);
            self.record_refusal(
                &call.scope,
                &call.principal,
                "sso.domain_claim_refused",
                json!({ "domain": domain, "reason": "verified_elsewhere" }).to_string(),
                &call.request,
            )
            .await;
            return Err(Error::DomainTaken);
        }
        let challenge = gatehouse_crypto::random_token(24)
            .map_err(|e| Error::Internal(e.to_string()))?
            .expose()
            .to_owned();
        let record = SsoDomainRecord {
            org_id: call.scope.org_id(),
            domain: domain.clone(),
            challenge,
            created_at: self.clock().now(),
            verified_at: None,
        };
        tx.insert_sso_domain(&record).await.map_err(|e| match e {
            StoreError::Duplicate => {
                Error::Conflict("the organisation already claimed this domain")
            }
            other => other.into(),
        })?;
        let event = AuditEvent::success(
            call.principal.actor(),
            "sso.domain_claimed",
            "organization",
            call.scope.org_id(),
        )
        .with_details(json!({ "domain": domain }).to_string())
        .with_request(call.request.request_id.clone());
        let proof = audit::append_tenant(tx.as_mut(), self.clock(), event).await?;
        tx.commit(proof).await?;
        Ok(record.into())
    }

    /// Looks the domain's challenge up in DNS and, when it is published, marks the domain
    /// verified. A missing record is refused (`domain_not_verified`, saying what was seen) and
    /// recorded; a domain another organisation verified first is `domain_taken`.
    pub async fn verify_domain(&self, call: &TenantCall, raw: &str) -> Result<DomainView, Error> {
        let domain = parse_domain(raw)?;
        let tx = self.store().begin_read_scoped(&call.scope).await?;
        let mut tx = self.managing(call, tx, true).await?;
        let claim = tx
            .sso_domain(&domain)
            .await?
            .ok_or(Error::NotFound("domain"))?;
        drop(tx);
        if claim.verified_at.is_some() {
            return Ok(claim.into());
        }
        let view = DomainView::from(claim);
        if let Err(seen) = self.published(&view).await {
            self.record_refusal(
                &call.scope,
                &call.principal,
                "sso.domain_verification_failed",
                json!({ "domain": domain, "seen": seen }).to_string(),
                &call.request,
            )
            .await;
            return Err(Error::DomainNotVerified(format!(
                "the TXT record {:?} was not found at {}: {seen}; publish it and try again",
                view.record_value, view.record_name
            )));
        }
        let tx = self.store().begin_scoped(&call.scope).await?;
        let mut tx = self.managing(call, tx, true).await?;
        let now = self.clock().now();
        let verified = match tx.verify_sso_domain(&domain, now).await {
            Ok(v) => v,
            Err(StoreError::Duplicate) => {
                drop(tx);
                self.record_refusal(
                    &call.scope,
                    &call.principal,
                    "sso.domain_claim_refused",
                    json!({ "domain": domain, "reason": "verified_elsewhere" }).to_string(),
                    &call.request,
                )
                .await;
                return Err(Error::DomainTaken);
            }
            Err(e) => return Err(e.into()),
        };
        let current = tx
            .sso_domain(&domain)
            .await?
            .ok_or(Error::NotFound("domain"))?;
        if !verified {
            // Verified meanwhile by another request of this organisation.
            return Ok(current.into());
        }
        let event = AuditEvent::success(
            call.principal.actor(),
            "sso.domain_verified",
            "organization",
            call.scope.org_id(),
        )
        .with_details(json!({ "domain": domain, "record": view.record_name }).to_string())
        .with_request(call.request.request_id.clone());
        let proof = audit::append_tenant(tx.as_mut(), self.clock(), event).await?;
        tx.commit(proof).await?;
        Ok(current.into())
    }

    /// Gives a domain up: it no longer links accounts or admits people just in time.
    pub async fn remove_domain(&self, call: &TenantCall, raw: &str) -> Result<(), Error> {
        let domain = parse_domain(raw)?;
        let tx = self.store().begin_scoped(&call.scope).await?;
        let mut tx = self.managing(call, tx, true).await?;
        if !tx.delete_sso_domain(&domain).await? {
            return Err(Error::NotFound("domain"));
        }
        let event = AuditEvent::success(
            call.principal.actor(),
            "sso.domain_removed",
            "organization",
            call.scope.org_id(),
        )
        .with_details(json!({ "domain": domain }).to_string())
        .with_request(call.request.request_id.clone());
        let proof = audit::append_tenant(tx.as_mut(), self.clock(), event).await?;
        tx.commit(proof).await?;
        Ok(())
    }

    /// Whether the challenge record is published; if not, what the lookup saw, in words.
    async fn published(&self, view: &DomainView) -> Result<(), String> {
        let state = self.sso_state();
        let resolver = state
            .resolver
            .as_ref()
            .ok_or_else(|| "no DNS resolver is configured on this server".to_owned())?;
        let _running = state
            .checks
            .try_acquire()
            .map_err(|_| "four domain checks are already running here; try again".to_owned())?;
        match resolver.txt(&view.record_name).await {
            Ok(records) if records.iter().any(|r| r.trim() == view.record_value) => Ok(()),
            Ok(records) => Err(format!(
                "{} other TXT record{} there",
                records.len(),
                if records.len() == 1 { " is" } else { "s are" }
            )),
            Err(TxtError::NotFound) => Err("no TXT record is published there".to_owned()),
            Err(TxtError::Failed(why)) => Err(format!("the DNS lookup failed ({why})")),
        }
    }
}
